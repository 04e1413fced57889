"""scripts/serve.py against TensorFlow Serving's REST API, on loopback, with the shipped
models: status, metadata, both predict formats, b64 images, labels, every error it must
answer with 4xx, and what it must never do (5xx, crash, stop serving)."""

import base64
import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import zoo
from tests.data.test_hostile_images import png_bomb


def _png(image: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image[..., 0]).save(buffer, format="PNG")
  return buffer.getvalue()


def test_status_lists_every_version_as_tf_serving_does(server):
  status, body, _ = server.request("GET", "/v1/models/mnist_cnn")
  assert status == 200
  assert body == {"model_version_status": [
      {"version": v, "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
      for v in ("2", "3", "4")]}
  status, body, _ = server.request("GET", "/v1/models/mnist_cnn/versions/2")
  assert status == 200 and [s["version"] for s in body["model_version_status"]] == ["2"]
  status, body, _ = server.request("GET", "/v1/models/mnist_cnn/labels/stable")
  assert status == 200 and [s["version"] for s in body["model_version_status"]] == ["3"]


def test_every_shipped_model_is_served(server, model_base):
  _, health, _ = server.request("GET", "/healthz")
  for name in ("mnist_mlp", "mnist_cnn", "dcgan_mnist", "cdcgan_mnist", "detector_mnist"):
    versions = sorted(int(v.name) for v in (model_base / name).iterdir() if v.name.isdigit())
    assert health["models"][name] == versions


def test_metadata_is_tf_servings_signature_def_json(server):
  status, body, _ = server.request("GET", "/v1/models/mnist_cnn/versions/3/metadata")
  assert status == 200
  assert body["model_spec"] == {"name": "mnist_cnn", "signature_name": "", "version": "3"}
  defs = body["metadata"]["signature_def"]["signature_def"]
  assert {"serving_default", "serve_image_bytes", "features"} <= set(defs)
  images = defs["serving_default"]["inputs"]["images"]
  assert images["dtype"] == "DT_UINT8"
  assert images["tensor_shape"] == {"dim": [{"size": s, "name": ""} for s in
                                            ("-1", "28", "28", "1")], "unknown_rank": False}
  assert defs["serving_default"]["method_name"] == "tensorflow/serving/predict"
  assert defs["serving_default"]["outputs"]["probabilities"]["dtype"] == "DT_FLOAT"


def test_row_and_columnar_predict_match_the_saved_model(server, mnist_digits):
  images, labels = mnist_digits
  local = tf.saved_model.load("saved_models/mnist_cnn/3").signatures["serving_default"]
  expected = local(images=tf.constant(images[:8]))
  status, rows, _ = server.request("POST", "/v1/models/mnist_cnn:predict",
                                   {"instances": images[:8].tolist()})
  assert status == 200 and len(rows["predictions"]) == 8
  assert [r["classes"] for r in rows["predictions"]] == expected["classes"].numpy().tolist()
  assert [r["labels"] for r in rows["predictions"]] == [str(c) for c in labels[:8]]
  np.testing.assert_allclose([r["probabilities"] for r in rows["predictions"]],
                             expected["probabilities"].numpy(), atol=1e-6)
  status, columns, _ = server.request("POST", "/v1/models/mnist_cnn/versions/3:predict",
                                      {"inputs": {"images": images[:8].tolist()}})
  assert status == 200
  assert columns["outputs"]["classes"] == expected["classes"].numpy().tolist()


def test_single_output_comes_back_bare(server):
  status, body, _ = server.request("POST", "/v1/models/dcgan_mnist:predict",
                                   {"signature_name": "generate", "instances": [1, 2]})
  assert status == 200
  images = np.asarray(body["predictions"])  # Bare values, not {"images": ...} objects.
  assert images.shape == (2, 28, 28, 1) and images.max() > 100
  again = server.request("POST", "/v1/models/dcgan_mnist:predict",
                         {"signature_name": "generate", "instances": [1]})[1]
  assert again["predictions"][0] == body["predictions"][0]  # Same seed, same image.
  status, body, _ = server.request("POST", "/v1/models/cdcgan_mnist:predict", {
      "signature_name": "generate", "instances": [{"seed": 3, "labels": 7}]})
  assert status == 200 and np.asarray(body["predictions"]).shape == (1, 28, 28, 1)


def test_b64_image_bytes_are_classified(server, mnist_digits):
  images, labels = mnist_digits
  instances = [{"b64": base64.b64encode(_png(images[i])).decode()} for i in range(4)]
  status, body, _ = server.request("POST", "/v1/models/mnist_cnn:predict", {
      "signature_name": "serve_image_bytes", "instances": instances})
  assert status == 200, body
  assert [r["classes"] for r in body["predictions"]] == labels[:4].tolist()


def test_detector_finds_digits_in_a_canvas(server, mnist_digits):
  images, labels = mnist_digits
  canvas = np.zeros((128, 128, 1), np.uint8)
  canvas[10:38, 10:38] = images[0]
  canvas[70:98, 60:88] = images[1]
  status, body, _ = server.request("POST", "/v1/models/detector_mnist:predict",
                                   {"instances": [canvas.tolist()]})
  assert status == 200
  row = body["predictions"][0]
  confident = [int(c) for c, s in zip(row["detection_classes"], row["detection_scores"])
               if s >= 0.5]
  assert sorted(confident) == sorted(labels[:2].tolist())


def test_nan_infinity_and_bytes_outputs_are_encoded_as_tf_serving_does(server):
  status, body, raw = server.request("POST", "/v1/models/toy:predict",
                                     {"instances": [[0.0, -4.0], [0.2, 4.0]]})
  assert status == 200
  assert b"Infinity" in raw and b"NaN" in raw
  first, second = body["predictions"]
  assert first["inverse"][0] == float("inf") and np.isnan(first["root"][1])
  assert second["double"] == [0.4, 8.0]  # Shortest float32 form: 0.4, not 0.4000000059604645
  assert b"0.4," in raw
  status, body, _ = server.request("POST", "/v1/models/toy:predict", {
      "signature_name": "echo", "inputs": {"data": [{"b64": base64.b64encode(b"\x00\xff").decode()},
                                                    "abc"], "times": [1, 2]}})
  assert status == 200
  assert body["outputs"]["data_bytes"] == [{"b64": "AP8="}, {"b64": "YWJj"}]
  assert body["outputs"]["length"] == [2, 6]


BAD_REQUESTS = [
    # (what, path, body, status, part of the message)
    ("malformed JSON", "/v1/models/mnist_cnn:predict", b'{"instances": [', 400, "JSON Parse error"),
    ("empty body", "/v1/models/mnist_cnn:predict", b"", 400, "empty"),
    ("not an object", "/v1/models/mnist_cnn:predict", b"[1, 2]", 400, "Is not object"),
    ("both keys", "/v1/models/mnist_cnn:predict", {"instances": [1], "inputs": [1]}, 400,
     "only one of"),
    ("neither key", "/v1/models/mnist_cnn:predict", {"examples": []}, 400,
     "Missing 'inputs' or 'instances'"),
    ("empty instances", "/v1/models/mnist_cnn:predict", {"instances": []}, 400, "No values"),
    ("float for uint8", "/v1/models/mnist_cnn:predict",
     {"instances": [[[[0.5]] * 28] * 28]}, 400, "not of expected type: uint8"),
    ("out of uint8 range", "/v1/models/mnist_cnn:predict",
     {"instances": [[[[300]] * 28] * 28]}, 400, "[0, 255]"),
    ("wrong shape", "/v1/models/mnist_cnn:predict", {"instances": [[[1, 2], [3, 4]]]}, 400,
     "expected shape [-1,28,28,1]"),
    ("ragged nesting", "/v1/models/mnist_cnn:predict",
     {"instances": [[[[0]] * 28] * 27 + [[[0]] * 3]]}, 400, "different lengths"),
    ("b64 for a number", "/v1/models/mnist_cnn:predict", {"instances": [{"b64": "AAAA"}]}, 400,
     "for string inputs only"),
    ("bad base64", "/v1/models/mnist_cnn:predict",
     {"signature_name": "serve_image_bytes", "instances": [{"b64": "%%%"}]}, 400,
     "base64"),
    ("undecodable image", "/v1/models/mnist_cnn:predict",
     {"signature_name": "serve_image_bytes",
      "instances": [{"b64": base64.b64encode(b"not an image").decode()}]}, 400,
     "Unknown image file format. One of JPEG"),  # TensorFlow's reason, not its header.
    ("image over the pixel budget", "/v1/models/mnist_cnn:predict",
     {"signature_name": "serve_image_bytes",
      "instances": [{"b64": base64.b64encode(png_bomb(12000, 12000)).decode()}]}, 400,
     "image of 12000x12000 pixels (width x height, from its header) is over the budget"),
    ("images over the request's pixel budget", "/v1/models/mnist_cnn:predict",
     {"signature_name": "serve_image_bytes",
      "instances": [{"b64": base64.b64encode(png_bomb(7000, 7000)).decode()}] * 3}, 400,
     "request of 3 images adding up to 147000000 pixels is over the budget of 100000000"),
    ("unknown signature", "/v1/models/mnist_cnn:predict",
     {"signature_name": "nope", "instances": [1]}, 400, 'signature name: "nope" not found'),
    ("signature not a string", "/v1/models/mnist_cnn:predict",
     {"signature_name": 3, "instances": [1]}, 400, "must be a string"),
    ("unknown input name", "/v1/models/mnist_cnn:predict", {"instances": [{"pixels": 1}]}, 400,
     "keys must be equal to: images"),
    ("missing input", "/v1/models/cdcgan_mnist:predict",
     {"signature_name": "generate", "inputs": {"seed": [1]}}, 400, "Missing named input: labels"),
    ("unknown label", "/v1/models/mnist_cnn/labels/canary:predict", {"instances": [1]}, 400,
     "Unrecognized servable version label: canary"),
    ("unknown model", "/v1/models/nope:predict", {"instances": [1]}, 404, "Servable not found"),
    ("unknown version", "/v1/models/mnist_cnn/versions/9:predict", {"instances": [1]}, 404,
     "Specific(mnist_cnn, 9)"),
    ("too many rows", "/v1/models/dcgan_mnist:predict",
     {"signature_name": "generate", "instances": list(range(65))}, 400, "--max_request_rows"),
    ("classify verb", "/v1/models/mnist_cnn:classify", {"examples": [{}]}, 400, "use :predict"),
    ("wrong method", "/v1/models/mnist_cnn", None, 400, "Malformed request: PUT"),
    ("no model name", "/v1/models", None, 400, "Missing model name"),
]


@pytest.mark.parametrize("what,path,body,status,message", BAD_REQUESTS,
                         ids=[b[0] for b in BAD_REQUESTS])
def test_bad_requests_get_tf_serving_errors(server, what, path, body, status, message):
  method = "PUT" if what == "wrong method" else "GET" if body is None else "POST"
  got, answer, raw = server.request(method, path, body)
  assert got == status, raw
  assert isinstance(answer, dict) and set(answer) == {"error"}, raw
  assert message in answer["error"]


def test_unknown_model_status_is_404_and_unknown_paths_answer_json(server):
  status, body, _ = server.request("GET", "/v1/models/nope")
  assert status == 404 and "error" in body
  status, body, _ = server.request("GET", "/v1/models/mnist_cnn/versions/9")
  assert status == 404 and "version 9" in body["error"]
  status, body, _ = server.request("GET", "/no/such/page")
  assert status == 404 and "error" in body


def test_oversized_body_is_413_and_the_server_keeps_serving(server):
  big = b'{"instances": [' + b"0," * 1_100_000 + b"0]}"  # 2.2 MB > --max_body_bytes 2 MB
  status, body, _ = server.request("POST", "/v1/models/mnist_cnn:predict", big)
  assert status == 413 and "--max_body_bytes" in body["error"]
  assert server.request("GET", "/healthz")[0] == 200
  assert server.request("GET", "/v1/models/mnist_cnn")[0] == 200


def _allowed_origin(served, origin):
  import http.client
  connection = http.client.HTTPConnection(served.host, served.port, timeout=30)
  connection.request("GET", "/v1/models/mnist_mlp", headers={"Origin": origin})
  response = connection.getresponse()
  response.read()
  connection.close()
  return response.getheader("access-control-allow-origin")


def test_cors_is_off_by_default_and_one_flag_allows_an_origin(server, model_base, tmp_path):
  from tests.serving.conftest import start_server, stop_server
  assert _allowed_origin(server, "http://localhost:3000") is None
  cors = start_server(model_base, tmp_path / "cors.log", "--models=mnist_mlp",
                      "--cors_origin=http://localhost:3000", "--nodemo")
  try:
    assert _allowed_origin(cors, "http://localhost:3000") == "http://localhost:3000"
    assert _allowed_origin(cors, "http://elsewhere.test") is None
    assert cors.request("GET", "/")[0] == 404  # --nodemo
  finally:
    stop_server(cors)


def test_python_client_runs_a_served_model_like_zoo_load(server, mnist_digits):
  images, labels = mnist_digits
  remote = zoo.connect(server.url, "mnist_cnn")
  assert remote.version == 4 and "features" in remote.signatures
  out = remote.run(images=images[:5])
  assert out["classes"].dtype == np.int64 and out["classes"].tolist() == labels[:5].tolist()
  assert out["labels"].tolist() == [str(c).encode() for c in labels[:5]]
  classifier = zoo.connect(server.url, "mnist_cnn", card="saved_models/mnist_cnn/3")
  local = zoo.load("saved_models/mnist_cnn/3")
  np.testing.assert_allclose(classifier.predict(images[:5])["probabilities"],
                             local.predict(images[:5])["probabilities"], atol=1e-6)
  generator = zoo.connect(server.url, "cdcgan_mnist", card="saved_models/cdcgan_mnist/1")
  np.testing.assert_array_equal(generator.generate_seeds([4, 5], labels=[7, 1]),
                                zoo.load("saved_models/cdcgan_mnist").generate_seeds(
                                    [4, 5], labels=[7, 1]))
  with pytest.raises(zoo.serving.client.ServingError) as error:
    zoo.connect(server.url, "nope").status()
  assert error.value.status == 404


def test_demo_page_and_assets_are_served_offline(server):
  status, _, raw = server.request("GET", "/")
  assert status == 200 and b'src="/demo.js"' in raw
  for asset in ("/demo.js", "/demo.css"):
    status, _, raw = server.request("GET", asset)
    assert status == 200 and raw
  assert b"http" not in server.request("GET", "/demo.js")[2].replace(b"HTTP ", b"")


def test_readme_row_format_request_runs_as_pasted(server):
  """The serving guide's row-format example (docs/guides/serving.md) (a test digit as uint8 pixels, piped to curl) is a
  real request: its Python half, run as written but for the MNIST folder, is what the
  server classifies as 7."""
  import re
  import subprocess
  import sys
  from tests.conftest import MNIST_DIR, REPO
  readme = (REPO / "docs" / "guides" / "serving.md").read_text()
  command = re.search(r'^python -c "(import gzip, json.*?)" \|\n  curl -s -d @- '
                      r"localhost:8501/v1/models/mnist_cnn:predict$", readme, re.M).group(1)
  body = subprocess.run([sys.executable, "-c", command.replace("../shared/data/mnist",
                                                               str(MNIST_DIR))],
                        capture_output=True, text=True, check=True, timeout=60).stdout
  status, answer, _ = server.request("POST", "/v1/models/mnist_cnn:predict", body)
  assert status == 200 and answer["predictions"][0]["classes"] == 7
