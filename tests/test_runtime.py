"""zoo.runtime, the apps' floor: cards, version resolution, backends, input checks, and the
per-file reading every front shares. Runs on the shipped models (no training)."""

import json

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import REPO
from zoo import errors, runtime

MNIST_CNN = REPO / "saved_models" / "mnist_cnn"


def test_a_model_directory_opens_its_newest_version_with_its_card():
  backend, card = runtime.open_model(str(MNIST_CNN))
  newest = max(int(d.name) for d in MNIST_CNN.iterdir() if d.name.isdigit())
  assert backend.kind == "saved_model" and backend.path.endswith(f"mnist_cnn/{newest}")
  assert card["version"] == newest and "serving_default" in backend.signatures
  out = backend.run(images=np.zeros((2, 28, 28, 1), np.uint8))
  assert out["probabilities"].shape == (2, 10)


def test_a_tflite_file_opens_in_litert_with_the_card_beside_it():
  path = str(MNIST_CNN / "3" / "model_float32.tflite")
  backend, card = runtime.open_model(path)
  assert backend.kind == "tflite" and card["name"] == "mnist_cnn"
  details = backend.input_details()["images"]
  assert np.dtype(details["dtype"]) == np.uint8


@pytest.mark.parametrize("make, message", [
    (lambda tmp: tmp / "nope.tflite", r"no such file"),
    (lambda tmp: tmp / "nope", r"is neither a \.tflite or \.onnx file nor a directory"),
    (lambda tmp: tmp, r"has no version directories"),
])
def test_bad_paths_name_the_path_and_what_was_expected(make, message, tmp_path):
  with pytest.raises(errors.NotFoundError, match=message):
    runtime.open_model(str(make(tmp_path)))


def test_a_directory_without_a_card_is_not_a_zoo_export(tmp_path):
  with pytest.raises(errors.NotFoundError, match=r"No model_card\.json in .*: not a zoo export"):
    runtime.read_card(str(tmp_path))
  card = {"name": "x", "task": "classification"}
  (tmp_path / "model_card.json").write_text(json.dumps(card))
  assert runtime.read_card(str(tmp_path)) == card


def test_check_array_names_the_input_dtype_and_shape():
  ok = runtime.check_array("images", np.zeros((3, 2, 2), np.uint8), np.uint8, (2, 2))
  assert ok.shape == (3, 2, 2)
  with pytest.raises(errors.InvalidValueError, match=r"`images`: expected dtype uint8\. "
                                                     r"Received: dtype=float32"):
    runtime.check_array("images", np.zeros((3, 2, 2), np.float32), np.uint8, (2, 2))
  with pytest.raises(errors.InvalidValueError, match=r"expected shape \[N, 2, 2\]\. "
                                                     r"Received: shape=\[3, 2\]"):
    runtime.check_array("images", np.zeros((3, 2), np.uint8), np.uint8, (2, 2))


def test_function_backend_runs_serving_functions_as_numpy():
  backend = runtime.FunctionBackend(
      {"serving_default": tf.function(lambda x: {"double": 2 * x},
                                      input_signature=[tf.TensorSpec([None], tf.float32)])})
  assert backend.kind == "keras" and backend.signatures == {"serving_default"}
  out = backend.run(x=np.array([1.0, 2.0], np.float32))
  np.testing.assert_array_equal(out["double"], [2.0, 4.0])


def test_reading_files_reports_each_bad_file_and_keeps_the_good_ones(tmp_path):
  good = tmp_path / "a.png"
  good.write_bytes(tf.io.encode_png(np.zeros((4, 4, 1), np.uint8)).numpy())
  bad = tmp_path / "b.png"
  bad.write_text("not an image")
  decode = lambda raw: tf.io.decode_image(raw).numpy()
  results = runtime.read_image_files([str(good), str(bad), str(tmp_path / "c.png")], decode)
  assert results[0][1].shape == (4, 4, 1)
  assert results[1][1] == {"file": str(bad),
                           "error": "not a decodable image (expected PNG, JPEG, GIF, BMP or WebP)"}
  assert results[2][1]["error"].startswith("cannot read file: ")


def test_a_front_for_a_task_without_files_says_which_script_to_use():
  backend, card = runtime.open_model(str(REPO / "saved_models" / "dcgan_mnist"))
  with pytest.raises(errors.InvalidValueError, match=r"is a generation model; it takes no "
                                                     r"image files"):
    runtime.Predictor(backend, card).run_files(["x.png"], {})
