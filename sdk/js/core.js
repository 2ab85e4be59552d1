// The engine of the JavaScript SDK: task metadata, Python-style argument
// binding, errors and the `tasks` export. It imports nothing from the
// component world (the host functions are passed in), so plain Node can load
// it for tests; `chard.js` wires it to the real `chard:task/host` import.

import { Failure, Replaced, secondsToMs, toTaskError } from './outcomes.js';

export { Retry, retry, Failure, Reject, HostError, exceptionType, failureOf, setClock } from './outcomes.js';

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
  kwargs: 'kwargs',
};

const META = Symbol.for('chard.task');

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
 * retryBackoff (seconds, or true for 1 s), retryBackoffMax, retryJitter, kwargs (the name of
 * the parameter that receives the keyword arguments no other parameter takes, Python's
 * `**kwargs`). snake_case works too.
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
    // Python's `**kwargs`: the parameter named by the `kwargs` option gets an
    // object of every keyword argument no other parameter takes (`{}` when
    // none). JS has no syntax for it, and a rest parameter must come last.
    if (options.kwargs !== undefined) {
      const target = signature.find((p) => !p.rest && p.name === options.kwargs);
      if (typeof options.kwargs !== 'string' || !target) {
        throw new TypeError(`${this.name}: kwargs must name one of the task's parameters, got ${options.kwargs}`);
      }
      signature = signature.map((p) => (p === target ? { ...p, optional: true, varkw: true } : p));
    }
    this.signature = signature;
    // `task-info.params` in Python's notation, which the worker checks the
    // calls it sends to this task against (Celery's `Task.typing`): `y?`
    // for a parameter with a default, `*rest`, `**kwargs`. A destructured
    // parameter has no name and is only ever given positionally (`#2`).
    const named = signature.filter((p) => !p.rest && !p.varkw);
    this.params = [
      ...named.map((p, i) => `${p.name ?? `#${i + 1}`}${p.optional ? '?' : ''}`),
      ...signature.filter((p) => p.rest).map((p) => `*${p.name ?? 'args'}`),
      ...signature.filter((p) => p.varkw).map((p) => `**${p.name}`),
    ];
    // A job's arguments usually fill every parameter positionally with no
    // keywords: `bind` then returns them as they are. Every step of the
    // general path below runs in SpiderMonkey's interpreter in a fresh
    // instance, in every job (bench/README.md, JavaScript).
    this.positionalCount = signature.some((p) => p.rest || p.varkw) ? -1 : signature.length;
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

  /**
   * Python's binding rules; returns the argument list for `fn(...list)`.
   * A parameter that was not given is `undefined` (so its default applies),
   * one sent as JSON null is `null`.
   */
  bind(args, kwargs) {
    if (args.length === this.positionalCount && isEmpty(kwargs)) return args;
    const slots = this.signature.filter((p) => !p.rest);
    const named = slots.filter((p) => !p.varkw);
    const hasRest = this.signature.some((p) => p.rest);
    const names = named.map((p) => p.name).filter(Boolean);
    const typeError = (message) => new Failure(`${this.name}: ${message}`, 'TypeError');
    if (!hasRest && args.length > named.length) {
      throw typeError(
        `expected ${named.length} argument${named.length === 1 ? '' : 's'} (${names.join(', ')}), got ${args.length}`,
      );
    }
    const remaining = { ...kwargs };
    const values = new Map();
    named.forEach((param, i) => {
      const byName = param.name !== null && Object.prototype.hasOwnProperty.call(remaining, param.name);
      if (i < args.length) {
        if (byName) throw typeError(`got multiple values for argument '${param.name}'`);
        values.set(param, args[i]);
      } else if (byName) {
        values.set(param, remaining[param.name]);
        delete remaining[param.name];
      } else if (!param.optional) {
        throw typeError(`missing required argument '${param.name ?? `#${i + 1}`}'`);
      }
    });
    const varkw = slots.find((p) => p.varkw);
    const unexpected = Object.keys(remaining);
    if (varkw) values.set(varkw, remaining);
    else if (unexpected.length) throw typeError(`got an unexpected keyword argument '${unexpected[0]}'`);
    return slots.map((p) => values.get(p)).concat(args.slice(named.length));
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

function isEmpty(object) {
  for (const _ in object) return false;
  return true;
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

// `rawContext` is the job's context as the bindings lifted it; `context`
// its plain-number copy, made on first use (most tasks never ask).
const state = { rawContext: undefined, context: undefined, host: undefined, startedAt: undefined };

/** `performance.now()` when the current job started (monotonic clock). */
export function jobStartedAt() {
  return state.startedAt;
}

/** The job being run, as the worker passed it (camelCase fields), or undefined. */
export function context() {
  if (state.context === undefined && state.rawContext) state.context = plainContext(state.rawContext);
  return state.context;
}

function endJob() {
  state.rawContext = undefined;
  state.context = undefined;
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

/**
 * Throws `error` as a task error, logging the stack of an unexpected one.
 * `replace()` ends a task by throwing `Replaced`: the task then returns null.
 */
function fail(error) {
  if (error instanceof Replaced) return 'null';
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
    const kwargs = kwargsJson === '{}' ? {} : parseJson(kwargsJson, 'kwargs', name, (v) => v !== null && typeof v === 'object' && !Array.isArray(v), {});
    const bound = t.bind(args, kwargs);
    state.rawContext = jobContext;
    state.context = undefined;
    // Only a job with a soft limit reads the clock: the build-time warm-up
    // (wizer) runs tasks too, and has no clock to read.
    const soft = jobContext?.softTimeLimitMs;
    state.startedAt = soft === undefined || soft === null || typeof performance === 'undefined' ? undefined : performance.now();
    value = t.fn(...bound);
  } catch (error) {
    endJob();
    return fail(error);
  }
  if (value && typeof value.then === 'function') {
    return value.then(
      (resolved) => {
        endJob();
        try {
          return ok(resolved, name);
        } catch (error) {
          return fail(error);
        }
      },
      (error) => {
        endJob();
        return fail(error);
      },
    );
  }
  endJob();
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
  const rest = new Task(
    'rest',
    task((x, y = null, options, ...more) => ({ x, y, options, more, values: [1.5, null, true, '\u00e9'] }), { kwargs: 'options' }),
  );
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
      attempt(() => runTask(rest, '[1, 2, 3]', '{"z": {"nested": [false, null]}}', context));
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
