"""`--dataset=folder:DIR`: layouts, the seeded split, re-preparation, resizing, bad input."""

import logging
import os
import re

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from tests.data import image_folders
from zoo import data, errors, tasks
from zoo.data import image_folder, images


def _prepare(root, tmp_path, **kwargs):
  return data.prepare_builder(f"folder:{root}", data_dir=str(tmp_path / "tfds"), **kwargs)


def _filenames(builder, split):
  return sorted(x["image/filename"].decode() for x in tfds.as_numpy(builder.as_dataset(split)))


def test_split_layout_with_val_and_test_gray_and_rgb(tmp_path):
  root = image_folders.write_splits(tmp_path / "shapes",
                                    splits=(("train", 4), ("val", 2), ("test", 1)))
  builder = _prepare(root, tmp_path)
  info = data.dataset_info(builder)
  assert info.class_names == image_folders.CLASSES
  assert info.image_shape == (28, 28, 1)
  assert info.num_examples == {"train": 12, "valid": 6, "test": 3}
  images_, labels = data.split_arrays(builder, "valid")
  assert images_.shape == (6, 28, 28, 1) and images_.dtype == np.uint8
  names = _filenames(builder, "valid")
  assert names[0] == os.path.join("val", "circle", "circle_0.jpg")
  # Each image carries its class folder's label.
  for x in tfds.as_numpy(builder.as_dataset("test")):
    assert image_folders.CLASSES[x["label"]] == x["image/filename"].decode().split(os.sep)[1]
  rgb = _prepare(root, tmp_path, folder_image_shape=(32, 24, 3), folder_resize="stretch")
  assert data.dataset_info(rgb).image_shape == (32, 24, 3)
  assert data.split_arrays(rgb, "train", 2)[0].shape == (2, 32, 24, 3)


def test_class_layout_is_split_per_class_by_the_fraction_the_same_way_every_time(tmp_path):
  root = image_folders.write_classes(tmp_path / "shapes", per_class=10)
  first = _prepare(root, tmp_path)
  again = data.prepare_builder(f"folder:{root}", data_dir=str(tmp_path / "elsewhere"))
  assert _filenames(first, "valid") == _filenames(again, "valid")
  valid = _filenames(first, "valid")
  assert len(valid) == 6  # 20 % of each class's 10.
  assert {name.split(os.sep)[0] for name in valid} == set(image_folders.CLASSES)
  assert not set(valid) & set(_filenames(first, "train"))
  tenth = _prepare(root, tmp_path, folder_validation_fraction=0.1)
  assert len(_filenames(tenth, "valid")) == 3


def test_images_without_class_folders_are_one_class(tmp_path):
  root = tmp_path / "faces"
  os.makedirs(root)
  rng = np.random.default_rng(0)
  for i in range(5):
    image_folders.shape_image("circle", rng).save(root / f"{i}.png")
  info = data.dataset_info(_prepare(root, tmp_path))
  assert info.class_names == ("faces",)
  assert info.num_examples == {"train": 4, "valid": 1}


def test_prepared_once_and_again_when_the_folder_changes(tmp_path, caplog):
  root = image_folders.write_classes(tmp_path / "shapes", per_class=3)
  first = _prepare(root, tmp_path)
  with caplog.at_level(logging.INFO, logger="zoo"):
    same = _prepare(root, tmp_path)
  assert same.info.full_name == first.info.full_name
  assert "Preparing" not in caplog.text
  image_folders.shape_image("square", np.random.default_rng(5)).save(
      root / "square" / "new.png")
  changed = _prepare(root, tmp_path)
  assert changed.info.full_name != first.info.full_name
  assert sum(changed.info.splits[s].num_examples for s in ("train", "valid")) == 10


def test_resize_modes():
  # A light bar 10 px high and 40 px wide on black.
  bar = np.zeros((10, 40, 1), np.uint8)
  bar[:, :] = 255
  pad = images.fit_image(bar, (20, 20, 1), "pad").numpy()[..., 0]
  assert pad[0].max() == 0 and pad[-1].max() == 0 and pad[10].min() == 255  # Black bands.
  crop = images.fit_image(bar, (20, 20, 1), "crop").numpy()[..., 0]
  assert crop.min() == 255  # The centre 10x10 of the bar, enlarged.
  stretch = images.fit_image(bar, (20, 20, 1), "stretch").numpy()[..., 0]
  assert stretch.min() == 255
  rgb = images.fit_image(np.full((5, 5, 1), 7, np.uint8), (4, 4, 3), "pad").numpy()
  assert rgb.shape == (4, 4, 3) and (rgb == 7).all()


def test_files_that_are_not_images_are_skipped_and_counted(tmp_path, caplog):
  root = image_folders.write_classes(tmp_path / "shapes", per_class=3)
  (root / "README.txt").write_text("exported by ...")
  (root / "circle" / "notes.csv").write_text("a,b")
  (root / "circle" / ".DS_Store").write_bytes(b"\0")
  with caplog.at_level(logging.WARNING, logger="zoo"):
    builder = _prepare(root, tmp_path)
  assert "skipped 2 file(s) that are not images (README.txt, circle/notes.csv)" in caplog.text
  assert sum(builder.info.splits[s].num_examples for s in ("train", "valid")) == 9


def _expect(root, tmp_path, *fragments):
  with pytest.raises(errors.InvalidValueError) as raised:
    _prepare(root, tmp_path)
  message = str(raised.value)
  assert "\n" not in message
  for fragment in fragments:
    assert fragment in message, message
  # Nothing half-prepared is left behind.
  prepared = tmp_path / "tfds" / "image_folder"
  assert not prepared.exists() or not any(p.is_file() for p in prepared.rglob("*")), (
      list(prepared.rglob("*")))


def test_missing_and_empty_folders(tmp_path):
  _expect(tmp_path / "nowhere", tmp_path, "nowhere is not a directory")
  os.makedirs(tmp_path / "empty")
  _expect(tmp_path / "empty", tmp_path, "empty holds no images", "<class>")


def test_a_class_folder_without_images(tmp_path):
  root = image_folders.write_classes(tmp_path / "shapes", per_class=2)
  os.makedirs(root / "star")
  (root / "star" / "todo.txt").write_text("draw some")
  _expect(root, tmp_path, "class folder", "star holds no images")


def test_a_corrupt_image_names_its_file_and_leaves_nothing(tmp_path):
  root = image_folders.write_classes(tmp_path / "shapes", per_class=4)
  good = (root / "square" / "square_1.png").read_bytes()
  (root / "square" / "square_1.png").write_bytes(good[: len(good) // 3])  # Truncated.
  _expect(root, tmp_path, "square_1.png", "not a readable image")


def test_class_folders_that_differ_only_in_case_are_refused(tmp_path):
  root = image_folders.write_classes(tmp_path / "shapes", per_class=2)
  image_folders.write_classes(root, 2, classes=("Circle ",))
  _expect(root, tmp_path, "class folders 'Circle ' and 'circle', one class when names are "
                          "compared (case and surrounding spaces ignored")


def test_splits_with_different_classes(tmp_path):
  root = image_folders.write_splits(tmp_path / "shapes")
  image_folders.write_classes(root / "val", 1, classes=("star",))
  _expect(root, tmp_path, "'valid' split differ", "extra: ['star']")


def test_images_loose_in_a_split_folder_and_two_validation_folders(tmp_path):
  root = image_folders.write_splits(tmp_path / "a")
  image_folders.shape_image("circle", np.random.default_rng(0)).save(root / "train" / "x.png")
  _expect(root, tmp_path, "holds images directly", "x.png")
  root = image_folders.write_splits(tmp_path / "b", splits=(("train", 1), ("val", 1),
                                                            ("valid", 1)))
  _expect(root, tmp_path, "both val/ and valid/")


def test_a_single_class_is_refused_by_the_classifier(tmp_path):
  root = image_folders.write_classes(tmp_path / "one", per_class=3, classes=("cat",))
  info = data.dataset_info(_prepare(root, tmp_path))
  config = type("Config", (), {"dataset": f"folder:{root}"})()
  with pytest.raises(errors.InvalidValueError,
                     match=re.escape("has one class (['cat']); a classifier needs at least two")):
    tasks.get("classification").check_data(config, info)


def test_served_photos_are_prepared_as_the_folder_was(tmp_path):
  """The exported bytes path (`prepare_image_bytes` with the folder's resize) gives the very
  pixels the prepared dataset stores, for each mode."""
  root = image_folders.write_classes(tmp_path / "shapes", per_class=2)
  for resize, shape in (("pad", (28, 28, 1)), ("crop", (20, 30, 3)),
                        ("mnist_digit", (28, 28, 1))):
    builder = _prepare(root, tmp_path, folder_resize=resize, folder_image_shape=shape)
    for x in tfds.as_numpy(builder.as_dataset("train")):
      raw = (root / x["image/filename"].decode()).read_bytes()
      served, inverted, _ = images.prepare_image_bytes(tf.constant(raw), shape, resize)
      np.testing.assert_array_equal(served.numpy(), x["image"])
      assert resize == "mnist_digit" or not inverted


def _centre_of_mass(image):
  """Of the ink: what differs from the corner's level (the paper)."""
  weights = np.abs(image[..., 0].astype(np.float64) - image[0, 0, 0])
  rows, cols = np.indices(weights.shape)
  return (rows * weights).sum() / weights.sum(), (cols * weights).sum() / weights.sum()


def test_mnist_digit_folders_store_each_picture_cropped_to_its_ink_and_centred(tmp_path):
  """Small shapes near the corners of large pages, dark on light and light on dark: with
  `folder_resize=mnist_digit` the stored 28x28 images hold them as MNIST holds its digits
  (light on black, the ink's longer side 20 px, centre of mass in the middle); padded
  whole, as `pad` stores them, they stay small and off-centre."""
  rng = np.random.default_rng(0)
  for i, (x, y) in enumerate(((15, 15), (150, 20), (20, 150), (150, 145))):
    kind = image_folders.CLASSES[i % 2]
    shape = image_folders.shape_image(kind, rng, size=(36, 36))
    page = Image.new(shape.mode, (200, 200), shape.getpixel((0, 0)))  # Square: no padding.
    page.paste(shape, (x, y))
    os.makedirs(tmp_path / "pages" / kind, exist_ok=True)
    page.save(tmp_path / "pages" / kind / f"page_{i}.png")
  centred = _prepare(tmp_path / "pages", tmp_path, folder_resize="mnist_digit")
  padded = _prepare(tmp_path / "pages", tmp_path, folder_resize="pad")
  for x in tfds.as_numpy(centred.as_dataset("train").concatenate(centred.as_dataset("valid"))):
    image = x["image"]
    assert image[0].max() == image[-1].max() == image[:, 0].max() == image[:, -1].max() == 0
    ink_rows, ink_cols = np.nonzero(image[..., 0] > 127)
    assert 18 <= max(np.ptp(ink_rows), np.ptp(ink_cols)) + 1 <= 21
    assert np.allclose(_centre_of_mass(image), 13.5, atol=1.0), x["image/filename"]
  offsets = [np.abs(np.subtract(_centre_of_mass(x["image"]), 13.5)).max()
             for x in tfds.as_numpy(padded.as_dataset("train").concatenate(
                 padded.as_dataset("valid")))]
  assert min(offsets) > 4, offsets


def test_train_and_test_without_valid_holds_valid_out_of_train(tmp_path):
  root = image_folders.write_splits(tmp_path / "shapes", splits=(("train", 5), ("test", 2)))
  info = data.dataset_info(_prepare(root, tmp_path))
  assert info.num_examples == {"train": 12, "valid": 3, "test": 6}
