"""The model lifecycle of scripts/serve.py as TensorFlow Serving's: versions copied into a
served folder are served within seconds, removed ones stop being served, a corrupt one is
reported and disturbs nothing, all while a client keeps sending requests (REST and gRPC)
with none failing; `--model_config_file` with each version policy; SIGTERM under load
answers every accepted request and exits 0."""

import os
import shutil
import signal
import socket
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests.serving.conftest import start_server, stop_server


def _write_version(path, factor: float):
  """A tiny model: serving_default(x float32 [N]) -> y = factor * x; slow(seconds float32
  [N]) -> waited, after spinning for max(seconds)."""

  class Toy(tf.Module):

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def serve(self, x):
      return {"y": factor * x}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="seconds")])
    def slow(self, seconds):
      start = tf.timestamp()
      until = start + tf.cast(tf.reduce_max(seconds), tf.float64)
      end = tf.while_loop(lambda t: t < until, lambda t: [tf.timestamp()], [start])
      return {"waited": seconds + 0.0 * tf.cast(end, tf.float32)}

  toy = Toy()
  tf.saved_model.save(toy, str(path), signatures={"serving_default": toy.serve,
                                                  "slow": toy.slow})


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
  """Versions 1 (y = x), 2 (y = 2x) and 3 (y = 3x), written once, copied where needed."""
  root = tmp_path_factory.mktemp("staged")
  for v in (1, 2, 3):
    _write_version(root / str(v), float(v))
  return root


class Load:
  """A client thread sending requests, alternating REST and gRPC, until stopped; keeps
  every failure and the factors it saw answered."""

  def __init__(self, served, name="toy"):
    self.served, self.name = served, name
    self.failures, self.factors, self.count = [], [], 0
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._run, daemon=True)

  def _run(self):
    channel = grpc.insecure_channel(self.served.grpc_address)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    while not self._stop.is_set():
      try:
        if self.count % 2:
          request = predict_pb2.PredictRequest()
          request.model_spec.name = self.name
          request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([1.0], np.float32)))
          y = tf.make_ndarray(stub.Predict(request, 30.0).outputs["y"])[0]
        else:
          status, body, raw = self.served.request(
              "POST", f"/v1/models/{self.name}:predict", {"instances": [1.0]})
          if status != 200:
            raise RuntimeError(f"HTTP {status}: {raw[:200]!r}")
          y = body["predictions"][0]
        self.factors.append(float(y))
      except Exception as e:  # noqa: BLE001 - every failure is kept and asserted on.
        self.failures.append(repr(e))
      self.count += 1
    channel.close()

  def __enter__(self):
    self._thread.start()
    return self

  def __exit__(self, *exc):
    self._stop.set()
    self._thread.join(timeout=60)

  def wait_for_factor(self, factor, timeout_s=30.0):
    deadline = time.monotonic() + timeout_s
    seen = len(self.factors)
    while time.monotonic() < deadline:
      if factor in self.factors[seen:]:
        return
      time.sleep(0.1)
    pytest.fail(f"No answer with factor {factor} in {timeout_s} s; last: "
                f"{self.factors[-5:]}, failures: {self.failures[-3:]}")


def _states(served, name="toy"):
  status, body, _ = served.request("GET", f"/v1/models/{name}")
  assert status == 200, body
  return {int(s["version"]): (s["state"], s["status"]["error_message"])
          for s in body["model_version_status"]}


def _wait(predicate, timeout_s=30.0):
  deadline = time.monotonic() + timeout_s
  while time.monotonic() < deadline:
    if predicate():
      return
    time.sleep(0.1)
  pytest.fail("timed out")


def test_versions_come_and_go_while_serving_without_a_failed_request(staged, tmp_path):
  folder = tmp_path / "toy"
  shutil.copytree(staged / "1", folder / "1")
  served = start_server(None, tmp_path / "serve.log", "--model_name=toy",
                        f"--model_base_path={folder}", "--file_system_poll_wait_seconds=0.2",
                        "--nodemo")
  try:
    with Load(served) as load:
      load.wait_for_factor(1.0)
      # Copied in as users do (cp -r: saved_model.pb may land before the variables).
      shutil.copytree(staged / "2", folder / "2")
      load.wait_for_factor(2.0, timeout_s=20)
      _wait(lambda: _states(served).get(1, ("",))[0] == "END")  # The latest one only.
      # A corrupt version is reported (END, its error) and version 2 keeps serving.
      os.makedirs(folder / "3")
      (folder / "3" / "saved_model.pb").write_bytes(b"not a SavedModel")
      _wait(lambda: _states(served).get(3, ("", ""))[1] != "")
      assert _states(served)[3][0] == "END" and _states(served)[2][0] == "AVAILABLE"
      load.wait_for_factor(2.0)
      # Removed: version 3's and 2's folders go; version 1 (still on disk) is the latest.
      shutil.rmtree(folder / "3")
      shutil.rmtree(folder / "2")
      load.wait_for_factor(1.0, timeout_s=20)
      _wait(lambda: served.request("POST", "/v1/models/toy/versions/2:predict",
                                   {"instances": [1.0]})[0] == 404)
      time.sleep(0.5)
    assert load.failures == [] and load.count > 20
    assert set(load.factors) == {1.0, 2.0}
  finally:
    stop_server(served)


def test_model_config_file_with_each_version_policy(staged, tmp_path):
  folder = tmp_path / "toy"
  for v in (1, 2, 3):
    shutil.copytree(staged / str(v), folder / str(v))
  config = tmp_path / "models.config"
  config.write_text(f"""
model_config_list {{
  config {{ name: "latest2" base_path: "{folder}" model_platform: "tensorflow"
           model_version_policy {{ latest {{ num_versions: 2 }} }} }}
  config {{ name: "every" base_path: "{folder}"
           model_version_policy {{ all {{}} }}
           version_labels {{ key: "stable" value: 1 }} }}
  config {{ name: "pinned" base_path: "{folder}"
           model_version_policy {{ specific {{ versions: 1 versions: 3 }} }} }}
  config {{ name: "default" base_path: "{folder}" }}
}}
""")
  served = start_server(None, tmp_path / "serve.log", f"--model_config_file={config}",
                        "--file_system_poll_wait_seconds=0", "--nodemo")
  try:
    _, health, _ = served.request("GET", "/healthz")
    assert health["models"] == {"latest2": [2, 3], "every": [1, 2, 3], "pinned": [1, 3],
                                "default": [3]}
    status, body, _ = served.request("POST", "/v1/models/every/labels/stable:predict",
                                     {"instances": [2.0]})
    assert status == 200 and body["predictions"] == [2.0]
  finally:
    stop_server(served)


def test_a_bad_config_file_gets_one_clear_line(tmp_path):
  import subprocess
  import sys
  from tests.conftest import REPO
  config = tmp_path / "models.config"
  config.write_text("model_config_list { config { name: 'x' base_pth: '/m' } }")
  result = subprocess.run([sys.executable, str(REPO / "scripts" / "serve.py"),
                           f"--model_config_file={config}"], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
  assert result.returncode == 1
  assert "error: Invalid value for --model_config_file" in result.stderr
  assert "base_pth" in result.stderr and "Traceback" not in result.stderr


def _refused(port) -> bool:
  try:
    socket.create_connection(("127.0.0.1", port), timeout=2).close()
    return False
  except OSError:
    return True


def test_sigterm_answers_every_accepted_request_then_exits_0(staged, tmp_path):
  folder = tmp_path / "toy"
  shutil.copytree(staged / "1", folder / "1")
  served = start_server(None, tmp_path / "serve.log", "--model_name=toy",
                        f"--model_base_path={folder}", "--nodemo")
  results = []

  def rest():
    status, body, _ = served.request("POST", "/v1/models/toy:predict",
                                     {"signature_name": "slow", "instances": [1.5]})
    results.append(("REST", status, body))

  def grpc_call():
    with grpc.insecure_channel(served.grpc_address) as channel:
      request = predict_pb2.PredictRequest()
      request.model_spec.name, request.model_spec.signature_name = "toy", "slow"
      request.inputs["seconds"].CopyFrom(tf.make_tensor_proto(np.array([1.5], np.float32)))
      try:
        out = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, 60)
        results.append(("GRPC", 200, float(tf.make_ndarray(out.outputs["waited"])[0])))
      except grpc.RpcError as e:
        results.append(("GRPC", e.code(), e.details()))

  calls = [threading.Thread(target=f) for f in (rest, rest, rest, grpc_call, grpc_call,
                                                 grpc_call)]
  for t in calls:
    t.start()
  time.sleep(0.7)  # All six accepted and running (each spins 1.5 s).
  served.process.send_signal(signal.SIGTERM)
  time.sleep(0.3)
  assert _refused(served.port)  # No longer accepting...
  for t in calls:
    t.join(timeout=60)
  try:
    assert served.process.wait(timeout=60) == 0, served.log()[-2000:]
  finally:
    stop_server(served)
  # ...and every request it had accepted was answered.
  assert len(results) == 6 and all(status == 200 for _, status, _ in results), results
  assert _refused(served.grpc_port)
