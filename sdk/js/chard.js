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
// that does not fit fails with TypeError. A thrown error ends the job as
// FAILURE with the error's name ("Error", "RangeError", or the class name)
// and its message; `retry()` / `throw new Retry(...)` asks for a retry.
//
// `sdk/js/build-plugin.sh` bundles the module with this SDK and turns it into
// a component with componentize-js.

import { log as hostLog, nowMs as hostNowMs } from 'chard:task/host@0.1.0';
import * as core from './core.js';

export { task, Retry, retry, Failure, context, exceptionType } from './core.js';

const host = { log: hostLog, nowMs: hostNowMs };

/** The `chard:task/tasks` export for a module namespace (used by the build). */
export function exportTasks(namespace) {
  return core.exportTasks(namespace, host);
}

/** Wall-clock time as Unix milliseconds, as the worker sees it. */
export function nowMs() {
  return Number(hostNowMs());
}

/** True once the job's soft time limit has passed: wind down. */
export function softDeadlinePassed() {
  const deadline = core.context()?.softDeadlineMs;
  return deadline !== undefined && deadline !== null && nowMs() >= deadline;
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
