"""Write Chard tasks in Python.

A task is a plain function; ``@task`` registers it and the glue in
``chard._component`` exports every registered task as a WebAssembly component
that any Chard worker can load::

    from chard import task, retry

    @task
    def add(x, y):
        return x + y

    @task(time_limit=5, max_retries=3, autoretry_for=[ConnectionError])
    def charge(card, cents):
        if cents == 0:
            raise ValueError("nothing to charge")
        return f"charged {cents} to {card}"

Arguments and results travel as JSON. Celery's positional ``args`` and
keyword ``kwargs`` are bound to the function's parameters with Python's own
rules (``inspect.Signature.bind``); a call that does not fit the signature
fails with ``TypeError``, before the task runs. ``*args`` and ``**kwargs``
collect what no named parameter takes, as in Celery. JSON ``null`` arrives as
``None``; to tell an argument the caller left out from one sent as ``null``,
give the parameter the default ``MISSING``::

    @task
    def patch(record_id, email=MISSING):
        if email is MISSING:
            ...  # not sent: leave the stored email alone
        elif email is None:
            ...  # sent as null: clear it

Any exception a task raises ends the job as FAILURE, with the exception's
class name (qualified with its module unless it is a builtin, e.g.
``"ValueError"``, ``"billing.errors.CardDeclined"``) and ``str(exc)`` as the
message. ``raise Retry(...)`` (or ``retry(...)``) asks the worker to run the
job again later instead.

Beyond computing, a task can report progress (``update_state``), send and
replace tasks (``send``, ``replace``, with the builders ``signature``,
``chain``, ``group``, ``chord``), use a key-value store (``chard.kv``) and
make HTTP requests (``chard.http``), each only when the plugin's manifest
grants it.

This package is plain Python: it imports the component bindings only when a
task calls the worker, so it can be imported (and tested) by an ordinary
CPython as well.
"""

import inspect
import json
import traceback
import time as _time

from chard import _imports
from chard.outcomes import (
    Failure,
    Reject,
    Replaced,
    Retry,
    exception_type,
    failure_of,
    retry,
    seconds_to_ms,
)

__all__ = [
    "task",
    "Task",
    "MISSING",
    "Retry",
    "retry",
    "Failure",
    "Reject",
    "HostError",
    "exception_type",
    "update_state",
    "signature",
    "chain",
    "group",
    "chord",
    "send",
    "replace",
    "kv",
    "http",
    "context",
    "now_ms",
    "soft_deadline_passed",
    "log",
    "debug",
    "info",
    "warn",
    "error",
    "tasks",
]

__version__ = "0.1.0"

# Results as compact JSON; made once (`json.dumps` with options builds a new
# encoder on every call).
_encode_result = json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":")).encode

_json_decoder = json.JSONDecoder()

# JSON's whitespace; `str.strip()` would also drop what JSON rejects.
_JSON_SPACE = " \t\n\r"


def _parse_json(text, empty=None):
    """`json.loads(text)`, or `empty` (default: a new list) for blank text,
    without the two regex scans `json.loads` spends on surrounding
    whitespace."""
    text = text.strip(_JSON_SPACE)
    if not text:
        return [] if empty is None else empty
    value, end = _json_decoder.raw_decode(text)
    if end != len(text):
        raise json.JSONDecodeError("Extra data", text, end)
    return value


class _Missing:
    """The type of :data:`MISSING`: one instance, false in a test, never JSON."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self):
        return False

    def __repr__(self):
        return "MISSING"

    def __reduce__(self):
        return "MISSING"


#: Default for a parameter whose absence means something else than ``None``:
#: ``def f(x, limit=MISSING)`` sees ``MISSING`` when the call left ``limit``
#: out and ``None`` when it sent ``null``.
MISSING = _Missing()

# Registered tasks by name, in registration order.
_TASKS = {}

# The job being run (a `Context` from the bindings), or None outside a job.
_CONTEXT = None
_STARTED = None  # time.monotonic() when the current job started

_OPTIONS = (
    "name",
    "queue",
    "time_limit",
    "soft_time_limit",
    "memory_limit",
    "max_retries",
    "default_retry_delay",
    "rate_limit",
    "autoretry_for",
    "retry_backoff",
    "retry_backoff_max",
    "retry_jitter",
)


def _whole(option, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError("%s must be a non-negative integer, got %r" % (option, value))
    return value


def _rate_limit(value):
    if not isinstance(value, str):
        raise TypeError("rate_limit must be a string like '10/s', got %r" % (value,))
    count, _, unit = value.partition("/")
    try:
        float(count.strip())
        ok = unit.strip() in ("s", "m", "h") if unit else True
    except ValueError:
        ok = False
    if not ok:
        raise ValueError("rate_limit must look like '10/s', '100/m' or '1000/h', got %r" % (value,))
    return value


def _declared(signature):
    """The parameters as the worker reads them (``task-info.params``):
    Python's notation, ``y?`` for one with a default, ``*args``, a bare
    ``*`` before keyword-only ones, ``**kwargs``. The worker checks the
    calls it sends to this task against it, as Celery's ``Task.typing``."""
    declared, star = [], False
    for p in signature.parameters.values():
        if p.kind == p.VAR_POSITIONAL:
            declared.append("*" + p.name)
            star = True
        elif p.kind == p.VAR_KEYWORD:
            declared.append("**" + p.name)
        else:
            if p.kind == p.KEYWORD_ONLY and not star:
                declared.append("*")
                star = True
            declared.append(p.name + ("?" if p.default is not p.empty else ""))
    return declared


class Task:
    """A registered task: the function plus its metadata."""

    def __init__(self, function, **options):
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise TypeError(
                "unknown task option %r; expected one of: %s" % (unknown[0], ", ".join(_OPTIONS))
            )
        if not callable(function):
            raise TypeError("@task expects a function, got %r" % (function,))
        self.function = function
        self.name = options.get("name") or function.__name__
        if not isinstance(self.name, str):
            raise TypeError("name must be a string, got %r" % (self.name,))
        self.signature = inspect.signature(function)
        self.params = _declared(self.signature)
        # Positional arguments alone fit a signature of plain parameters when
        # their count is between the required and the total number; such a
        # call needs no `inspect` binding (which touches far more objects).
        plain = all(
            p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in self.signature.parameters.values()
        )
        required = sum(1 for p in self.signature.parameters.values() if p.default is p.empty)
        self._positional_counts = range(required, len(self.signature.parameters) + 1) if plain else range(0)
        doc = inspect.getdoc(function)
        self.doc = doc.strip().splitlines()[0].strip() if doc and doc.strip() else None

        def ms(key):
            value = options.get(key)
            return None if value is None else seconds_to_ms(key, value)

        backoff = options.get("retry_backoff")
        if backoff is True:
            backoff_ms = 1000  # Celery: `retry_backoff=True` means a 1 s factor
        elif backoff is False or backoff is None:
            backoff_ms = None
        else:
            backoff_ms = seconds_to_ms("retry_backoff", backoff)
        autoretry = []
        for item in options.get("autoretry_for") or ():
            if isinstance(item, str):
                autoretry.append(item)
            elif isinstance(item, type) and issubclass(item, BaseException):
                autoretry.append(exception_type(item))
            else:
                raise TypeError("autoretry_for takes exception classes or names, got %r" % (item,))
        queue = options.get("queue")
        if queue is not None and not isinstance(queue, str):
            raise TypeError("queue must be a string, got %r" % (queue,))
        self.defaults = {
            "queue": queue,
            "time_limit_ms": ms("time_limit"),
            "soft_time_limit_ms": ms("soft_time_limit"),
            "memory_limit_mb": None
            if options.get("memory_limit") is None
            else _whole("memory_limit", options["memory_limit"]),
            "max_retries": None
            if options.get("max_retries") is None
            else _whole("max_retries", options["max_retries"]),
            "default_retry_delay_ms": ms("default_retry_delay"),
            "rate_limit": None if options.get("rate_limit") is None else _rate_limit(options["rate_limit"]),
            "autoretry_for": autoretry,
            "retry_backoff_ms": backoff_ms,
            "retry_backoff_max_ms": ms("retry_backoff_max"),
            "retry_jitter": bool(options.get("retry_jitter", False)),
        }
        self.__doc__ = function.__doc__
        self.__name__ = function.__name__
        self.__qualname__ = getattr(function, "__qualname__", function.__name__)
        self.__module__ = function.__module__
        self.__wrapped__ = function

    def __call__(self, *args, **kwargs):
        """Calling a task calls the function directly (handy in tests)."""
        return self.function(*args, **kwargs)

    def __repr__(self):
        return "<chard task %s(%s)>" % (self.name, ", ".join(self.params))

    def bind(self, args, kwargs):
        """Binds Celery's (args, kwargs) with Python's rules; raises
        TypeError with a message prefixed by the task name."""
        params = list(self.signature.parameters.values())
        has_varargs = any(p.kind == p.VAR_POSITIONAL for p in params)
        has_varkw = any(p.kind == p.VAR_KEYWORD for p in params)
        positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        # The usual mistakes get the same words as the other SDKs.
        if not has_varargs and len(args) > len(positional):
            raise TypeError(
                "%s: expected %d argument%s (%s), got %d"
                % (self.name, len(positional), "" if len(positional) == 1 else "s", ", ".join(positional), len(args))
            )
        for index, name in enumerate(positional[: len(args)]):
            if name in kwargs and params[index].kind != params[index].POSITIONAL_ONLY:
                raise TypeError("%s: got multiple values for argument '%s'" % (self.name, name))
        if not has_varkw:
            known = {p.name for p in params if p.kind not in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL)}
            for key in kwargs:
                if key not in known:
                    raise TypeError("%s: got an unexpected keyword argument '%s'" % (self.name, key))
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            message = str(exc)
            if message.startswith("missing a required argument: "):
                message = "missing required argument " + message[len("missing a required argument: "):]
            raise TypeError("%s: %s" % (self.name, message)) from None
        return bound


def task(function=None, **options):
    """Registers a function as a task: ``@task`` or ``@task(name=..., ...)``.

    Options (all optional; times in seconds): ``name``, ``queue``,
    ``time_limit``, ``soft_time_limit``, ``memory_limit`` (MiB),
    ``max_retries``, ``default_retry_delay``, ``rate_limit`` ("10/s"),
    ``autoretry_for`` (exception classes or names), ``retry_backoff``
    (seconds, or True for 1 s), ``retry_backoff_max``, ``retry_jitter``.
    """

    def register(fn):
        registered = Task(fn, **options)
        if registered.name in _TASKS:
            raise ValueError("task %r is registered twice" % (registered.name,))
        _TASKS[registered.name] = registered
        return registered

    if function is not None:
        if options:
            raise TypeError("use @task or @task(option=...), not both")
        return register(function)
    return register


def tasks():
    """The registered tasks, in registration order."""
    return list(_TASKS.values())


def context():
    """The job being run (task id, retries, soft deadline, headers...), as the
    worker passed it; ``None`` outside a job."""
    return _CONTEXT


def now_ms():
    """Wall-clock time as Unix milliseconds, as the worker sees it. The wall
    clock is a capability: without ``wall_clock = true`` in the plugin's
    manifest the job fails. Use ``time.monotonic()`` for durations."""
    return _imports.imports.host.now_ms()


def soft_deadline_passed():
    """True once the job's soft time limit has passed: a long task should
    check this and wind down (the hard limit stops it regardless)."""
    # The monotonic clock, so that no wall-clock grant is needed.
    limit = getattr(_CONTEXT, "soft_time_limit_ms", None)
    return limit is not None and _STARTED is not None and (_time.monotonic() - _STARTED) * 1000 >= limit


_LEVELS = ("trace", "debug", "info", "warn", "error")


def log(level, message, **fields):
    """Structured log line through the worker's log: ``log("info", "charged",
    card=card)``. Field values are converted with ``str``."""
    level = {"warning": "warn", "critical": "error"}.get(str(level).lower(), str(level).lower())
    if level not in _LEVELS:
        raise ValueError("log level must be one of %s, got %r" % (", ".join(_LEVELS), level))
    host = _imports.imports.host
    host.log(host.Level[level.upper()], str(message), [(str(k), str(v)) for k, v in fields.items()])


def debug(message, **fields):
    log("debug", message, **fields)


def info(message, **fields):
    log("info", message, **fields)


def warn(message, **fields):
    log("warn", message, **fields)


def error(message, **fields):
    log("error", message, **fields)


def _failed(exception_type_, message, args_json=None):
    return ("failed", exception_type_, message, args_json)


def dispatch(name, args_json, kwargs_json, ctx=None):
    """Runs task ``name`` on JSON ``args``/``kwargs``. Returns one of
    ``("ok", json_text)``, ``("failed", exception_type_or_None, message,
    args_json_or_None)``, ``("retry", countdown_ms, reason, max_retries,
    exc_failure_or_None, expires_or_None)`` (``exc_failure`` is a failed
    tuple's last three fields) or ``("reject", requeue, reason)``. Never raises
    ``Exception`` (BaseExceptions such as KeyboardInterrupt propagate)."""
    registered = _TASKS.get(name)
    if registered is None:
        return _failed("NotRegistered", name)
    return _run(registered, args_json, kwargs_json, ctx)


def _run(registered, args_json, kwargs_json, ctx):
    global _CONTEXT, _STARTED
    name = registered.name
    try:
        args = _parse_json(args_json)
    except ValueError as exc:
        return _failed("TypeError", "%s: args are not valid JSON: %s" % (name, exc))
    if not isinstance(args, list):
        return _failed("TypeError", "%s: args must be a JSON array, got %s" % (name, args_json.strip()))
    try:
        kwargs = _parse_json(kwargs_json, {})
    except ValueError as exc:
        return _failed("TypeError", "%s: kwargs are not valid JSON: %s" % (name, exc))
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, dict):
        return _failed("TypeError", "%s: kwargs must be a JSON object, got %s" % (name, kwargs_json.strip()))
    if not kwargs and len(args) in registered._positional_counts:
        call_args, call_kwargs = args, {}
    else:
        try:
            bound = registered.bind(args, kwargs)
        except TypeError as exc:
            return _failed("TypeError", str(exc))
        call_args, call_kwargs = bound.args, bound.kwargs
    _CONTEXT = ctx
    _STARTED = _time.monotonic()
    try:
        value = registered.function(*call_args, **call_kwargs)
    except Retry as request:
        return ("retry", request.countdown_ms, request.reason, request.max_retries, request.exc, request.expires)
    except Reject as request:
        return ("reject", request.requeue, request.reason)
    except Replaced:
        return ("ok", "null")
    except Failure as exc:
        return _failed(*failure_of(exc))
    except Exception as exc:
        try:
            if _CONTEXT is not None:
                log("debug", "task raised", exception=exception_type(exc), traceback=traceback.format_exc())
        except Exception:
            pass
        return _failed(*failure_of(exc))
    finally:
        _CONTEXT = None
    try:
        return ("ok", _encode_result(value))
    except (TypeError, ValueError) as exc:
        return _failed("TypeError", "%s: result is not JSON: %s" % (name, exc))


def _warm_up(ctx=None):
    """Runs private tasks through :func:`dispatch`'s whole path.

    Each job runs in a fresh instance of the snapshot componentize-py takes
    after the plugin is imported, so anything Python does lazily on first use
    (type attribute caches, the json module's encoder and scanner, interned
    names) would be done again by every job. Called at import time by the
    component glue, this puts all of it in the snapshot. Runs no plugin code.
    """

    def succeed(x, y=None, *rest, **options):
        return {"x": x, "y": y, "rest": list(rest), "options": options, "values": [1.5, None, True, "\u00e9"]}

    def plain(x, y=None):
        return [x, y]

    def fail(message):
        raise ValueError(message)

    _run(Task(plain), '[1, "two"]', "{}", ctx)
    _run(Task(succeed), '[1, "two", 3]', '{"y": {"nested": [false, null]}, "z": 1}', ctx)
    _run(Task(fail), '["warm-up"]', "{}", None)
    _run(Task(succeed), "[", "", None)


# What a task can do beyond computing, one module each (imported last: they
# use the names above).
from chard import http, kv  # noqa: E402
from chard._imports import HostError  # noqa: E402
from chard.canvas import chain, chord, group, replace, send, signature  # noqa: E402
from chard.progress import update_state  # noqa: E402
