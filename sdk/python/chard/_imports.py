"""Calls into the worker's imports (``chard:task/progress``, ``canvas``,
``keyvalue``), made in one place.

The bindings exist only inside the component (componentize-py generates
``wit_world``), so they are imported on first use: the rest of the SDK stays
importable, and testable, by an ordinary CPython. Tests replace
:data:`imports` with fakes.

A call the worker refuses (a capability the plugin's manifest does not
grant, a key-value store that is down, a malformed signature) comes back as
the ``err`` of a WIT ``result``; it is raised as :class:`HostError`, a
:class:`chard.Failure`, so an uncaught one ends the job as FAILURE with the
worker's message (which names the manifest key to add).
"""

from chard.outcomes import Failure


class HostError(Failure):
    """The worker refused a call; ``str(exc)`` is its message."""

    def __init__(self, message):
        super().__init__(message)


class _Imports:
    """The generated import modules, by interface name. The component glue
    (``chard._component``) sets them at build time: componentize-py keeps
    only the modules imported before its snapshot, so a job cannot import
    one later. Outside a component, an attribute that was not set is
    looked up once (and fails: there are no bindings)."""

    def __getattr__(self, name):
        import importlib

        module = importlib.import_module("wit_world.imports." + name)
        setattr(self, name, module)
        return module


imports = _Imports()


def call(interface, function, *args):
    """``imports.<interface>.<function>(*args)``; an ``err`` is raised as
    :class:`HostError`."""
    try:
        return getattr(getattr(imports, interface), function)(*args)
    except Exception as exc:
        value = getattr(exc, "value", None)
        if type(exc).__name__ == "Err" and isinstance(value, str):
            raise HostError(value) from None
        raise
