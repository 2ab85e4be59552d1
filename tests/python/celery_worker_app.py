"""A stock Celery app with Python versions of the `math` tasks, used to
prove that `host submit` and the Rust client produce messages a real Celery
worker runs. Broker/backend from CHARD_TEST_BROKER / CHARD_TEST_BACKEND."""
import os

from celery import Celery

app = Celery("pyworker", broker=os.environ["CHARD_TEST_BROKER"], backend=os.environ["CHARD_TEST_BACKEND"])
app.conf.accept_content = ["json"]


@app.task(name="math.add")
def add(x, y):
    return x + y


@app.task(name="math.mul")
def mul(x, y):
    return x * y


@app.task(name="math.xsum")
def xsum(numbers):
    return float(sum(numbers))


@app.task(name="faults.flaky", bind=True, max_retries=5)
def flaky(self, n):
    """Retries (0.1 s countdown) until its retry count reaches n."""
    if self.request.retries < n:
        raise self.retry(countdown=0.1)
    return n


# The `canvas` plugin's tasks (plugins/canvas), for the canvas tests that
# run the same canvases on both workers.
@app.task(name="canvas.add")
def canvas_add(x, y):
    return x + y


@app.task(name="canvas.identity")
def canvas_identity(x):
    return x


@app.task(name="canvas.tsum")
def canvas_tsum(numbers):
    return sum(numbers)


@app.task(name="canvas.fail")
def canvas_fail(x):
    raise ValueError("boom")


# The `io` plugin's `send` and `replace_with` (plugins/io), for the tests
# that compare what a task sends or becomes on both workers.
@app.task(name="io.send")
def io_send(signature):
    return app.signature(signature).apply_async().id


@app.task(name="io.replace_with", bind=True)
def io_replace_with(self, signature):
    return self.replace(app.signature(signature))
