"""`pyhttp`: outbound HTTP from a Python task (the same tasks as `jshttp` and
`chttp`). Built with `--http` (see build.sh); origins granted under `http`
in `pyhttp.toml`."""

from chard import http, task


@task
def add(x, y):
    return x + y


@task
def get_json(url):
    """GET `url` and return its status and JSON body."""
    response = http.get(url)
    return {"status": response.status, "body": response.json()}


@task
def post_json(url, payload):
    """POST `payload` as JSON to `url`; return the status and JSON answer."""
    response = http.post(url, json=payload)
    return {"status": response.status, "body": response.json()}
