"""A small key-value store per plugin, kept by the worker in its result
backend's Redis under ``chard:kv:<plugin>:``; every plugin sees only its own
keys. Needs ``keyvalue = true`` under ``[capabilities]``.

Values are bytes (``str`` is stored as UTF-8); ``get_json``/``set_json`` store
JSON. ``ttl`` is in seconds. The usual use is an idempotency marker that
survives redelivery and retries::

    from chard import kv

    @task
    def charge(order_id, cents):
        if not kv.set_if_absent("charged:%s" % order_id, b"1", ttl=86400):
            return "already charged"
        ...
"""

import json

from chard import _imports
from chard.outcomes import seconds_to_ms

_encode = json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":")).encode


def _key(key):
    if not isinstance(key, str) or not key:
        raise TypeError("key must be a non-empty string, got %r" % (key,))
    return key


def _bytes(value):
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError("value must be bytes or str, got %r (use set_json for other values)" % (type(value).__name__,))


def _ttl(ttl):
    return None if ttl is None else seconds_to_ms("ttl", ttl)


def get(key, default=None):
    """The bytes stored at ``key``, or ``default``."""
    value = _imports.call("keyvalue", "get", _key(key))
    return default if value is None else bytes(value)


def set(key, value, ttl=None):  # noqa: A001 (the store's own verb)
    """Store ``value`` at ``key``; it expires after ``ttl`` seconds, if given."""
    _imports.call("keyvalue", "set", _key(key), _bytes(value), _ttl(ttl))


def set_if_absent(key, value, ttl=None):
    """Store ``value`` only if ``key`` does not exist; True if it stored it."""
    return bool(_imports.call("keyvalue", "set_if_absent", _key(key), _bytes(value), _ttl(ttl)))


def delete(key):
    """Remove ``key``; True if it existed."""
    return bool(_imports.call("keyvalue", "delete", _key(key)))


def exists(key):
    return bool(_imports.call("keyvalue", "exists", _key(key)))


def incr(key, delta=1):
    """Add ``delta`` to the integer at ``key`` (0 if absent), atomically;
    returns the new value."""
    if isinstance(delta, bool) or not isinstance(delta, int):
        raise TypeError("delta must be an integer, got %r" % (delta,))
    return _imports.call("keyvalue", "incr", _key(key), delta)


def get_json(key, default=None):
    """The JSON value stored at ``key`` (by :func:`set_json`), or ``default``."""
    value = get(key)
    return default if value is None else json.loads(value.decode("utf-8"))


def set_json(key, value, ttl=None):
    set(key, _encode(value), ttl)
