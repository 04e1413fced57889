"""Property-based fuzzing and a bounded load run against the real server on loopback.

Fuzz: hypothesis writes request bodies (arbitrary JSON, near-valid predict bodies for
small signatures, raw bytes) and paths; every answer must be a JSON object holding a
result or `error`, never a 5xx, and the server must still answer /healthz afterwards.
Load: 16 concurrent clients, every request answered correctly, and batching visibly at
work (more than one row per model call). No timing is asserted here; requests/s and
latencies are in BENCHMARKS.md (scripts/benchmark_serving.py).
"""

import concurrent.futures
import http.client
import json
import urllib.parse

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

MODELS = ["mnist_cnn", "dcgan_mnist", "cdcgan_mnist", "toy", "detector_mnist", "nope"]
SIGNATURES = ["serving_default", "generate", "echo", "features", "serve_image_bytes", "", "x"]
KEYS = ["instances", "inputs", "signature_name", "b64", "seed", "labels", "latent", "x",
        "data", "times", "images", "image_bytes"]

leaves = (st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70)
          | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=6)
          | st.sampled_from(["AAAA", "iVBORw0KGgo=", "%%"]))
values = st.recursive(
    leaves, lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), children, max_size=3),
    max_leaves=40)
numbers = st.integers(-300, 300) | st.floats(-1e3, 1e3) | st.floats(allow_nan=True)
near_valid = st.fixed_dictionaries({}, optional={
    "signature_name": st.sampled_from(SIGNATURES) | leaves,
    "instances": st.lists(numbers | st.lists(numbers, max_size=3)
                          | st.fixed_dictionaries({}, optional={
                              "seed": numbers, "labels": numbers, "data": leaves,
                              "times": numbers, "b64": st.text(max_size=8)}), max_size=6),
    "inputs": values | st.dictionaries(st.sampled_from(KEYS), values, max_size=3),
})
bodies = (st.builds(lambda v: json.dumps(v).encode(), values | near_valid)
          | st.binary(max_size=80))
paths = st.builds(
    lambda model, where, verb: f"/v1/models/{urllib.parse.quote(model, safe='')}{where}{verb}",
    st.sampled_from(MODELS) | st.text(min_size=1, max_size=6),
    st.sampled_from(["", "/versions/1", "/versions/3", "/versions/99", "/labels/stable",
                     "/labels/x", "/versions/1/labels/x"]),
    st.sampled_from([":predict", ":classify", ":regress", "/metadata", "", ":nope"]))


def _send(server, method, path, body):
  connection = http.client.HTTPConnection(server.host, server.port, timeout=60)
  try:
    connection.request(method, path, body=body,
                       headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, response.read()
  finally:
    connection.close()


@settings(max_examples=400, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(method=st.sampled_from(["POST", "POST", "POST", "GET", "PUT"]), path=paths,
       body=bodies)
def test_fuzzed_requests_never_get_a_5xx_or_a_non_json_answer(server, method, path, body):
  status, raw = _send(server, method, path, body if method != "GET" else None)
  assert status < 500, (status, raw[:500])
  answer = json.loads(raw)  # NaN/Infinity allowed, as TensorFlow Serving writes them.
  assert isinstance(answer, dict), raw[:500]
  if status >= 400:
    assert set(answer) == {"error"} and answer["error"], raw[:500]
  else:
    assert set(answer) & {"predictions", "outputs", "model_version_status", "model_spec"}


def test_server_still_serves_after_the_fuzzing(server):
  status, answer, _ = server.request("GET", "/healthz")
  assert status == 200 and answer["status"] == "ok"
  assert server.request("GET", "/v1/models/mnist_cnn")[0] == 200
  assert "Traceback" not in server.log()


def _stats(server, key):
  return server.request("GET", "/healthz")[1]["batching"].get(
      key, {"model_calls": 0, "rows": 0})


def test_sixteen_concurrent_clients_are_all_answered_and_batched(server, mnist_digits):
  images, labels = mnist_digits
  key = "mnist_cnn/4/serving_default"
  before = _stats(server, key)

  def client(i):
    connection = http.client.HTTPConnection(server.host, server.port, timeout=60)
    answers = []
    for j in range(25):
      k = (i * 25 + j) % len(images)
      connection.request("POST", "/v1/models/mnist_cnn:predict",
                         body=json.dumps({"instances": images[k:k + 1].tolist()}),
                         headers={"Content-Type": "application/json"})
      response = connection.getresponse()
      answers.append((response.status, json.loads(response.read()), int(labels[k])))
    connection.close()
    return answers

  with concurrent.futures.ThreadPoolExecutor(16) as pool:
    answers = [a for result in pool.map(client, range(16)) for a in result]
  assert len(answers) == 400 and all(status == 200 for status, _, _ in answers)
  correct = np.mean([a["predictions"][0]["classes"] == label for _, a, label in answers])
  assert correct > 0.95  # The shipped CNN's accuracy on these real digits, per request.
  after = _stats(server, key)
  calls, rows = after["model_calls"] - before["model_calls"], after["rows"] - before["rows"]
  assert rows == 400 and calls < rows, after  # Requests shared model calls.
