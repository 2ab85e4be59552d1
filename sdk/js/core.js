// The engine of the JavaScript SDK: task metadata, Python-style argument
// binding, errors and the `tasks` export. It imports nothing from the
// component world (the host functions are passed in), so plain Node can load
// it for tests; `chard.js` wires it to the real `chard:task/host` import.

const OPTIONS = {
  name: 'name',
  params: 'params',
  doc: 'doc',
  queue: 'queue',
  timeLimit: 'timeLimit',
  time_limit: 'timeLimit',
  softTimeLimit: 'softTimeLimit',
  soft_time_limit: 'softTimeLimit',
  memoryLimit: 'memoryLimit',
  memory_limit: 'memoryLimit',
  maxRetries: 'maxRetries',
  max_retries: 'maxRetries',
  defaultRetryDelay: 'defaultRetryDelay',
  default_retry_delay: 'defaultRetryDelay',
  rateLimit: 'rateLimit',
  rate_limit: 'rateLimit',
  autoretryFor: 'autoretryFor',
  autoretry_for: 'autoretryFor',
  retryBackoff: 'retryBackoff',
  retry_backoff: 'retryBackoff',
  retryBackoffMax: 'retryBackoffMax',
  retry_backoff_max: 'retryBackoffMax',
  retryJitter: 'retryJitter',
  retry_jitter: 'retryJitter',
};

const META = Symbol.for('chard.task');

/** Ask the worker to run the job again later (Celery's RETRY state). */
export class Retry extends Error {
  /**
   * @param {{countdown?: number, reason?: string, maxRetries?: number, exc?: unknown}} [options]
   *   countdown in seconds (default: the task's defaultRetryDelay)
   */
  constructor(options = {}) {
    const { countdown, maxRetries, exc } = options;
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
  }
}

/** Throws a `Retry`: `retry({ countdown: 5, reason: 'busy' })`. */
export function retry(options = {}) {
  throw new Retry(options);
}

/**
 * Fail with an explicit exception type a Python client re-raises, without
 * defining a class: `throw new Failure('declined', 'billing.errors.CardDeclined')`.
 */
export class Failure extends Error {
  constructor(message, exceptionType) {
    super(String(message));
    this.name = 'Failure';
    this.exceptionType = exceptionType ?? undefined;
  }
}

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

function secondsToMs(option, value) {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new TypeError(`${option} must be a non-negative number of seconds, got ${value}`);
  }
  return Math.round(value * 1000);
}

function whole(option, value) {
  if (!Number.isInteger(value) || value < 0) {
    throw new TypeError(`${option} must be a non-negative integer, got ${value}`);
  }
  return value;
}

function rateLimit(value) {
  if (typeof value !== 'string' || !/^\s*\d+(\.\d+)?\s*(\/\s*[smh]\s*)?$/.test(value)) {
    throw new TypeError(`rateLimit must look like "10/s", "100/m" or "1000/h", got ${value}`);
  }
  return value;
}

/**
 * Attach options to a task function: `export const charge = task((card, cents) => ..., { timeLimit: 5 })`.
 * Options (times in seconds): name, params, doc, queue, timeLimit, softTimeLimit, memoryLimit (MiB),
 * maxRetries, defaultRetryDelay, rateLimit ("10/s"), autoretryFor (names or Error classes),
 * retryBackoff (seconds, or true for 1 s), retryBackoffMax, retryJitter. snake_case works too.
 */
export function task(fn, options = {}) {
  if (typeof fn !== 'function') throw new TypeError('task() expects a function');
  const normalized = {};
  for (const [key, value] of Object.entries(options)) {
    const canonical = OPTIONS[key];
    if (!canonical) {
      throw new TypeError(`unknown task option "${key}"; expected one of: ${[...new Set(Object.values(OPTIONS))].join(', ')}`);
    }
    normalized[canonical] = value;
  }
  fn[META] = normalized;
  return fn;
}

// ---------------------------------------------------------------------------
// Parameter names, from the function's source text (JS has no reflection).

function stripComments(source) {
  let out = '';
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c === '/' && source[i + 1] === '/') {
      while (i < source.length && source[i] !== '\n') i++;
      out += '\n';
    } else if (c === '/' && source[i + 1] === '*') {
      i += 2;
      while (i < source.length && !(source[i] === '*' && source[i + 1] === '/')) i++;
      i++;
      out += ' ';
    } else if (c === '"' || c === "'" || c === '`') {
      let j = i + 1;
      while (j < source.length && source[j] !== c) j += source[j] === '\\' ? 2 : 1;
      out += source.slice(i, j + 1);
      i = j;
    } else {
      out += c;
    }
  }
  return out;
}

function splitTopLevel(text) {
  const parts = [];
  let depth = 0;
  let current = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"' || c === "'" || c === '`') {
      let j = i + 1;
      while (j < text.length && text[j] !== c) j += text[j] === '\\' ? 2 : 1;
      current += text.slice(i, j + 1);
      i = j;
      continue;
    }
    if (c === '(' || c === '[' || c === '{') depth++;
    if (c === ')' || c === ']' || c === '}') depth--;
    if (c === ',' && depth === 0) {
      parts.push(current);
      current = '';
    } else {
      current += c;
    }
  }
  if (current.trim()) parts.push(current);
  return parts.map((part) => part.trim()).filter(Boolean);
}

/** [{name, optional, rest}] for a function; name is null for destructured parameters. */
export function parseParams(fn) {
  const source = stripComments(Function.prototype.toString.call(fn)).trim();
  let list;
  const arrowSingle = /^(?:async\s+)?([A-Za-z_$][\w$]*)\s*=>/.exec(source);
  if (arrowSingle) {
    list = arrowSingle[1];
  } else {
    const open = source.indexOf('(');
    if (open < 0) return [];
    let depth = 0;
    let close = -1;
    for (let i = open; i < source.length; i++) {
      const c = source[i];
      if (c === '"' || c === "'" || c === '`') {
        let j = i + 1;
        while (j < source.length && source[j] !== c) j += source[j] === '\\' ? 2 : 1;
        i = j;
        continue;
      }
      if (c === '(' || c === '[' || c === '{') depth++;
      if (c === ')' || c === ']' || c === '}') depth--;
      if (depth === 0) {
        close = i;
        break;
      }
    }
    list = source.slice(open + 1, close);
  }
  return splitTopLevel(list).map((part) => {
    const rest = part.startsWith('...');
    const body = rest ? part.slice(3).trim() : part;
    const optional = rest || /^[^=]*=(?!>)/.test(body) && !/^[\[{]/.test(body) || /^[\[{][\s\S]*[\]}]\s*=/.test(body);
    const name = /^[A-Za-z_$][\w$]*/.exec(body);
    return { name: name ? name[0] : null, optional, rest };
  });
}

// ---------------------------------------------------------------------------

class Task {
  constructor(exportName, fn) {
    const options = fn[META] || {};
    this.fn = fn;
    this.name = options.name ?? exportName;
    let signature = parseParams(fn);
    if (options.params !== undefined) {
      if (!Array.isArray(options.params) || options.params.some((p) => typeof p !== 'string')) {
        throw new TypeError(`${this.name}: params must be a list of names`);
      }
      signature = options.params.map((p) => ({ name: p.replace(/^[?]|[?]$/g, ''), optional: p.endsWith('?'), rest: false }));
    }
    this.signature = signature;
    this.params = signature.filter((p) => !p.rest && p.name).map((p) => p.name);
    this.doc = typeof options.doc === 'string' ? options.doc.trim().split('\n')[0] : undefined;
    const ms = (key) => (options[key] === undefined || options[key] === null ? undefined : secondsToMs(key, options[key]));
    let backoff;
    if (options.retryBackoff === true) backoff = 1000;
    else if (options.retryBackoff !== undefined && options.retryBackoff !== false && options.retryBackoff !== null) {
      backoff = secondsToMs('retryBackoff', options.retryBackoff);
    }
    this.defaults = {
      queue: options.queue ?? undefined,
      timeLimitMs: ms('timeLimit'),
      softTimeLimitMs: ms('softTimeLimit'),
      memoryLimitMb: options.memoryLimit == null ? undefined : whole('memoryLimit', options.memoryLimit),
      maxRetries: options.maxRetries == null ? undefined : whole('maxRetries', options.maxRetries),
      defaultRetryDelayMs: ms('defaultRetryDelay'),
      rateLimit: options.rateLimit == null ? undefined : rateLimit(options.rateLimit),
      autoretryFor: (options.autoretryFor || []).map((item) =>
        typeof item === 'string' ? item : typeof item === 'function' && item.name ? item.name : (() => {
          throw new TypeError(`autoretryFor takes names or Error classes, got ${item}`);
        })(),
      ),
      retryBackoffMs: backoff,
      retryBackoffMaxMs: ms('retryBackoffMax'),
      retryJitter: Boolean(options.retryJitter),
    };
  }

  /** Python's binding rules; returns the positional argument list. */
  bind(args, kwargs) {
    const named = this.signature.filter((p) => !p.rest);
    const hasRest = this.signature.some((p) => p.rest);
    const names = named.map((p) => p.name).filter(Boolean);
    const typeError = (message) => new Failure(`${this.name}: ${message}`, 'TypeError');
    if (!hasRest && args.length > named.length) {
      throw typeError(
        `expected ${named.length} argument${named.length === 1 ? '' : 's'} (${names.join(', ')}), got ${args.length}`,
      );
    }
    const bound = args.slice(0, named.length);
    const extra = args.slice(named.length);
    const remaining = { ...kwargs };
    for (let i = 0; i < named.length; i++) {
      const param = named[i];
      const byName = param.name !== null && Object.prototype.hasOwnProperty.call(remaining, param.name);
      if (i < args.length) {
        if (byName) throw typeError(`got multiple values for argument '${param.name}'`);
        continue;
      }
      if (byName) {
        bound[i] = remaining[param.name];
        delete remaining[param.name];
      } else if (param.optional) {
        bound[i] = undefined;
      } else {
        throw typeError(`missing required argument '${param.name ?? `#${i + 1}`}'`);
      }
    }
    const unexpected = Object.keys(remaining);
    if (unexpected.length) throw typeError(`got an unexpected keyword argument '${unexpected[0]}'`);
    // Trailing optional parameters that were not given stay undefined, so
    // their defaults apply.
    return bound.concat(extra);
  }
}

/** The tasks of a module namespace: every exported function, and the
 * functions of an exported default object. */
export function collectTasks(namespace) {
  const found = new Map();
  const add = (exportName, value) => {
    if (typeof value !== 'function') return;
    if (/^class\b/.test(Function.prototype.toString.call(value))) return; // classes are not tasks
    const t = new Task(exportName, value);
    if (found.has(t.name)) throw new Error(`task "${t.name}" is exported twice`);
    found.set(t.name, t);
  };
  for (const [key, value] of Object.entries(namespace)) {
    if (key === 'default' && value && typeof value === 'object') {
      for (const [innerKey, innerValue] of Object.entries(value)) add(innerKey, innerValue);
    } else if (key !== 'default' || typeof value === 'function') {
      add(key === 'default' ? value.name || 'default' : key, value);
    }
  }
  return found;
}

function toBigInt(value) {
  return value === undefined || value === null ? undefined : BigInt(value);
}

function toNumber(value) {
  return typeof value === 'bigint' ? Number(value) : value;
}

/** The job's context with plain numbers instead of BigInts. */
function plainContext(context) {
  if (!context) return undefined;
  const plain = {};
  for (const [key, value] of Object.entries(context)) plain[key] = toNumber(value);
  return plain;
}

const state = { context: undefined, host: undefined, startedAt: undefined };

/** `performance.now()` when the current job started (monotonic clock). */
export function jobStartedAt() {
  return state.startedAt;
}

/** The job being run, as the worker passed it (camelCase fields), or undefined. */
export function context() {
  return state.context;
}

function ok(value, name) {
  let text;
  try {
    text = JSON.stringify(value === undefined ? null : value);
  } catch (error) {
    throw new Failure(`${name}: result is not JSON: ${error.message}`, 'TypeError');
  }
  return text;
}

function toTaskError(error) {
  if (error instanceof Retry) {
    return {
      tag: 'retry',
      val: { countdownMs: toBigInt(error.countdownMs), reason: error.reason, maxRetries: error.maxRetries },
    };
  }
  if (error instanceof Failure) {
    return { tag: 'failed', val: { message: error.message, exceptionType: error.exceptionType } };
  }
  const message = error instanceof Error ? error.message : typeof error === 'string' ? error : safeString(error);
  return { tag: 'failed', val: { message, exceptionType: exceptionType(error) } };
}

function safeString(value) {
  try {
    return typeof value === 'object' ? JSON.stringify(value) : String(value);
  } catch {
    return String(value);
  }
}

function parseJson(text, what, name, isValid, fallback) {
  if (!text || !text.trim()) return fallback;
  let value;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new Failure(`${name}: ${what} are not valid JSON: ${error.message}`, 'TypeError');
  }
  if (value === null && what === 'kwargs') return fallback;
  if (!isValid(value)) {
    throw new Failure(`${name}: ${what} must be a JSON ${what === 'args' ? 'array' : 'object'}, got ${text.trim()}`, 'TypeError');
  }
  return value;
}

/**
 * Builds the `chard:task/tasks` export from a module namespace.
 * `host` is `{ log(level, message, fields), nowMs() }` (the WIT import).
 * Throwing `{ tag, val }` from `run` is how componentize-js returns `err`.
 */
export function exportTasks(namespace, host) {
  state.host = host;
  const registry = collectTasks(namespace);
  return {
    listTasks() {
      return [...registry.values()].map((t) => ({
        name: t.name,
        params: t.params,
        doc: t.doc,
        defaults: {
          ...t.defaults,
          timeLimitMs: toBigInt(t.defaults.timeLimitMs),
          softTimeLimitMs: toBigInt(t.defaults.softTimeLimitMs),
          defaultRetryDelayMs: toBigInt(t.defaults.defaultRetryDelayMs),
          retryBackoffMs: toBigInt(t.defaults.retryBackoffMs),
          retryBackoffMaxMs: toBigInt(t.defaults.retryBackoffMaxMs),
        },
      }));
    },
    run(name, argsJson, kwargsJson, jobContext) {
      const t = registry.get(name);
      if (!t) throw toTaskError(new Failure(name, 'NotRegistered'));
      return runTask(t, argsJson, kwargsJson, jobContext);
    },
  };
}

/** Throws `error` as a task error, logging the stack of an unexpected one. */
function fail(error) {
  const taskError = toTaskError(error);
  if (taskError.tag === 'failed' && !(error instanceof Failure) && state.host) {
    try {
      const stack = error instanceof Error && error.stack ? String(error.stack) : '';
      state.host.log('debug', 'task threw', [['exception', taskError.val.exceptionType], ['stack', stack]]);
    } catch {
      // logging is best effort
    }
  }
  throw taskError;
}

function runTask(t, argsJson, kwargsJson, jobContext) {
  const name = t.name;
  let value;
  try {
    const args = parseJson(argsJson, 'args', name, Array.isArray, []);
    const kwargs = parseJson(kwargsJson, 'kwargs', name, (v) => v !== null && typeof v === 'object' && !Array.isArray(v), {});
    const bound = t.bind(args, kwargs);
    state.context = plainContext(jobContext);
    state.startedAt = typeof performance === 'undefined' ? undefined : performance.now();
    value = t.fn(...bound);
  } catch (error) {
    state.context = undefined;
    fail(error);
  }
  if (value && typeof value.then === 'function') {
    return value.then(
      (resolved) => {
        state.context = undefined;
        try {
          return ok(resolved, name);
        } catch (error) {
          return fail(error);
        }
      },
      (error) => {
        state.context = undefined;
        return fail(error);
      },
    );
  }
  state.context = undefined;
  try {
    return ok(value, name);
  } catch (error) {
    return fail(error);
  }
}

/**
 * Runs private tasks through `run`'s whole path, a few times, calling no
 * plugin code and not the host. Each job runs in a fresh instance of the
 * snapshot componentize-js takes after the plugin's module ran, so whatever
 * the engine sets up on first use (standard classes, self-hosted builtins,
 * property caches) would otherwise be set up again by every job.
 */
export function warmUp() {
  const host = state.host;
  state.host = undefined;
  const plain = new Task('plain', (x, y) => [x, y]);
  const rest = new Task('rest', (x, y = null, ...more) => ({ x, y, more, values: [1.5, null, true, '\u00e9'] }));
  const thrower = new Task('thrower', (message) => {
    throw new RangeError(message);
  });
  const context = { taskId: 'warm-up', taskName: 'warm-up', retries: 0, priority: 0, hostname: '', headers: '{}', timeLimitMs: 1n };
  const attempt = (call) => {
    try {
      call();
    } catch {
      // failures are part of the path being warmed
    }
  };
  try {
    for (let round = 0; round < 3; round++) {
      attempt(() => runTask(plain, '[1, "two"]', '{}', context));
      attempt(() => runTask(rest, '[1, 2, 3]', '{"y": {"nested": [false, null]}}', context));
      attempt(() => runTask(thrower, '["warm-up"]', '', undefined));
      attempt(() => runTask(plain, '[', '', undefined));
      attempt(() => runTask(plain, '[]', '{"z": 1}', undefined));
      attempt(() => runTask(new Task('later', async (x) => x), '[1]', '{}', context).then(() => undefined));
    }
  } finally {
    state.host = host;
  }
}

export function hostState() {
  return state;
}
