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


def test_a_classifier_lists_its_top_k_likeliest_first_with_ties_in_class_order():
  from zoo.tasks import classification
  table = np.array([[0.1, 0.4, 0.1, 0.4], [0.7, 0.1, 0.15, 0.05]], np.float32)
  backend = runtime.FunctionBackend({"serving_default": lambda images: {
      "probabilities": table[:len(images)]}})
  card = {"task": "classification", "image_shape": [2, 2, 1], "labels": ["a", "b", "c", "d"]}
  model = classification.Classifier(backend, card)
  images = np.zeros((2, 2, 2, 1), np.uint8)
  out = model.predict(images, top_k=3)
  np.testing.assert_array_equal(out["top_k_classes"], [[1, 3, 0], [0, 2, 1]])
  np.testing.assert_allclose(out["top_k_probabilities"], [[0.4, 0.4, 0.1], [0.7, 0.15, 0.1]])
  assert out["top_k_labels"] == [["b", "d", "a"], ["a", "c", "b"]]
  assert list(out["classes"]) == [1, 0]  # The answer is the first of the top k.
  assert "top_k_classes" not in model.predict(images)
  assert model.default_top_k() == 4  # Five, or every class of a model with fewer.
  for bad in (0, 5, 2.5, True, "3"):
    with pytest.raises(errors.InvalidValueError,
                       match=r"`top_k`: expected a whole number from 1 to 4 \(this model's "
                             r"classes\)\. Received: "):
      model.predict(images, top_k=bad)


def test_zoo_predict_prints_the_top_5_and_refuses_a_top_k_out_of_range(tmp_path):
  import json
  import subprocess
  import sys
  from PIL import Image
  digit = np.zeros((28, 28), np.uint8)
  digit[6:22, 13:16] = 255  # A one.
  Image.fromarray(digit).save(tmp_path / "one.png")

  def predict(*flags):
    return subprocess.run([sys.executable, str(REPO / "scripts" / "predict.py"),
                           f"--model={MNIST_CNN}", *flags, str(tmp_path / "one.png")],
                          capture_output=True, text=True, cwd=REPO, timeout=300)

  proc = predict()
  assert proc.returncode == 0, proc.stderr[-3000:]
  result, = json.loads(proc.stdout)["results"]
  ranked = result["top_k"]
  assert len(ranked) == 5 and ranked[0]["label"] == result["label"] == "1"
  assert ranked[0]["probability"] == result["probability"]
  assert [r["probability"] for r in ranked] == sorted((r["probability"] for r in ranked),
                                                      reverse=True)
  proc = predict("--top_k=11")  # 0, 2.5, ...: the unit test above.
  assert proc.returncode == 2 and proc.stdout == ""
  assert "error: Invalid value for --top_k: expected a whole number from 1 to 10" in proc.stderr
  proc = subprocess.run([sys.executable, str(REPO / "scripts" / "predict.py"), "--top_k=3",
                         f"--model={REPO / 'saved_models' / 'detector_mnist'}",
                         str(tmp_path / "one.png")],
                        capture_output=True, text=True, cwd=REPO, timeout=300)
  assert proc.returncode == 2 and "--top_k is for classifiers" in proc.stderr
