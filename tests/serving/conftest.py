"""One real server for the serving tests: `scripts/serve.py` on loopback, as a user runs it,
over the shipped models plus `toy`, a tiny SavedModel made here whose outputs include NaN,
infinities and bytes (what the shipped models never produce)."""

import gzip
import http.client
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import MNIST_DIR, REPO
from zoo.serving import runner




def _write_toy(path):
  """toy/1: serving_default(x float32 [N, 2]) -> double, inverse (1/x: inf at 0), root
  (sqrt: NaN below 0); echo(data string [N], times int64 [N]) -> data_bytes, length."""

  class Toy(tf.Module):

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    def serve(self, x):
      return {"double": 2.0 * x, "inverse": 1.0 / x, "root": tf.sqrt(x)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="data"),
                                  tf.TensorSpec([None], tf.int64, name="times")])
    def echo(self, data, times):
      return {"data_bytes": data, "length": tf.cast(tf.strings.length(data), tf.int64) * times}

  toy = Toy()
  tf.saved_model.save(toy, str(path), signatures={"serving_default": toy.serve,
                                                  "echo": toy.echo})


@pytest.fixture(scope="session")
def model_base(tmp_path_factory):
  """The shipped models (linked, not copied) and `toy`."""
  base = tmp_path_factory.mktemp("served")
  for name in os.listdir(REPO / "saved_models"):
    os.symlink(REPO / "saved_models" / name, base / name)
  _write_toy(base / "toy" / "1")
  return base


class Served:
  """A running server: its address and small helpers to call it."""

  def __init__(self, port, process, log_path, grpc_port=0):
    self.host, self.port, self.process, self.log_path = "127.0.0.1", port, process, log_path
    self.url = f"http://127.0.0.1:{port}"
    self.grpc_port = grpc_port
    self.grpc_address = f"127.0.0.1:{grpc_port}"

  def request(self, method, path, body=None, headers=None):
    """-> (status, parsed JSON or None, raw bytes)."""
    connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
    try:
      if isinstance(body, (dict, list)):
        body = json.dumps(body)
      connection.request(method, path, body=body, headers=headers or {})
      response = connection.getresponse()
      raw = response.read()
    finally:
      connection.close()
    try:
      parsed = json.loads(raw)
    except ValueError:
      parsed = None
    return response.status, parsed, raw

  def log(self) -> str:
    return open(self.log_path).read()


def start_server(base, log_path, *flags, timeout_s=180) -> Served:
  """scripts/serve.py on free REST and gRPC ports (`--port=0 --grpc_port=-1`: the server
  picks them and prints them in its "Serving ... on" line, read here); `base` is its
  --model_base_path (None: the flags say which models)."""
  log = open(log_path, "w")
  where = [f"--model_base_path={base}"] if base is not None else []
  process = subprocess.Popen(
      [sys.executable, str(REPO / "scripts" / "serve.py"), *where, "--port=0",
       "--grpc_port=-1", *flags], stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
  deadline = time.monotonic() + timeout_s
  while time.monotonic() < deadline:
    text = open(log_path).read()
    ports = runner.ready_ports(text)
    if ports:
      served = Served(ports[0], process, log_path, ports[1])
      if served.request("GET", "/healthz")[0] == 200:
        return served
      pytest.fail(f"serve.py printed its ports but /healthz failed:\n{text[-3000:]}")
    if process.poll() is not None:
      pytest.fail(f"serve.py exited with {process.returncode}:\n{text[-3000:]}")
    time.sleep(0.5)
  process.kill()
  pytest.fail(f"serve.py did not print its ports in {timeout_s} s:\n{open(log_path).read()[-3000:]}")


def stop_server(served):
  served.process.terminate()
  try:
    served.process.wait(timeout=30)
  except subprocess.TimeoutExpired:
    served.process.kill()


@pytest.fixture(scope="session")
def server(model_base, tmp_path_factory):
  """scripts/serve.py with its defaults (batching on), small limits to test them, and a
  version label."""
  log_path = tmp_path_factory.mktemp("server") / "serve.log"
  served = start_server(model_base, log_path, "--max_body_bytes=2000000",
                        "--max_request_rows=64", "--version_label=mnist_cnn/stable=3")
  yield served
  stop_server(served)


@pytest.fixture(scope="session")
def mnist_digits():
  """The first 64 real MNIST test digits: uint8 [64, 28, 28, 1] and their labels."""
  with gzip.open(MNIST_DIR / "t10k-images-idx3-ubyte.gz") as f:
    images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28, 1)[:64]
  with gzip.open(MNIST_DIR / "t10k-labels-idx1-ubyte.gz") as f:
    labels = np.frombuffer(f.read(), np.uint8, offset=8)[:64]
  return images.copy(), labels.astype(np.int64)
