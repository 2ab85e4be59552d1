"""HTTP side of the production tests: scrape, probe and call a Chard
worker's listeners with real Python clients and parsers.

Usage:
  ops_probe.py scrape URL          parse /metrics with prometheus_client's OpenMetrics
                                   parser (and the Prometheus text parser) and print
                                   {"content_type", "samples": [{name, labels, value}]}
  ops_probe.py get URL             print {"status", "body"} of a GET (JSON body)
  ops_probe.py api BASE TOKEN BROKER_URL
                                   run the HTTP API scenario, print what it saw
"""
import json
import sys
import urllib.error
import urllib.request

import redis
from openapi_spec_validator import validate
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families as prometheus_families


def request(method, url, body=None, token=None):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, headers, raw = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        status, headers, raw = err.code, err.headers, err.read()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode(errors="replace")
    return {"status": status, "body": parsed, "content_type": headers.get("Content-Type")}


def scrape(url):
    with urllib.request.urlopen(url, timeout=10) as resp:
        content_type = resp.headers.get("Content-Type")
        text = resp.read().decode()
    samples = []
    for family in openmetrics_families(text):
        for sample in family.samples:
            samples.append({"name": sample.name, "labels": sample.labels, "value": sample.value, "type": family.type})
    # The classic Prometheus text parser must read the page too.
    classic = sum(len(family.samples) for family in prometheus_families(text.replace("# EOF\n", "")))
    return {"content_type": content_type, "samples": samples, "classic_samples": classic}


def api(base, token, broker_url):
    r = redis.Redis.from_url(broker_url)
    out = {}
    out["healthz_no_token"] = request("GET", f"{base}/healthz")
    out["submit_no_token"] = request("POST", f"{base}/tasks/math.add", {"args": [2, 3]})
    out["submit_bad_token"] = request("POST", f"{base}/tasks/math.add", {"args": [2, 3]}, token="x" * len(token))
    waited = request("POST", f"{base}/tasks/math.add?wait=20", {"args": [2, 3]}, token)
    out["submit_wait"] = waited
    out["result"] = request("GET", f"{base}/results/{waited['body']['id']}", token=token)
    out["kwargs_wait"] = request("POST", f"{base}/tasks/math.add?wait=20", {"args": [1], "kwargs": {"y": 41}}, token)
    out["failure_wait"] = request("POST", f"{base}/tasks/faults.fail?wait=20", {"args": ["card declined"]}, token)
    # Bad input: each names its field, and nothing reaches the parked queue.
    bad = {
        "args": {"args": "2, 3", "options": {"queue": "parked"}},
        "kwargs": {"kwargs": [1], "options": {"queue": "parked"}},
        "priority": {"args": [1], "options": {"queue": "parked", "priority": 12}},
        "countdown": {"args": [1], "options": {"queue": "parked", "countdown": -5}},
        "unknown_option": {"args": [1], "options": {"queue": "parked", "retries": 3}},
        "unknown_field": {"argz": [1], "options": {"queue": "parked"}},
    }
    out["bad"] = {name: request("POST", f"{base}/tasks/math.add", body, token) for name, body in bad.items()}
    out["bad"]["not_json"] = request("POST", f"{base}/tasks/math.add", b"{args: [1]", token)
    out["bad"]["wait"] = request("POST", f"{base}/tasks/math.add?wait=soon", {"options": {"queue": "parked"}}, token)
    out["bad"]["name"] = request("POST", f"{base}/tasks/math%20add", {"options": {"queue": "parked"}}, token)
    out["parked_after_bad"] = r.llen("parked")
    parked = request("POST", f"{base}/tasks/math.add", {"args": [1, 1], "options": {"queue": "parked", "priority": 0}}, token)
    out["parked_submit"] = parked
    out["parked_after_good"] = r.llen("parked")
    out["pending"] = request("GET", f"{base}/results/{parked['body']['id']}", token=token)
    out["revoke"] = request("POST", f"{base}/results/{parked['body']['id']}/revoke?terminate=true", token=token)
    out["revoked_in_redis"] = r.zscore("chard:revoked", parked["body"]["id"]) is not None
    out["tasks"] = request("GET", f"{base}/tasks", token=token)
    out["workers"] = request("GET", f"{base}/workers", token=token)
    document = request("GET", f"{base}/openapi.json", token=token)
    out["openapi_status"] = document["status"]
    validate(document["body"])
    out["openapi_valid"] = True
    out["openapi_paths"] = sorted(document["body"]["paths"])
    out["openapi_version"] = document["body"]["openapi"]
    return out


def main():
    command = sys.argv[1]
    if command == "scrape":
        print(json.dumps(scrape(sys.argv[2])))
    elif command == "get":
        print(json.dumps(request("GET", sys.argv[2])))
    elif command == "api":
        print(json.dumps(api(sys.argv[2], sys.argv[3], sys.argv[4])))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
