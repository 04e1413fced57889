"""scripts/serve.py's gRPC API with the official `tensorflow-serving-api` client, written as
TensorFlow Serving's `example/mnist_client.py` writes it: status, metadata, predict
(uint8 tensors, image bytes, the detector, a generator with a seed), every bad request
with TensorFlow Serving's status code, the health service, the metrics page, and one
batcher shared by both protocols."""

import concurrent.futures
import io
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2,
                                     get_model_status_pb2, inference_pb2, model_service_pb2_grpc,
                                     predict_pb2, prediction_service_pb2_grpc, regression_pb2)


@pytest.fixture(scope="module")
def channel(server):
  with grpc.insecure_channel(server.grpc_address) as channel:
    yield channel


@pytest.fixture(scope="module")
def stub(channel):
  return prediction_service_pb2_grpc.PredictionServiceStub(channel)


def _request(name="mnist_cnn", signature="", **inputs):
  request = predict_pb2.PredictRequest()
  request.model_spec.name = name
  if signature:
    request.model_spec.signature_name = signature
  for key, value in inputs.items():
    request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
  return request


def _png(image) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image[..., 0]).save(buffer, format="PNG")
  return buffer.getvalue()


def test_predict_uint8_digits_as_tf_servings_client_sends_them(stub, server, mnist_digits):
  images, labels = mnist_digits
  response = stub.Predict(_request(images=images[:8]), 30.0)
  classes = tf.make_ndarray(response.outputs["classes"])
  assert (classes == labels[:8]).mean() >= 0.875
  # The response names the version that answered (the newest) and the signature.
  assert response.model_spec.name == "mnist_cnn" and response.model_spec.version.value == 4
  assert response.model_spec.signature_name == "serving_default"
  # The same answer as REST's.
  _, body, _ = server.request("POST", "/v1/models/mnist_cnn:predict",
                              {"inputs": images[:8].tolist()})
  np.testing.assert_allclose(tf.make_ndarray(response.outputs["probabilities"]),
                             body["outputs"]["probabilities"], atol=1e-6)


def test_version_label_and_output_filter(stub, mnist_digits):
  images, _ = mnist_digits
  request = _request(images=images[:2])
  request.model_spec.version.value = 2
  request.output_filter.append("classes")
  response = stub.Predict(request, 30.0)
  assert response.model_spec.version.value == 2 and set(response.outputs) == {"classes"}
  request = _request(images=images[:2])
  request.model_spec.version_label = "stable"
  assert stub.Predict(request, 30.0).model_spec.version.value == 3


def test_image_bytes_detector_and_generator(stub, mnist_digits):
  images, labels = mnist_digits
  encoded = np.array([_png(images[i]) for i in range(4)], dtype=object)
  response = stub.Predict(_request(signature="serve_image_bytes", image_bytes=encoded), 30.0)
  assert (tf.make_ndarray(response.outputs["classes"]) == labels[:4]).mean() >= 0.75
  canvas = np.zeros((1, 128, 128, 1), np.uint8)
  canvas[0, 10:38, 10:38] = images[0]
  canvas[0, 70:98, 60:88] = images[1]
  out = stub.Predict(_request("detector_mnist", images=canvas), 30.0).outputs
  scores, classes = (tf.make_ndarray(out[k])[0] for k in ("detection_scores",
                                                          "detection_classes"))
  assert sorted(int(c) for c, s in zip(classes, scores) if s >= 0.5) == sorted(labels[:2])
  seeds = np.array([7, 7, 8], np.int64)
  out = stub.Predict(_request("dcgan_mnist", signature="generate", seed=seeds), 30.0).outputs
  generated = {k: tf.make_ndarray(v) for k, v in out.items()}
  pixels = next(v for v in generated.values() if v.dtype == np.uint8 and v.ndim == 4)
  assert pixels.shape[0] == 3
  np.testing.assert_array_equal(pixels[0], pixels[1])  # Same seed, same image.
  assert not np.array_equal(pixels[0], pixels[2])


def test_metadata_and_status(stub, channel):
  request = get_model_metadata_pb2.GetModelMetadataRequest()
  request.model_spec.name = "mnist_cnn"
  request.metadata_field.append("signature_def")
  response = stub.GetModelMetadata(request, 30.0)
  defs = get_model_metadata_pb2.SignatureDefMap()
  response.metadata["signature_def"].Unpack(defs)
  assert {"serving_default", "serve_image_bytes", "features"} <= set(defs.signature_def)
  assert defs.signature_def["serving_default"].inputs["images"].dtype == tf.uint8.as_datatype_enum
  assert response.model_spec.version.value == 4
  status = model_service_pb2_grpc.ModelServiceStub(channel)
  request = get_model_status_pb2.GetModelStatusRequest()
  request.model_spec.name = "mnist_cnn"
  versions = status.GetModelStatus(request, 30.0).model_version_status
  assert [(v.version, v.state) for v in versions] == [
      (v, get_model_status_pb2.ModelVersionStatus.AVAILABLE) for v in (2, 3, 4)]


def _bad_requests(images):
  wrong_name = _request(images=images)
  wrong_name.inputs["x"].CopyFrom(tf.make_tensor_proto(images))
  version = _request(images=images)
  version.model_spec.version.value = 99
  label = _request(images=images)
  label.model_spec.version_label = "canary"
  filtered = _request(images=images)
  filtered.output_filter.append("logits")
  metadata = get_model_metadata_pb2.GetModelMetadataRequest()
  metadata.model_spec.name = "mnist_cnn"
  metadata.metadata_field.append("graph")
  classify = classification_pb2.ClassificationRequest()
  classify.model_spec.name = "mnist_cnn"
  regress = regression_pb2.RegressionRequest()
  regress.model_spec.name = "mnist_cnn"
  multi = inference_pb2.MultiInferenceRequest()
  multi.tasks.add().model_spec.name = "mnist_cnn"
  return [
      ("unknown model", "Predict", _request("nope", images=images), "NOT_FOUND",
       "Servable not found for request: Latest(nope)"),
      ("unknown version", "Predict", version, "NOT_FOUND", "Specific(mnist_cnn, 99)"),
      ("unknown label", "Predict", label, "INVALID_ARGUMENT", "label: canary"),
      ("unknown signature", "Predict", _request(signature="nope", images=images),
       "FAILED_PRECONDITION", 'signature name: "nope" not found'),
      ("unknown input name", "Predict", wrong_name, "INVALID_ARGUMENT", "Sent extra: {x}"),
      ("wrong dtype", "Predict", _request(images=images.astype(np.float32)),
       "INVALID_ARGUMENT", "expected dtype DT_UINT8, received DT_FLOAT"),
      ("wrong shape", "Predict", _request(images=images[..., 0]), "INVALID_ARGUMENT",
       "expected shape [-1,28,28,1]"),
      ("undecodable image bytes", "Predict",
       _request(signature="serve_image_bytes",
                image_bytes=np.array([b"not an image"], dtype=object)),
       "INVALID_ARGUMENT", "image"),
      ("empty request", "Predict", _request(), "INVALID_ARGUMENT", "no inputs"),
      ("unknown output in filter", "Predict", filtered, "INVALID_ARGUMENT",
       "output tensor alias not found in signature: logits"),
      ("metadata field", "GetModelMetadata", metadata, "INVALID_ARGUMENT",
       "Metadata field graph is not supported"),
      ("classify", "Classify", classify, "INVALID_ARGUMENT",
       "Expected classification signature method_name to be tensorflow/serving/classify. "
       "Was: tensorflow/serving/predict"),
      ("regress", "Regress", regress, "INVALID_ARGUMENT",
       "Expected regression signature method_name to be tensorflow/serving/regress. "
       "Was: tensorflow/serving/predict"),
      ("multi inference", "MultiInference", multi, "INVALID_ARGUMENT",
       "Unsupported signature method_name: tensorflow/serving/predict"),
  ]


def test_bad_requests_get_tf_servings_status_codes_and_the_server_goes_on(stub,
                                                                          mnist_digits):
  images, _ = mnist_digits
  for what, method, request, code, message in _bad_requests(images[:2]):
    with pytest.raises(grpc.RpcError) as raised:
      getattr(stub, method)(request, 30.0)
    assert raised.value.code() == getattr(grpc.StatusCode, code), what
    assert message in raised.value.details(), (what, raised.value.details())
  assert stub.Predict(_request(images=images[:1]), 30.0).outputs["classes"]


def test_health_service_says_serving(channel):
  health = health_pb2_grpc.HealthStub(channel)
  for service in ("", "tensorflow.serving.PredictionService"):
    answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


def _scrape(server) -> dict:
  text = urllib.request.urlopen(server.url + "/monitoring/prometheus/metrics",
                                timeout=30).read().decode()
  return {(s.name, tuple(sorted(s.labels.items()))): s.value
          for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_page_counts_the_requests_made(stub, server, mnist_digits):
  images, _ = mnist_digits
  count = ":tensorflow:serving:request_count"
  ok = (count, (("model_name", "mnist_mlp"), ("status", "OK")))
  bad = (count, (("model_name", "mnist_mlp"), ("status", "INVALID_ARGUMENT")))
  latency = (":tensorflow:serving:request_latency_count",
             (("API", "predict"), ("entrypoint", "GRPC"), ("model_name", "mnist_mlp")))
  before = _scrape(server)
  for _ in range(3):
    stub.Predict(_request("mnist_mlp", images=images[:1]), 30.0)
  with pytest.raises(grpc.RpcError):
    stub.Predict(_request("mnist_mlp", images=images[:1, ..., 0]), 30.0)
  server.request("POST", "/v1/models/mnist_mlp:predict", {"instances": images[:1].tolist()})
  after = _scrape(server)
  assert after[ok] - before.get(ok, 0) == 4  # 3 gRPC + 1 REST
  assert after[bad] - before.get(bad, 0) == 1
  assert after[latency] - before.get(latency, 0) == 4
  assert any(name == ":tensorflow:cc:saved_model:load_attempt_count" for name, _ in after)
  assert any(name.startswith(":tensorflow:serving:batching_session:processed_batch_size")
             for name, _ in after)


def test_rest_and_grpc_requests_share_one_batcher(stub, server, mnist_digits):
  images, _ = mnist_digits
  key = "mnist_mlp/2/serving_default"

  def rows():
    return server.request("GET", "/healthz")[1]["batching"].get(key, {}).get("rows", 0)

  before = rows()
  with concurrent.futures.ThreadPoolExecutor(16) as pool:
    calls = [pool.submit(stub.Predict, _request("mnist_mlp", images=images[i:i + 1]), 30.0)
             for i in range(16)]
    calls += [pool.submit(server.request, "POST", "/v1/models/mnist_mlp:predict",
                          {"instances": images[i:i + 1].tolist()}) for i in range(16)]
    for call in calls:
      call.result()
  assert rows() - before == 32  # Both protocols' rows went through the one batcher.


def test_connect_switches_protocol_by_url(server, mnist_digits):
  import zoo
  from zoo.serving import client
  images, labels = mnist_digits
  card = "saved_models/mnist_cnn/4"
  over_grpc = zoo.connect(f"grpc://{server.grpc_address}", "mnist_cnn", card=card)
  over_rest = zoo.connect(server.url, "mnist_cnn", card=card)
  assert over_grpc.backend.kind == "grpc" and over_grpc.backend.version == 4
  a, b = over_grpc.predict(images[:8]), over_rest.predict(images[:8])
  np.testing.assert_array_equal(a["classes"], b["classes"])
  np.testing.assert_allclose(a["probabilities"], b["probabilities"], atol=1e-6)
  remote = zoo.connect(f"grpc://{server.grpc_address}", "mnist_cnn", version=2)
  assert remote.status()["model_version_status"][0]["state"] == "AVAILABLE"
  assert remote.version == 2
  with pytest.raises(client.ServingError, match="gRPC NOT_FOUND .*Latest\\(nope\\)"):
    zoo.connect(f"grpc://{server.grpc_address}", "nope").status()


def test_readme_grpc_client_block_runs_as_pasted(server):
  """The serving guide's gRPC client code (docs/guides/serving.md) (TensorFlow Serving's example style), run unchanged
  but for the port and the MNIST folder, prints what the guide shows."""
  import re
  import subprocess
  import sys
  from tests.conftest import MNIST_DIR, REPO
  readme = (REPO / "docs" / "guides" / "serving.md").read_text()
  blocks = re.findall(r"```python\n((?:(?!```).)*?)```\n\n```text\n((?:(?!```).)*?)```",
                      readme, re.S)
  code, shown = next((c, t) for c, t in blocks if "PredictionServiceStub" in c)
  code = code.replace("localhost:8500", server.grpc_address).replace(
      "../shared/data/mnist", str(MNIST_DIR))
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  assert result.stdout.splitlines()[:2] == shown.splitlines()[:2]
