// `jsio`: what a JavaScript task can do beyond computing, one task per
// capability (the same tasks as `pyio` and `cio`; HTTP is in `jshttp`).
// Granted in `jsio.toml` next to the plugin (see README, "Writing tasks").
import { updateState, send, replace, signature, group, kv, Failure, retry, Reject } from 'chard';

class ExpectedException extends Error {
  constructor(...args) {
    super(String(args[0]));
    this.args = args; // a Celery client re-raises it with both arguments
  }
}

export const add = (x, y) => x + y;

/** `x * factor`: a call may leave `factor` out, and no more. */
export const scale = (x, factor = 10) => x * factor;

/** Report `steps` PROGRESS states, `step_ms` apart (the worker's clock). */
export function progress(steps, step_ms) {
  for (let done = 1; done <= steps; done++) {
    updateState('PROGRESS', { done, total: steps });
    const until = performance.now() + step_ms; // durations need no wall-clock grant
    while (performance.now() < until) {
      // wait
    }
  }
  return { done: steps };
}

export function fan_out(n) {
  return Array.from({ length: n }, (_, i) => send(signature('jsio.add', [i, i])));
}

export function send_then_fail() {
  send(signature('jsio.add', [1, 1]));
  throw new Failure('failed after sending', 'ValueError'); // as Python's ValueError
}

/** Becomes `add(x, 1) | add(10)`: the result is x + 11. */
export function replace_with_chain(x) {
  replace(signature('jsio.add', [x, 1]).chain(signature('jsio.add', [10])));
}

/** Becomes `group(add(0, 0), add(1, 1), add(2, 2))`: the result is [0, 2, 4]. */
export function replace_with_group() {
  replace(group([0, 1, 2].map((i) => signature('jsio.add', [i, i]))));
}

/** Does its work once per `order_id`, however often it is delivered. */
export function once(order_id) {
  if (!kv.setIfAbsent(`done:${order_id}`, '1', { ttl: 3600 })) {
    return { order: order_id, ran: false, runs: kv.getJson(`runs:${order_id}`) };
  }
  const runs = kv.incr('runs');
  kv.setJson(`runs:${order_id}`, runs);
  return { order: order_id, ran: true, runs };
}

export function fail_with_args(message, code) {
  throw new ExpectedException(message, code);
}

/** Retries at once with no retry left: the job fails with `exc` (both arguments). */
export function retry_until_out(message, code) {
  retry({ countdown: 0, maxRetries: 0, exc: new ExpectedException(message, code) });
}

/** Refuses its message: it is dropped and no result is stored. */
export function reject_it() {
  throw new Reject('not for us', { requeue: false });
}
