"""Sending and replacing tasks from inside a task (Celery's ``sig.delay()``
and ``self.replace(sig)``). Needs ``send = true`` under ``[capabilities]``.

A :class:`Signature` is Celery's signature dict itself (a ``dict``
subclass, as in Celery), built with Celery's names, so what a Python plugin
sends is what a Celery task would send::

    from chard import signature, group, chord, send, replace

    send(signature("math.add", [2, 2]))
    send(signature("math.add", [2, 2]) | signature("math.mul", [10]))
    send(chord([signature("math.add", [1, 1]), signature("math.add", [2, 2])],
               signature("math.xsum")))
    replace(group([signature("math.add", [i, i]) for i in range(3)]))

Nothing is published while the task runs: the worker publishes what a job
sent together with its result, only if it succeeds (see ``wit/chard.wit``,
interface ``canvas``). ``replace`` does not return, as in Celery: the task
ends and the signature takes its place under the same id.
"""

import json

from chard import _imports
from chard.outcomes import Replaced

_encode = json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":")).encode


class Signature(dict):
    """``{"task", "args", "kwargs", "options", "subtask_type", "immutable"}``."""

    def __init__(self, task, args=(), kwargs=None, options=None, subtask_type=None, immutable=False):
        if not isinstance(task, str) or not task:
            raise TypeError("task must be a task name, got %r" % (task,))
        if isinstance(args, (str, bytes, dict)) or not hasattr(args, "__iter__"):
            raise TypeError("args must be a list or tuple, got %r" % (args,))
        if kwargs is not None and not isinstance(kwargs, dict):
            raise TypeError("kwargs must be a dict, got %r" % (kwargs,))
        super().__init__(
            task=task,
            args=list(args),
            kwargs=dict(kwargs or {}),
            options=dict(options or {}),
            subtask_type=subtask_type,
            immutable=bool(immutable),
        )

    def set(self, **options):
        """Options of ``apply_async``: ``queue``, ``countdown``, ``priority``,
        ``expires``, ``task_id``...; returns the signature."""
        self["options"].update(options)
        return self

    def link(self, callback):
        """Run ``callback`` with this one's result when it succeeds."""
        self["options"].setdefault("link", []).append(_signature_of(callback))
        return self

    def link_error(self, errback):
        """Run ``errback`` when this one fails."""
        self["options"].setdefault("link_error", []).append(_signature_of(errback))
        return self

    def chain(self, *following):
        """``self | following[0] | ...``: each step gets the previous one's
        result as its first argument (unless immutable)."""
        return chain(self, *following)

    def __or__(self, other):
        return chain(self, other)

    def to_json(self):
        return _encode(self)


def _signature_of(value):
    if isinstance(value, Signature):
        return value
    if isinstance(value, dict) and isinstance(value.get("task"), str):
        return value  # a signature dict received as an argument
    raise TypeError("expected a signature, got %r" % (value,))


def signature(task, args=(), kwargs=None, immutable=False, **options):
    """``task.s(*args, **kwargs)`` (``immutable=True``: ``task.si``)."""
    return Signature(task, args, kwargs, options, immutable=immutable)


def _steps(sig):
    # A plain chain inside a chain is flattened, as Celery's `|` does.
    if sig.get("subtask_type") == "chain" and not sig.get("options"):
        return list(sig["kwargs"]["tasks"])
    return [sig]


def chain(*steps):
    """``chain(a, b, c)`` (also ``a | b | c``)."""
    tasks = []
    for step in steps:
        tasks.extend(_steps(_signature_of(step)))
    return Signature("celery.chain", (), {"tasks": tasks}, subtask_type="chain")


def _members(sigs):
    if len(sigs) == 1 and not isinstance(sigs[0], dict):
        sigs = tuple(sigs[0])  # group([a, b]) as well as group(a, b)
    return [_signature_of(sig) for sig in sigs]


def group(*sigs):
    """``group([a, b, c])``: the members run in parallel; the result is the
    list of their results."""
    return Signature("celery.group", (), {"tasks": _members(sigs)}, subtask_type="group")


def chord(header, body):
    """``chord([a, b], body)``: ``body`` gets the list of the header's results."""
    return Signature(
        "celery.chord",
        (),
        {"header": _members((header,)), "body": _signature_of(body), "kwargs": {}},
        subtask_type="chord",
    )


def _text(sig):
    if isinstance(sig, str):
        return sig  # already JSON
    return _encode(_signature_of(sig))


def send(sig):
    """``sig.apply_async()``: sends a task, chain, group or chord (parent:
    this task). Returns the id a client waits on: the task's, a chain's last
    task's, a group's, a chord body's. Published with this task's result,
    only if it succeeds."""
    return _imports.call("canvas", "send", _text(sig))


def replace(sig):
    """Celery's ``self.replace(sig)``: this task ends here and ``sig`` runs
    in its place, under its id, with its callbacks and its place in a chain,
    group or chord. Does not return."""
    _imports.call("canvas", "replace", _text(sig))
    raise Replaced()
