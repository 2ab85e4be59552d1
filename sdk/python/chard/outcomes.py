"""How a task ends other than by returning: failing, retrying, rejecting its
message, or being replaced.

Each is an exception the task raises, as in Celery, and each becomes one case
of the WIT ``task-error`` variant (see ``chard._component``):

- any exception: FAILURE with its type, ``str(exc)`` and its ``args`` as JSON
  (Celery stores ``exc.args`` as ``exc_message``, so a Python client re-raises
  ``ExpectedException("msg", 42)`` with both arguments). Arguments that are
  not JSON (an object, a socket) fall back to ``[str(exc)]``, which is what a
  client would see anyway.
- :class:`Retry`: RETRY; ``exc=`` is what the job fails with when no retry is
  left, ``expires=`` discards the retried message after that time.
- :class:`Reject`: Celery's ``Reject(reason, requeue)``.
- ``replace(sig)`` (``chard.canvas``) raises a private :class:`Replaced`
  after the worker has taken the signature: like Celery's ``self.replace``
  it does not return, and the task's own return value would be ignored
  anyway.

Plain Python: nothing here imports the component bindings.
"""

import datetime
import json
import math

_encode_args = json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":")).encode


def exception_type(exc):
    """The name a Python client re-raises ``exc`` as: ``"ValueError"``,
    ``"mymod.errors.CardDeclined"``."""
    cls = exc if isinstance(exc, type) else type(exc)
    module = getattr(cls, "__module__", None)
    name = getattr(cls, "__qualname__", None) or cls.__name__
    if not module or module == "builtins":
        return name
    return "%s.%s" % (module, name)


def seconds_to_ms(option, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("%s must be a number of seconds, got %r" % (option, value))
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError("%s must be a non-negative number of seconds, got %r" % (option, value))
    return int(round(value * 1000))


class Failure(Exception):
    """Fail with an explicit exception type, without defining the class:
    ``raise Failure("card declined", exception_type="billing.errors.CardDeclined")``.
    ``exception_type=None`` means ``Exception`` to a Python client; ``args``
    (a list of JSON values) are the exception's arguments a client re-raises
    it with (default: ``[message]``).
    """

    def __init__(self, message, exception_type=None, args=None):
        super().__init__(message)
        self.message = str(message)
        self.exception_type = exception_type
        self.exception_args = None if args is None else list(args)


def failure_of(exc):
    """``(exception_type, message, args_json)`` for an exception a task
    raised; ``args_json`` is ``None`` when the default (``[message]``) says
    it all or the arguments are not JSON."""
    if isinstance(exc, Failure):
        args = exc.exception_args
        type_, message = exc.exception_type, exc.message
    else:
        args = list(exc.args)
        type_, message = exception_type(exc), str(exc)
    if args is None or args == [message]:
        return type_, message, None
    try:
        return type_, message, _encode_args(args)
    except (TypeError, ValueError):
        return type_, message, None


def _expires_iso(expires, now_ms):
    """Celery's ``expires``: a datetime, an ISO-8601 string, or seconds from
    now. Naive datetimes are UTC, as Celery's client assumes by default."""
    if expires is None:
        return None
    if isinstance(expires, str):
        datetime.datetime.fromisoformat(expires.replace("Z", "+00:00"))  # ValueError if not ISO-8601
        return expires
    if isinstance(expires, datetime.datetime):
        when = expires if expires.tzinfo else expires.replace(tzinfo=datetime.timezone.utc)
    else:
        delay = seconds_to_ms("expires", expires)
        when = datetime.datetime.fromtimestamp((now_ms() + delay) / 1000, datetime.timezone.utc)
    return when.astimezone(datetime.timezone.utc).isoformat()


class Retry(Exception):
    """Raise to ask the worker to run the job again later (Celery's RETRY).

    ``countdown`` is the delay in seconds (default: the task's
    ``default_retry_delay``), ``reason`` says why (shown as the RETRY state's
    exception), ``max_retries`` overrides the task's retry budget. ``exc`` is
    the exception the job fails with once no retry is left (Celery's
    ``retry(exc=...)``; default ``MaxRetriesExceededError``) and supplies the
    reason when ``reason`` is not given. ``expires`` (a datetime, ISO-8601
    text or seconds from now) discards the retried message after that time.
    """

    def __init__(self, reason=None, countdown=None, max_retries=None, exc=None, expires=None):
        if reason is None and exc is not None:
            reason = "%s: %s" % (exception_type(exc), exc) if str(exc) else exception_type(exc)
        if countdown is not None:
            countdown = seconds_to_ms("countdown", countdown)
        if max_retries is not None and (not isinstance(max_retries, int) or max_retries < 0):
            raise ValueError("max_retries must be a non-negative integer, got %r" % (max_retries,))
        if exc is not None and not isinstance(exc, BaseException):
            raise TypeError("exc must be an exception, got %r" % (exc,))
        super().__init__(reason if reason is not None else "retry")
        self.reason = reason
        self.countdown_ms = countdown
        self.max_retries = max_retries
        self.exc = None if exc is None else failure_of(exc)
        if expires is not None and not isinstance(expires, str) and not isinstance(expires, datetime.datetime):
            from chard import now_ms  # only a relative time needs the worker's clock

            self.expires = _expires_iso(expires, now_ms)
        else:
            self.expires = _expires_iso(expires, None)


def retry(reason=None, countdown=None, max_retries=None, exc=None, expires=None):
    """Raise :class:`Retry`: ``retry(countdown=5, reason="busy")``.

    Like Celery's ``self.retry()`` it raises itself, so ``raise retry(...)``
    reads well but plain ``retry(...)`` works too.
    """
    raise Retry(reason=reason, countdown=countdown, max_retries=max_retries, exc=exc, expires=expires)


class Reject(Exception):
    """Refuse the message (Celery's ``Reject``). ``requeue=True`` puts it
    back on its queue; ``requeue=False`` drops it without storing a result."""

    def __init__(self, reason=None, requeue=False):
        super().__init__(reason)
        self.reason = None if reason is None else str(reason)
        self.requeue = bool(requeue)


class Replaced(BaseException):
    """Raised by ``chard.replace`` once the worker holds the replacement:
    unwinds the task (a ``BaseException`` so that ``except Exception`` in the
    task does not swallow it)."""
