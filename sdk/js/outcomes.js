// How a task ends other than by returning: failing, retrying, rejecting its
// message, or being replaced. Each is something the task throws, and each
// becomes one case of the WIT `task-error` variant:
//
// - any thrown value: FAILURE with its type, its message and, when it has an
//   `args` array (JS errors have none of their own), those arguments as
//   JSON: Celery stores `exc.args` as `exc_message`, so a Python client
//   re-raises `ExpectedException('msg', 42)` with both.
// - `Retry`: RETRY; `exc` is what the job fails with once no retry is left,
//   `expires` discards the retried message after that time.
// - `Reject`: Celery's `Reject(reason, requeue)`.
// - `Replaced`: thrown by `replace(sig)` once the worker holds the
//   replacement; not an Error, so `catch (e) { if (e instanceof Error) ... }`
//   in a task lets it through.
//
// Plain JS: nothing here imports the component world.

/** The exception type reported for a thrown value: its `name`, or its class name. */
export function exceptionType(error) {
  if (error instanceof Error || (error && typeof error === 'object')) {
    const name = typeof error.name === 'string' && error.name ? error.name : undefined;
    const ctor = error.constructor && typeof error.constructor.name === 'string' ? error.constructor.name : undefined;
    // `class CardDeclined extends Error {}` keeps name "Error": prefer the class.
    if (name === 'Error' && ctor && ctor !== 'Error' && ctor !== 'Object') return ctor;
    if (name) return name;
    if (ctor && ctor !== 'Object') return ctor;
  }
  return 'Error';
}

export function secondsToMs(option, value) {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new TypeError(`${option} must be a non-negative number of seconds, got ${value}`);
  }
  return Math.round(value * 1000);
}

function safeString(value) {
  try {
    return typeof value === 'object' ? JSON.stringify(value) : String(value);
  } catch {
    return String(value);
  }
}

/**
 * Fail with an explicit exception type a Python client re-raises, without
 * defining a class: `throw new Failure('declined', 'billing.errors.CardDeclined')`.
 * `args` (JSON values) are the exception's arguments (default: [message]).
 */
export class Failure extends Error {
  constructor(message, exceptionType, args) {
    super(String(message));
    this.name = 'Failure';
    this.exceptionType = exceptionType ?? undefined;
    if (args !== undefined) this.args = [...args];
  }
}

/** `{ message, exceptionType, argsJson }` (the WIT `failure`) for a thrown value. */
export function failureOf(error) {
  const message = error instanceof Error ? error.message : typeof error === 'string' ? error : safeString(error);
  const type = error instanceof Failure ? error.exceptionType : exceptionType(error);
  let argsJson;
  const args = error && typeof error === 'object' && Array.isArray(error.args) ? error.args : undefined;
  if (args && !(args.length === 1 && args[0] === message)) {
    try {
      argsJson = JSON.stringify(args);
    } catch {
      argsJson = undefined; // not JSON: the message alone, as a client would see it
    }
  }
  return { message, exceptionType: type, argsJson };
}

/** Celery's `expires`: a Date, ISO-8601 text, or seconds from `nowMs()`. */
function expiresIso(expires, nowMs) {
  if (expires === undefined || expires === null) return undefined;
  if (typeof expires === 'string') {
    if (Number.isNaN(Date.parse(expires))) throw new TypeError(`expires must be ISO-8601 text, got ${expires}`);
    return expires;
  }
  if (expires instanceof Date) return expires.toISOString();
  return new Date(nowMs() + secondsToMs('expires', expires)).toISOString();
}

const clock = { nowMs: () => Date.now() };

/** Where a relative `expires` reads the time (the worker's clock in a component). */
export function setClock(nowMs) {
  clock.nowMs = nowMs;
}

/** Ask the worker to run the job again later (Celery's RETRY state). */
export class Retry extends Error {
  /**
   * @param {{countdown?: number, reason?: string, maxRetries?: number, exc?: unknown, expires?: Date|string|number}} [options]
   *   countdown in seconds (default: the task's defaultRetryDelay); exc: what the job fails
   *   with when no retry is left; expires: discard the retried message after that time
   */
  constructor(options = {}) {
    const { countdown, maxRetries, exc, expires } = options;
    let reason = options.reason;
    if (reason === undefined && exc !== undefined) {
      const type = exceptionType(exc);
      const text = exc instanceof Error ? exc.message : String(exc);
      reason = text ? `${type}: ${text}` : type;
    }
    super(reason ?? 'retry');
    this.name = 'Retry';
    this.reason = reason;
    this.countdownMs = countdown === undefined || countdown === null ? undefined : secondsToMs('countdown', countdown);
    if (maxRetries !== undefined && maxRetries !== null && !(Number.isInteger(maxRetries) && maxRetries >= 0)) {
      throw new TypeError(`maxRetries must be a non-negative integer, got ${maxRetries}`);
    }
    this.maxRetries = maxRetries ?? undefined;
    this.exc = exc === undefined ? undefined : failureOf(exc);
    this.expires = expiresIso(expires, () => clock.nowMs());
  }
}

/** Throws a `Retry`: `retry({ countdown: 5, reason: 'busy' })`. */
export function retry(options = {}) {
  throw new Retry(options);
}

/** Refuse the message (Celery's `Reject`): `throw new Reject('poison', { requeue: false })`. */
export class Reject extends Error {
  constructor(reason, { requeue = false } = {}) {
    super(reason === undefined ? 'rejected' : String(reason));
    this.name = 'Reject';
    this.reason = reason === undefined ? undefined : String(reason);
    this.requeue = Boolean(requeue);
  }
}

/** Thrown by `replace()` to end the task; not an Error on purpose. */
export class Replaced {}

/** The worker refused a call (capability not granted, store down...). */
export class HostError extends Failure {
  constructor(message) {
    super(message);
    this.name = 'HostError';
  }
}

/** The WIT `task-error` (`{ tag, val }`) for a thrown value; undefined for `Replaced`. */
export function toTaskError(error) {
  if (error instanceof Retry) {
    return {
      tag: 'retry',
      val: {
        countdownMs: error.countdownMs === undefined ? undefined : BigInt(error.countdownMs),
        reason: error.reason,
        maxRetries: error.maxRetries,
        exc: error.exc,
        expires: error.expires,
      },
    };
  }
  if (error instanceof Reject) return { tag: 'reject', val: { requeue: error.requeue, reason: error.reason } };
  return { tag: 'failed', val: failureOf(error) };
}
