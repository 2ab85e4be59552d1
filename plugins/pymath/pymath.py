"""`pymath`: the `math` plugin's tasks, written in Python."""

from chard import task


@task
def add(x, y):
    """Add two numbers."""
    return x + y


@task
def mul(x, y):
    """Multiply two numbers."""
    return x * y


@task
def xsum(numbers):
    """Sum a list of numbers (always a float, like the Rust `math.xsum`)."""
    return float(sum(numbers, 0.0))


@task
def fail(message):
    """Fail with `message` (a plain `Exception`)."""
    raise Exception(message)
