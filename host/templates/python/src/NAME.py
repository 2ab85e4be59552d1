"""`{{name}}`: a Chard plugin. Every function decorated with `@task` is a
task, served as `{{name}}.<function>`. Arguments and return values are JSON
(numbers, strings, lists, dicts, None); an exception fails the task, and a
Celery client re-raises it with the same type name."""

from chard import task


@task
def add(x, y):
    """Add two numbers."""
    return x + y


@task
def hello(name):
    """Greet someone by name."""
    return f"Hello, {name}!"
