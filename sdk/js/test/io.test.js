// Tests of what a JS task can do beyond computing: failures with arguments,
// retry with exc/expires, Reject, progress, sending and replacing tasks, the
// key-value store. The worker's imports are fakes that record the calls.
import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { exportTasks, task, retry, Retry, Failure, Reject, setClock } from '../core.js';
import { bindImports } from '../imports.js';
import { updateState } from '../progress.js';
import { signature, chain, group, chord, send, replace } from '../canvas.js';
import * as kv from '../kv.js';

class ExpectedException extends Error {
  constructor(...args) {
    super(String(args[0]));
    this.args = args;
  }
}

let calls = [];
let refuse;
const store = new Map();
const record = (iface, impl) =>
  Object.fromEntries(
    Object.entries(impl).map(([name, fn]) => [
      name,
      (...args) => {
        calls.push([iface, name, ...args]);
        if (refuse) throw { payload: refuse }; // how componentize-js throws an err result
        return fn(...args);
      },
    ]),
  );
bindImports({
  progress: record('progress', { updateState() {} }),
  canvas: record('canvas', { send: () => `child-${calls.length}`, replace() {} }),
  keyvalue: record('keyvalue', {
    get: (k) => store.get(k),
    set: (k, v) => void store.set(k, v),
    setIfAbsent: (k, v) => (store.has(k) ? false : (store.set(k, v), true)),
    delete: (k) => store.delete(k),
    exists: (k) => store.has(k),
    incr: (k, d) => {
      const next = BigInt(new TextDecoder().decode(store.get(k) ?? new TextEncoder().encode('0'))) + d;
      store.set(k, new TextEncoder().encode(String(next)));
      return next;
    },
  }),
});
setClock(() => 1_700_000_000_000);

beforeEach(() => {
  calls = [];
  refuse = undefined;
  store.clear();
});

const plugin = {
  failsWithArgs: (message, code) => {
    throw new ExpectedException(message, code);
  },
  declines: () => {
    throw new Failure('declined', 'billing.CardDeclined', ['declined', { code: 51 }]);
  },
  retriesWithExc: (when) => retry({ countdown: 2, exc: new ExpectedException('upstream down', 503), expires: when }),
  rejects: (requeue) => {
    throw new Reject('poison message', { requeue });
  },
  reports: (steps) => {
    for (let step = 1; step <= steps; step++) updateState('PROGRESS', { done: step, total: steps });
    return steps;
  },
  fansOut: (n) => Array.from({ length: n }, (_, i) => send(signature('math.add', [i, i]))),
  replacesItself: (n) => {
    try {
      replace(group(Array.from({ length: n }, (_, i) => signature('math.add', [i, i]))));
    } catch (error) {
      if (error instanceof Error) return 'replace was swallowed';
      throw error;
    }
    return 'not reached';
  },
  once: (orderId) => {
    if (!kv.setIfAbsent(`done:${orderId}`, '1', { ttl: 60 })) return 'skipped';
    kv.setJson(`order:${orderId}`, { id: orderId, ok: true });
    return kv.incr('count');
  },
};
const tasks = exportTasks(plugin, { log() {}, nowMs: () => 0n });
const ctx = { taskId: 't', taskName: 'x', retries: 0, priority: 0, hostname: 'h', headers: '{}' };

function defined(value) {
  if (!value || typeof value !== 'object') return value;
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined).map(([k, v]) => [k, defined(v)]));
}

function run(name, args = '[]') {
  try {
    return ['ok', tasks.run(name, args, '{}', ctx)];
  } catch (error) {
    return [error.tag, defined(error.val)];
  }
}

test('failures carry their arguments', () => {
  assert.deepEqual(run('failsWithArgs', '["card declined", 42]'), [
    'failed',
    { message: 'card declined', exceptionType: 'ExpectedException', argsJson: '["card declined",42]' },
  ]);
  assert.deepEqual(run('declines'), [
    'failed',
    { message: 'declined', exceptionType: 'billing.CardDeclined', argsJson: '["declined",{"code":51}]' },
  ]);
});

test('retry with exc and expires', () => {
  assert.deepEqual(run('retriesWithExc', '["2030-01-02T03:04:05Z"]'), [
    'retry',
    {
      countdownMs: 2000n,
      reason: 'ExpectedException: upstream down',
      exc: { message: 'upstream down', exceptionType: 'ExpectedException', argsJson: '["upstream down",503]' },
      expires: '2030-01-02T03:04:05Z',
    },
  ]);
  assert.equal(run('retriesWithExc', '[60]')[1].expires, '2023-11-14T22:14:20.000Z');
  assert.equal(new Retry({ expires: new Date(Date.UTC(2030, 0, 1)) }).expires, '2030-01-01T00:00:00.000Z');
  assert.equal(run('retriesWithExc', '["next tuesday"]')[1].exceptionType, 'TypeError');
});

test('reject', () => {
  assert.deepEqual(run('rejects', '[true]'), ['reject', { requeue: true, reason: 'poison message' }]);
  assert.deepEqual(run('rejects', '[false]'), ['reject', { requeue: false, reason: 'poison message' }]);
});

test('progress', () => {
  assert.deepEqual(run('reports', '[2]'), ['ok', '2']);
  assert.deepEqual(calls, [
    ['progress', 'updateState', 'PROGRESS', '{"done":1,"total":2}'],
    ['progress', 'updateState', 'PROGRESS', '{"done":2,"total":2}'],
  ]);
});

test('a refused call fails the task with the worker message', () => {
  refuse = 'progress is not granted to plugin p: add progress = true to [capabilities] in p.toml';
  assert.deepEqual(run('reports', '[1]'), ['failed', { message: refuse }]); // Exception to a Python client
});

test('send and replace', () => {
  assert.deepEqual(run('fansOut', '[2]'), ['ok', '["child-1","child-2"]']);
  assert.deepEqual(JSON.parse(calls[1][2]), {
    task: 'math.add', args: [1, 1], kwargs: {}, options: {}, subtask_type: null, immutable: false,
  });
  calls = [];
  assert.deepEqual(run('replacesItself', '[2]'), ['ok', 'null']);
  assert.equal(calls.length, 1);
  const replacement = JSON.parse(calls[0][2]);
  assert.equal(replacement.subtask_type, 'group');
  assert.deepEqual(replacement.kwargs.tasks.map((m) => m.args), [[0, 0], [1, 1]]);
});

test('key-value', () => {
  assert.deepEqual(run('once', '["a"]'), ['ok', '1']);
  assert.deepEqual(run('once', '["a"]'), ['ok', '"skipped"']);
  assert.deepEqual(run('once', '["b"]'), ['ok', '2']);
  assert.deepEqual(kv.getJson('order:b'), { id: 'b', ok: true });
  assert.deepEqual(calls[0], ['keyvalue', 'setIfAbsent', 'done:a', new TextEncoder().encode('1'), 60000n]);
  assert.equal(kv.get('nope'), undefined);
  assert.equal(kv.delete('done:a'), true);
  assert.equal(kv.exists('done:a'), false);
  assert.throws(() => kv.set('k', 42), TypeError);
});

test('signature shapes', () => {
  const flow = signature('math.add', [2, 2]).chain(signature('math.mul', [10]), signature('math.add', [1]).si());
  const json = JSON.parse(JSON.stringify(flow));
  assert.equal(json.subtask_type, 'chain');
  assert.deepEqual(json.kwargs.tasks.map((s) => s.task), ['math.add', 'math.mul', 'math.add']);
  assert.equal(json.kwargs.tasks[2].immutable, true);
  assert.deepEqual(JSON.parse(JSON.stringify(chain(flow, signature('x')))).kwargs.tasks.length, 4);
  const c = JSON.parse(JSON.stringify(chord([signature('math.add', [1, 1]), signature('math.add', [2, 2])], signature('math.xsum'))));
  assert.deepEqual([c.task, c.subtask_type, c.kwargs.header.length, c.kwargs.body.task], ['celery.chord', 'chord', 2, 'math.xsum']);
  const linked = signature('math.add', [1, 1], {}, { queue: 'fast' }).link(signature('math.log')).linkError(signature('math.alert'));
  assert.deepEqual(JSON.parse(JSON.stringify(linked)).options.link_error[0].task, 'math.alert');
  assert.throws(() => signature('math.add', '12'), TypeError);
  assert.throws(() => group([1, 2]), TypeError);
});
