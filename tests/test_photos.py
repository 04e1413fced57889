"""Photos and scans of digits read right (#22 item 1): a digit anywhere on a large page,
light or dark, noisy or not, as JPEG, is cropped to its ink and centred as MNIST's digits
are, inside the exported `serve_image_bytes` signature and in `predict_files`."""

import json

import numpy as np
import pytest
import tensorflow as tf

import zoo
from tests.conftest import REPO
from zoo import data, errors, export, registry, rundir, tasks
from zoo.data import digit_photos, images

SHIPPED_CNN = REPO / "saved_models" / "mnist_cnn" / "4"
NUM_PHOTOS = 300


@pytest.fixture(scope="module")
def photos(real_mnist_data_dir):
  builder = data.prepare_builder("mnist", data_dir=real_mnist_data_dir)
  digits, labels = data.split_arrays(builder, "test", NUM_PHOTOS)
  return digit_photos.make_digit_photos(digits, labels, seed=0)


def _accuracy(predict, photos, preprocessing):
  pixels = np.stack([images.prepare_image_bytes(tf.constant(raw), (28, 28, 1), preprocessing)[0]
                     for raw, _, _ in photos])
  labels = np.array([label for _, label, _ in photos])
  return float(np.mean(np.argmax(predict(pixels), -1) == labels))


def test_photo_like_digits_read_right_when_centred_as_mnist(photos):
  model = zoo.load(str(SHIPPED_CNN / "model_float32.tflite"))
  predict = lambda x: model.predict(x)["probabilities"]  # noqa: E731
  centred = _accuracy(predict, photos, "mnist_digit")
  resized = _accuracy(predict, photos, "resize")  # What every bytes path did before.
  print(f"photo-like digits: {centred:.3f} centred, {resized:.3f} resized whole")
  assert centred >= 0.95
  assert resized < 0.5  # The pages are hard: resizing them whole loses the digit.
  assert {"dark_page", "noisy"} <= set(photos[0][2])
  assert any(h["dark_page"] for _, _, h in photos) and any(h["noisy"] for _, _, h in photos)


def test_the_exported_signature_centres_and_flags_low_confidence(photos):
  loaded = tf.saved_model.load(str(SHIPPED_CNN))
  serve = loaded.signatures["serve_image_bytes"]
  batch = photos[:40]
  out = serve(image_bytes=tf.constant([raw for raw, _, _ in batch]))
  labels = np.array([label for _, label, _ in batch])
  assert np.mean(out["classes"].numpy() == labels) >= 0.95
  assert out["centered"].numpy().all()
  dark = np.array([h["dark_page"] for _, _, h in batch])
  np.testing.assert_array_equal(out["inverted"].numpy(), ~dark)
  card = json.loads((SHIPPED_CNN / "model_card.json").read_text())
  assert card["photo_preprocessing"] == "mnist_digit"
  top = out["probabilities"].numpy().max(-1)
  np.testing.assert_array_equal(out["low_confidence"].numpy(), top < card["low_confidence_below"])
  # A blank page has no digit: resized, not centred, and not a confident answer.
  blank = tf.io.encode_png(tf.fill([300, 400, 1], tf.constant(230, tf.uint8)))
  out = serve(image_bytes=tf.stack([blank]))
  assert not out["centered"].numpy()[0]


def test_predict_files_records_the_preprocessing_and_can_turn_it_off(photos, tmp_path):
  path = tmp_path / "digit.jpg"
  path.write_bytes(photos[0][0])
  model = zoo.load(str(SHIPPED_CNN))
  on, = model.predict_files([str(path)])
  off, = model.predict_files([str(path)], center_digits=False)
  assert on["preprocessing"] == "mnist_digit" and on["centered"] is True
  assert on["class"] == photos[0][1] and isinstance(on["low_confidence"], bool)
  assert off["preprocessing"] == "resize" and off["centered"] is False


def test_centering_a_digit_already_centred_keeps_it_readable(real_mnist_data_dir):
  builder = data.prepare_builder("mnist", data_dir=real_mnist_data_dir)
  digits, labels = data.split_arrays(builder, "test", 200)
  model = zoo.load(str(SHIPPED_CNN / "model_float32.tflite"))
  pngs = [tf.io.encode_png(d).numpy() for d in digits]
  pixels = np.stack([images.prepare_image_bytes(tf.constant(p), (28, 28, 1), "mnist_digit")[0]
                     for p in pngs])
  assert np.mean(model.predict(pixels)["classes"] == labels) >= 0.98


def test_an_unknown_photo_preprocessing_is_refused():
  config = registry.get_config("mnist_cnn").replace(task_kwargs={"photo_preprocessing": "centre"})
  with pytest.raises(errors.InvalidValueError,
                     match=r"task_kwargs.photo_preprocessing.*'mnist_digit'.*'centre'"):
    tasks.get("classification").knobs(config)


@pytest.mark.parametrize("knob, value, message", [
    ("crop_scale", 0.0, r"`task_kwargs.crop_scale`: expected 0 < crop_scale <= 1 .*Received: 0.0"),
    ("crop_scale", 1.5, r"`task_kwargs.crop_scale`: expected 0 < crop_scale <= 1 .*Received: 1.5"),
    ("color_jitter", 1.0, r"`task_kwargs.color_jitter`: expected 0 <= color_jitter < 1"),
])
def test_photo_augmentation_knobs_out_of_range_are_refused(knob, value, message):
  config = registry.get_config("image_classifier").replace(task_kwargs={knob: value})
  with pytest.raises(errors.InvalidValueError, match=message):
    tasks.get("classification").knobs(config)


def test_a_run_restored_from_an_export_holds_its_weights(real_mnist_data_dir, tmp_path):
  version = REPO / "saved_models" / "mnist_mlp" / "2"
  export.restore_from_export(str(version), str(tmp_path / "run"))
  config, model = rundir.load_run(str(tmp_path / "run"))
  assert config.recipe == "mnist_mlp"
  card = rundir.read_json(str(tmp_path / "run"), rundir.RUN_CARD)
  assert card["restored_from"] == str(version)
  builder = data.prepare_builder("mnist", data_dir=real_mnist_data_dir)
  digits, _ = data.split_arrays(builder, "test", 64)
  served = tf.saved_model.load(str(version)).signatures["serving_default"](
      images=tf.constant(digits))["probabilities"].numpy()
  np.testing.assert_allclose(model(data.normalize_images(digits)).numpy(), served, atol=1e-6)
  with pytest.raises(errors.NotFoundError, match="not an exported model version"):
    export.restore_from_export(str(tmp_path), str(tmp_path / "again"))


def test_resize_preprocessing_decodes_a_dataset_image_exactly(real_mnist_data_dir):
  builder = data.prepare_builder("mnist", data_dir=real_mnist_data_dir)
  digits, _ = data.split_arrays(builder, "test", 8)
  for digit in digits:
    pixels, inverted, centered = images.prepare_image_bytes(
        tf.io.encode_png(digit), (28, 28, 1), "resize")
    np.testing.assert_array_equal(pixels.numpy(), digit)
    assert not inverted.numpy() and not centered.numpy()
  with pytest.raises(ValueError, match="photo_preprocessing.*'mnist_digit', 'resize'"):
    images.prepare_image_bytes(tf.io.encode_png(digits[0]), (28, 28, 1), "centre")
