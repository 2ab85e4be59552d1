// Sending and replacing tasks from inside a task (Celery's `sig.delay()` and
// `self.replace(sig)`). Needs `send = true` under [capabilities].
//
// A signature is Celery's signature dict, built with Celery's names, so what a
// JS task sends is what a Python task would send:
//
//   import { signature, group, chord, send, replace } from 'chard';
//   send(signature('math.add', [2, 2]).chain(signature('math.mul', [10])));
//   send(chord([signature('math.add', [1, 1]), signature('math.add', [2, 2])], signature('math.xsum')));
//   replace(group([1, 2, 3].map((i) => signature('math.add', [i, i]))));
//
// Nothing is published while the task runs: the worker publishes what a job
// sent with its result, only if it succeeds. `replace` does not return, as in
// Celery: the task ends and the signature takes its place under the same id.

import { call } from './imports.js';
import { Replaced } from './outcomes.js';

export class Signature {
  constructor(task, args = [], kwargs = {}, options = {}, subtaskType = null, immutable = false) {
    if (typeof task !== 'string' || !task) throw new TypeError(`task must be a task name, got ${task}`);
    if (!Array.isArray(args)) throw new TypeError(`args must be an array, got ${JSON.stringify(args)}`);
    if (!kwargs || typeof kwargs !== 'object' || Array.isArray(kwargs)) throw new TypeError('kwargs must be an object');
    this.task = task;
    this.args = [...args];
    this.kwargs = { ...kwargs };
    this.options = { ...options };
    this.subtask_type = subtaskType;
    this.immutable = Boolean(immutable);
  }

  /** Options of `apply_async`: queue, countdown, priority, expires, task_id... */
  set(options) {
    Object.assign(this.options, options);
    return this;
  }

  /** `.si()`: ignore the parent's result. */
  si() {
    this.immutable = true;
    return this;
  }

  link(callback) {
    (this.options.link ??= []).push(signatureOf(callback));
    return this;
  }

  linkError(errback) {
    (this.options.link_error ??= []).push(signatureOf(errback));
    return this;
  }

  /** `this | next | ...`: each step gets the previous result first (unless immutable). */
  chain(...following) {
    return chain(this, ...following);
  }

  toJSON() {
    const { task, args, kwargs, options, subtask_type, immutable } = this;
    return { task, args, kwargs, options, subtask_type, immutable };
  }
}

function signatureOf(value) {
  if (value instanceof Signature) return value;
  if (value && typeof value === 'object' && typeof value.task === 'string') return value; // a dict received as an argument
  throw new TypeError(`expected a signature, got ${JSON.stringify(value)}`);
}

/** `task.s(...args)`; `kwargs` and `options` are objects. */
export function signature(task, args = [], kwargs = {}, options = {}) {
  return new Signature(task, args, kwargs, options);
}

function steps(sig) {
  // A plain chain inside a chain is flattened, as Celery's `|` does.
  const options = sig.options ?? {};
  if (sig.subtask_type === 'chain' && Object.keys(options).length === 0) return [...sig.kwargs.tasks];
  return [sig];
}

/** `chain(a, b, c)`. */
export function chain(...sigs) {
  return new Signature('celery.chain', [], { tasks: sigs.flatMap((sig) => steps(signatureOf(sig))) }, {}, 'chain');
}

/** `group([a, b, c])`: the members run in parallel. */
export function group(members) {
  return new Signature('celery.group', [], { tasks: [...members].map(signatureOf) }, {}, 'group');
}

/** `chord([a, b], body)`: `body` gets the list of the header's results. */
export function chord(header, body) {
  return new Signature(
    'celery.chord',
    [],
    { header: [...header].map(signatureOf), body: signatureOf(body), kwargs: {} },
    {},
    'chord',
  );
}

function text(sig) {
  return typeof sig === 'string' ? sig : JSON.stringify(signatureOf(sig));
}

/** `sig.apply_async()`: returns the id a client waits on (a chain's last task, a group's, a chord body's). */
export function send(sig) {
  return call('canvas', 'send', text(sig));
}

/** Celery's `self.replace(sig)`: the task ends here and `sig` runs in its place. Does not return. */
export function replace(sig) {
  call('canvas', 'replace', text(sig));
  throw new Replaced();
}
