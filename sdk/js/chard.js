// Write Chard tasks in JavaScript.
//
// A task is an exported function of the plugin's ES module:
//
//   import { task, retry } from 'chard';
//
//   export function add(x, y) { return x + y; }
//
//   export const charge = task((card, cents) => {
//     if (cents === 0) throw new RangeError('nothing to charge');
//     return `charged ${cents} to ${card}`;
//   }, { timeLimit: 5, maxRetries: 3 });
//
// Celery's args/kwargs are bound to the parameters with Python's rules
// (names come from the function's source; `params` overrides them); a call
// that does not fit fails with TypeError. A rest parameter (`...more`) takes
// the extra positional arguments, and the parameter named by the `kwargs`
// option the extra keyword arguments (Python's `*args`/`**kwargs`):
//
//   export const patch = task((id, email = undefined, changes) => ..., { kwargs: 'changes' });
//
// An argument the caller left out is `undefined` (its default applies); one
// sent as JSON null is `null`. A thrown error ends the job as
// FAILURE with the error's name ("Error", "RangeError", or the class name)
// and its message; `retry()` / `throw new Retry(...)` asks for a retry.
//
// Beyond computing, a task can call `fetch()` (granted origins only), report
// progress (`updateState`), send and replace tasks (`send`, `replace`, with
// the builders `signature`, `chain`, `group`, `chord`) and use a key-value
// store (`kv`), each only when the plugin's manifest grants it. Errors a task
// throws may carry an `args` array (Celery's exception args); `Reject` refuses
// the message; `retry({ exc, expires })` as in Celery.
//
// `sdk/js/build-plugin.sh` bundles the module with this SDK and turns it into
// a component with componentize-js.

import { log as hostLog, nowMs as hostNowMs } from 'chard:task/host@0.2.0';
import { updateState as progressUpdateState } from 'chard:task/progress@0.2.0';
import { send as canvasSend, replace as canvasReplace } from 'chard:task/canvas@0.2.0';
import * as keyvalue from 'chard:task/keyvalue@0.2.0';
import * as core from './core.js';
import { bindImports } from './imports.js';

export { task, Retry, retry, Failure, Reject, HostError, context, exceptionType } from './core.js';
export { updateState } from './progress.js';
export { Signature, signature, chain, group, chord, send, replace } from './canvas.js';
export * as kv from './kv.js';

const host = { log: hostLog, nowMs: hostNowMs };
bindImports({
  progress: { updateState: progressUpdateState },
  canvas: { send: canvasSend, replace: canvasReplace },
  keyvalue,
});
core.setClock(() => Number(hostNowMs()));

/** The `chard:task/tasks` export for a module namespace (used by the build). */
export function exportTasks(namespace) {
  const tasks = core.exportTasks(namespace, host);
  warmUp();
  return tasks;
}

// Run in the plugin's realm and in the realm of componentize-js's generated
// bindings (which lift and lower every call): touch every standard class and
// what the bindings use per call, so that the snapshot holds them set up.
const WARM_UP = `
  for (const name of Object.getOwnPropertyNames(globalThis)) {
    try { void globalThis[name]; } catch {}
  }
  const bytes = new Uint8Array(new ArrayBuffer(16), 0, 16);
  const view = new DataView(bytes.buffer);
  view.setBigInt64(0, BigInt.asUintN(64, BigInt(1)), true);
  view.setUint32(8, view.getUint32(0, true) >>> 0, true);
  view.setInt8(12, view.getUint8(12, true), true);
  view.getInt32(8, true);
  view.getBigInt64(0, true);
  const codecs = globalThis.contentGlobal ?? globalThis;
  let text = 'warm';
  if (codecs.TextDecoder) text = new codecs.TextDecoder().decode(new Uint8Array(bytes.buffer, 4, 4));
  if (codecs.TextEncoder) new codecs.TextEncoder().encodeInto('warm\u00e9', bytes);
  for (let i = 0; i < text.length; i++) text.charCodeAt(i);
  JSON.parse(JSON.stringify({ list: [1, 'x', null, true, 1.5], text }));
  Object.entries({ key: 1 });
  (async () => { await null; })();
`;

/**
 * Each job runs in a fresh instance of the snapshot componentize-js takes
 * after the plugin's module ran, and SpiderMonkey sets up standard classes
 * (Promise, String's methods, typed arrays...) and self-hosted builtins
 * lazily, per realm, on first use: left alone, every job set them up again,
 * which was most of a JS job's cost. The bindings live in a realm of their
 * own, reached through the Function constructor of an imported host function.
 */
function warmUp() {
  core.warmUp();
  new Function(WARM_UP)();
  try {
    Object.getPrototypeOf(hostLog).constructor(WARM_UP)();
  } catch {
    // a componentize-js without a separate bindings realm, or without eval
  }
}

/**
 * Wall-clock time as Unix milliseconds, as the worker sees it. The wall
 * clock is a capability (`wall_clock = true`): the job fails without it.
 * Use `performance.now()` for durations.
 */
export function nowMs() {
  return Number(hostNowMs());
}

/**
 * True once the job's soft time limit has passed: wind down. Measured on
 * the monotonic clock, so it needs no wall-clock grant.
 */
export function softDeadlinePassed() {
  const limit = core.context()?.softTimeLimitMs;
  const started = core.jobStartedAt();
  return limit !== undefined && limit !== null && started !== undefined && performance.now() - started >= limit;
}

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'];

/** Structured log line through the worker: `log('info', 'charged', { card })`. */
export function log(level, message, fields = {}) {
  const normalized = { warning: 'warn', critical: 'error' }[String(level).toLowerCase()] ?? String(level).toLowerCase();
  if (!LEVELS.includes(normalized)) throw new TypeError(`log level must be one of ${LEVELS.join(', ')}, got ${level}`);
  hostLog(normalized, String(message), Object.entries(fields).map(([key, value]) => [String(key), String(value)]));
}

export const debug = (message, fields) => log('debug', message, fields);
export const info = (message, fields) => log('info', message, fields);
export const warn = (message, fields) => log('warn', message, fields);
export const error = (message, fields) => log('error', message, fields);
