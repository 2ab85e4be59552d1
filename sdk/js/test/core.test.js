// Tests of the JS SDK's core (plain Node, no component needed):
// `node --test sdk/js/test/` from the repo root.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { exportTasks, parseParams, task, retry, Retry, Failure, context, warmUp, hostState } from '../core.js';

class CardDeclined extends Error {}

const plugin = {
  add: (x, y) => x + y,
  charge: task(function (card, cents = 100, opts = {}) {
    if (cents === 0) throw new CardDeclined('nothing to charge');
    return { card, cents, currency: opts.currency ?? 'EUR' };
  }, { timeLimit: 5, max_retries: 3, autoretryFor: ['ConnectionError', TypeError], retryBackoff: true, doc: 'Charge.\nMore.' }),
  flaky() { retry({ countdown: 1.5, reason: 'busy', maxRetries: 9 }); },
  explicit() { throw new Failure('declined', 'billing.errors.CardDeclined'); },
  rest: (a, ...more) => [a, more],
  ctx: () => context().retries,
  ctxTime: () => [typeof context().timeLimitMs, context().timeLimitMs],
  later: async (x) => x * 2,
  notJson: () => 1n,
  patch: task((id, email = undefined, options, ...tags) => [id, email === undefined ? 'missing' : email, options, tags], { kwargs: 'options' }),
  given: (a, b) => [a === undefined ? 'missing' : a, b === undefined ? 'missing' : b],
  notAFunction: 42,
  NotATask: class {},
};

const host = { log() {}, nowMs: () => 0n };
const tasks = exportTasks(plugin, host);
const ctx = { taskId: 't', taskName: 'x', retries: 2, priority: 0, hostname: 'h', headers: '{}', timeLimitMs: 5000n };

// A task error without its unset (undefined) fields.
function defined(value) {
  if (!value || typeof value !== 'object') return value;
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined).map(([k, v]) => [k, defined(v)]));
}

function run(name, args = '[]', kwargs = '{}') {
  try {
    return ['ok', tasks.run(name, args, kwargs, ctx)];
  } catch (error) {
    return [error.tag, defined(error.val)];
  }
}

test('ok', async () => {
  assert.deepEqual(run('add', '[2,3]'), ['ok', '5']);
  assert.deepEqual(run('add', '[2]', '{"y":3}'), ['ok', '5']);
  assert.deepEqual(run('add', '', ''), ['failed', { message: "add: missing required argument 'x'", exceptionType: 'TypeError' }]);
  assert.deepEqual(run('rest', '[1,2,3]'), ['ok', '[1,[2,3]]']);
  assert.deepEqual(run('ctx'), ['ok', '2']);
  assert.equal(await tasks.run('later', '[21]', '{}', ctx), '42');
  assert.equal(JSON.parse(run('charge', '["c"]', '{"opts":{"currency":"USD"}}')[1]).currency, 'USD');
});

test('the positional fast path binds as the general one does', () => {
  // Every parameter given positionally, no keywords: the arguments as sent.
  assert.deepEqual(run('given', '[null, 2]'), ['ok', '[null,2]']);
  // Keywords, or fewer or more arguments, still go through Python's rules.
  assert.deepEqual(run('add', '[2,3]', '{"x":1}'), ['failed', { message: "add: got multiple values for argument 'x'", exceptionType: 'TypeError' }]);
  assert.deepEqual(run('add', '[2,3,4]'), ['failed', { message: 'add: expected 2 arguments (x, y), got 3', exceptionType: 'TypeError' }]);
  assert.deepEqual(run('add', '{}', '{}'), ['failed', { message: 'add: args must be a JSON array, got {}', exceptionType: 'TypeError' }]);
  // The context is converted when asked for: plain numbers, gone after the job.
  assert.deepEqual(run('ctxTime'), ['ok', '["number",5000]']);
  assert.equal(context(), undefined);
});

test('*args, **kwargs and missing versus null', () => {
  // Left out is undefined (defaults apply), sent as null is null.
  assert.deepEqual(run('patch', '[7]'), ['ok', '[7,"missing",{},[]]']);
  assert.deepEqual(run('patch', '[7,null]'), ['ok', '[7,null,{},[]]']);
  assert.deepEqual(run('patch', '[7]', '{"email":null}'), ['ok', '[7,null,{},[]]']);
  assert.deepEqual(run('patch', '[7,"a@b","x","y"]', '{"name":"A","age":null}'), ['ok', '[7,"a@b",{"name":"A","age":null},["x","y"]]']);
  assert.deepEqual(run('patch', '[]', '{"id":1,"options":2}'), ['ok', '[1,"missing",{"options":2},[]]']);
  assert.deepEqual(run('patch', '[1]', '{"id":1}'), ['failed', { message: "patch: got multiple values for argument 'id'", exceptionType: 'TypeError' }]);
  assert.deepEqual(run('given', '[null]'), ['failed', { message: "given: missing required argument 'b'", exceptionType: 'TypeError' }]);
  assert.deepEqual(run('given', '[null, null]'), ['ok', '[null,null]']);
  const infos = Object.fromEntries(tasks.listTasks().map((t) => [t.name, t]));
  assert.deepEqual(infos.patch.params, ['id', 'email?', '*tags', '**options']);
  assert.throws(() => exportTasks({ bad: task((a) => a, { kwargs: 'nope' }) }, host), TypeError);
});

test('binding errors', () => {
  const typeError = (message) => ['failed', { message, exceptionType: 'TypeError' }];
  assert.deepEqual(run('add', '[1,2,3]'), typeError('add: expected 2 arguments (x, y), got 3'));
  assert.deepEqual(run('add', '[1]', '{"x":1}'), typeError("add: got multiple values for argument 'x'"));
  assert.deepEqual(run('add', '[1,2]', '{"z":1}'), typeError("add: got an unexpected keyword argument 'z'"));
  assert.equal(run('add', '{}')[1].exceptionType, 'TypeError');
  assert.equal(run('add', '[1')[1].exceptionType, 'TypeError');
  assert.deepEqual(run('add', '[1,2]', 'null'), ['ok', '3']);
});

test('failures and retries', () => {
  assert.deepEqual(run('charge', '["c",0]'), ['failed', { message: 'nothing to charge', exceptionType: 'CardDeclined' }]);
  assert.deepEqual(run('explicit'), ['failed', { message: 'declined', exceptionType: 'billing.errors.CardDeclined' }]);
  assert.deepEqual(run('nope'), ['failed', { message: 'nope', exceptionType: 'NotRegistered' }]);
  assert.equal(run('notJson')[1].exceptionType, 'TypeError');
  assert.deepEqual(run('flaky'), ['retry', { countdownMs: 1500n, reason: 'busy', maxRetries: 9 }]);
  assert.equal(new Retry({ exc: new TypeError('refused') }).reason, 'TypeError: refused');
});

test('metadata', () => {
  const infos = Object.fromEntries(tasks.listTasks().map((t) => [t.name, t]));
  assert.deepEqual(Object.keys(infos).sort(), ['add', 'charge', 'ctx', 'ctxTime', 'explicit', 'flaky', 'given', 'later', 'notJson', 'patch', 'rest']);
  assert.deepEqual(infos.charge.params, ['card', 'cents?', 'opts?']);
  assert.equal(infos.charge.doc, 'Charge.');
  assert.equal(infos.charge.defaults.timeLimitMs, 5000n);
  assert.equal(infos.charge.defaults.maxRetries, 3);
  assert.equal(infos.charge.defaults.retryBackoffMs, 1000n);
  assert.deepEqual(infos.charge.defaults.autoretryFor, ['ConnectionError', 'TypeError']);
  assert.deepEqual(infos.rest.params, ['a', '*more']);
  assert.throws(() => task(() => 1, { bogus: 1 }), TypeError);
});

test('parameter names from source', () => {
  const names = (fn) => parseParams(fn).map((p) => [p.name, p.optional, p.rest]);
  assert.deepEqual(names(function f(a, /* c, */ b = ',') {}), [['a', false, false], ['b', true, false]]);
  assert.deepEqual(names(async x => x), [['x', false, false]]);
  assert.deepEqual(names((a, { b, c } = {}, ...d) => 0), [['a', false, false], [null, true, false], ['d', true, true]]);
  assert.deepEqual(names({ m(p = (1, 2), q) {} }.m), [['p', true, false], ['q', false, false]]);
});

test('warm-up runs no plugin code and leaves no trace', async () => {
  const logged = [];
  const before = hostState().host;
  hostState().host = { log: (...line) => logged.push(line), nowMs: () => 0n };
  try {
    warmUp();
    await null;
    assert.deepEqual(logged, []);
    assert.equal(context(), undefined);
    assert.deepEqual(run('add', '[2,3]'), ['ok', '5']);
  } finally {
    hostState().host = before;
  }
});
