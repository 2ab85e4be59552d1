// A small key-value store per plugin, kept by the worker in its result
// backend's Redis under `chard:kv:<plugin>:`; every plugin sees only its own
// keys. Needs `keyvalue = true` under [capabilities]. Values are bytes
// (Uint8Array; strings are stored as UTF-8); getJson/setJson store JSON.
// `ttl` is in seconds. The usual use is an idempotency marker:
//
//   import { kv } from 'chard';
//   if (!kv.setIfAbsent(`charged:${orderId}`, '1', { ttl: 86400 })) return 'already charged';

import { call } from './imports.js';
import { secondsToMs } from './outcomes.js';

function key(name) {
  if (typeof name !== 'string' || !name) throw new TypeError(`key must be a non-empty string, got ${name}`);
  return name;
}

function bytes(value) {
  if (typeof value === 'string') return new TextEncoder().encode(value);
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  throw new TypeError('value must be a Uint8Array or a string (use setJson for other values)');
}

function ttlMs(options) {
  const ttl = options?.ttl;
  return ttl === undefined || ttl === null ? undefined : BigInt(secondsToMs('ttl', ttl));
}

/** The bytes at `name` (Uint8Array), or undefined. */
export function get(name) {
  const value = call('keyvalue', 'get', key(name));
  return value === undefined || value === null ? undefined : value;
}

/** The text at `name` (UTF-8), or undefined. */
export function getText(name) {
  const value = get(name);
  return value === undefined ? undefined : new TextDecoder().decode(value);
}

export function set(name, value, options) {
  call('keyvalue', 'set', key(name), bytes(value), ttlMs(options));
}

/** Stores only if absent; true if it stored. */
export function setIfAbsent(name, value, options) {
  return Boolean(call('keyvalue', 'setIfAbsent', key(name), bytes(value), ttlMs(options)));
}

/** True if the key existed. */
export function del(name) {
  return Boolean(call('keyvalue', 'delete', key(name)));
}

export function exists(name) {
  return Boolean(call('keyvalue', 'exists', key(name)));
}

/** Adds `delta` to the integer at `name` (0 if absent) atomically; returns the new value. */
export function incr(name, delta = 1) {
  if (!Number.isSafeInteger(delta)) throw new TypeError(`delta must be an integer, got ${delta}`);
  return Number(call('keyvalue', 'incr', key(name), BigInt(delta)));
}

export function getJson(name, fallback = undefined) {
  const text = getText(name);
  return text === undefined ? fallback : JSON.parse(text);
}

export function setJson(name, value, options) {
  set(name, JSON.stringify(value), options);
}

export { del as delete };
