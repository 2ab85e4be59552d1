"""Progress a client can poll while the job runs: Celery's custom states.

``update_state("PROGRESS", {"done": 3, "total": 10})`` is Celery's
``self.update_state(state=..., meta=...)``: the worker stores
``{"status": state, "result": meta}`` under the task's result key, so a
Python client sees ``AsyncResult(id).state == "PROGRESS"`` and ``.info ==
meta`` (celery-progress and similar libraries work unchanged). The worker
coalesces writes (at most one per 100 ms per job, the last one wins) and
never stores one after the job's final state, so a task may call this in a
tight loop. Needs ``progress = true`` under ``[capabilities]``.
"""

import json

from chard import _imports

_encode = json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":")).encode


def update_state(state="PROGRESS", meta=None):
    """Publish ``state`` with ``meta`` (any JSON value) as the job's current
    state. Raises ``chard.HostError`` if the worker refuses (not granted, a
    ready state such as SUCCESS)."""
    if not isinstance(state, str) or not state:
        raise TypeError("state must be a non-empty string, got %r" % (state,))
    _imports.call("progress", "update_state", state, _encode(meta))
