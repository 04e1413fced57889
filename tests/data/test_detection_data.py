"""Detection data: the mnist_detection builder, COCO-format folders (both layouts, bad
annotations) and TFDS's voc/coco mocks through the detection pipeline."""

import logging

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tests.conftest import MNIST_DIR
from tests.data import coco_folders
from zoo import boxes as zb
from zoo import errors
from zoo import data
from zoo.data import coco_folder, detection_input, digit_photos, mnist_detection
from zoo.models import detector

SMALL = {"image_size": 64, "widths": (4, 8, 8, 8)}


@pytest.fixture(scope="module")
def mnist_test_digits():
  return (mnist_detection.read_idx(str(MNIST_DIR / "t10k-images-idx3-ubyte.gz")),
          mnist_detection.read_idx(str(MNIST_DIR / "t10k-labels-idx1-ubyte.gz")))


def test_canvases_are_deterministic_and_boxes_are_tight_around_the_ink(mnist_test_digits):
  images, labels = mnist_test_digits
  first = list(mnist_detection.make_canvases(images, labels, 40, seed=5))
  again = list(mnist_detection.make_canvases(images, labels, 40, seed=5))
  other = list(mnist_detection.make_canvases(images, labels, 40, seed=6))
  for (a, b, c), (x, y, z) in zip(first, again):
    np.testing.assert_array_equal(a, x)
    np.testing.assert_array_equal(b, y)
    np.testing.assert_array_equal(c, z)
  assert any(not np.array_equal(a[0], o[0]) for a, o in zip(first, other))
  counts = [len(boxes) for _, boxes, _ in first]
  assert min(counts) >= 1 and max(counts) <= mnist_detection.MAX_DIGITS
  for canvas, boxes, digit_labels in first:
    ink = canvas[..., 0] > 0
    covered = np.zeros_like(ink)
    for y0, x0, y1, x1 in np.round(boxes * mnist_detection.CANVAS_PIXELS).astype(int):
      covered[y0:y1, x0:x1] = True
      inside = ink[y0:y1, x0:x1]
      # Tight: ink on every edge of the box.
      assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()
    assert not np.any(ink & ~covered)  # Every ink pixel is in a box.
    assert set(digit_labels) <= set(range(10))


def test_each_mnist_split_is_read_from_its_own_files():
  train_digits, train_labels = mnist_detection.read_mnist(str(MNIST_DIR), "train")
  test_digits, test_labels = mnist_detection.read_mnist(str(MNIST_DIR), "test")
  assert train_digits.shape == (60_000, 28, 28) and train_labels.shape == (60_000,)
  assert test_digits.shape == (10_000, 28, 28) and test_labels.shape == (10_000,)


@pytest.mark.parametrize("write", [mnist_detection.write_coco_photos,
                                   digit_photos.write_photo_folder])
def test_the_photo_writers_name_missing_files_and_never_write_into_a_folder(tmp_path, write):
  (tmp_path / "m").mkdir()
  (tmp_path / "m" / "train-images-idx3-ubyte.gz").write_bytes(b"")
  with pytest.raises(errors.InvalidValueError,
                     match=r"`manual_dir`: '.*m' lacks \['train-labels-idx1-ubyte\.gz', "
                           r"'t10k-images-idx3-ubyte\.gz', 't10k-labels-idx1-ubyte\.gz'\]"):
    write(str(tmp_path / "m"), str(tmp_path / "out"))
  assert not (tmp_path / "out").exists()
  (tmp_path / "taken").mkdir()
  with pytest.raises(errors.InvalidValueError,
                     match=r"`output_dir`: '.*taken' exists; pick a new folder"):
    write(str(MNIST_DIR), str(tmp_path / "taken"), num_images={"train": 2, "valid": 2})
  assert not any((tmp_path / "taken").iterdir())


@pytest.mark.parametrize("layout, splits", [("roboflow", ("train", "valid", "test")),
                                            ("coco", ("train2017", "val2017"))])
def test_both_coco_layouts_load(tmp_path, layout, splits):
  root = coco_folders.write(str(tmp_path / "data"), layout=layout, splits=splits,
                            gray=layout == "coco")
  builder = data.prepare_builder(f"coco:{root}", data_dir=str(tmp_path / "tfds"))
  info = data.dataset_info(builder)
  assert set(info.num_examples) == set(splits)
  assert info.class_names == ("square", "bar")  # Roboflow's placeholder left out.
  assert info.image_shape == (None, None, 3)
  truth = detection_input.ground_truth(builder, splits[0])
  assert len(truth) == 8 and all(t["image"].shape[-1] == 3 for t in truth)
  first = truth[0]
  np.testing.assert_array_equal(first["labels"], [0, 1])
  # Boxes came back normalized yxyx from COCO's pixel xywh.
  pixels = zb.yxyx_to_coco_xywh(first["boxes_yxyx"], first["height"], first["width"])
  assert np.allclose(pixels[:, 2:], [[20, 20], [8, 30]], atol=1e-3)
  # Prepared once: the same folder gives the same prepared dataset.
  again = data.prepare_builder(f"coco:{root}", data_dir=str(tmp_path / "tfds"))
  assert again.data_dir == builder.data_dir


def test_coco_folder_through_the_pipeline_with_flips(tmp_path):
  root = coco_folders.write(str(tmp_path / "data"))
  builder = data.prepare_builder(f"coco:{root}", data_dir=str(tmp_path / "tfds"))
  anchors = detector.anchors_yxyx((None, None, 3), **SMALL)
  ds = detection_input.make_detection_dataset(builder, "train", image_size=64,
                                              anchors_yxyx=anchors, batch_size=4,
                                              training=True, flip=True, seed=1)
  images, targets = next(iter(ds))
  assert images.shape == (4, 64, 64, 3) and targets.shape == (4, len(anchors), 5)
  assert set(np.unique(targets[..., 4])) >= {zb.BACKGROUND, 0, 1}
  # Letterboxed: the images are wider than tall, so the bottom rows are padding.
  assert float(np.max(images[:, -4:])) == 0.0


def _expect_error(tmp_path, change, message, layout="roboflow", rewrite=None):
  """Writes a folder, applies `change` to the train annotations (or `rewrite(root)` to the
  file itself) and expects `message`; returns the error and the annotation file."""
  root = coco_folders.write(str(tmp_path / "data"), layout=layout,
                            splits=("train", "valid") if layout == "roboflow" else ("train2017",))
  split = "train" if layout == "roboflow" else "train2017"
  path = rewrite(root) if rewrite else coco_folders.edit(root, split, layout, change)
  with pytest.raises(coco_folder.AnnotationError, match=message) as error:
    data.prepare_builder(f"coco:{root}", data_dir=str(tmp_path / "tfds"))
  return error, path


def test_malformed_json_names_the_file_and_position(tmp_path):
  def corrupt(root):
    path = coco_folders.annotation_path(root, "train", "roboflow")
    with open(path, "w") as f:
      f.write('{"images": [}')
    return path
  error, path = _expect_error(tmp_path, None, "malformed JSON at line 1, column 13",
                              rewrite=corrupt)
  assert path in str(error.value)


@pytest.mark.parametrize("change, message", [
    (lambda d: d["images"][3].update(file_name="gone.jpg"),
     r"image id 3 names file 'gone.jpg', which does not exist"),
    (lambda d: d["annotations"][5].update(category_id=9),
     r"annotation id 5 has unknown category id 9; known ids: \[1, 2\]"),
    (lambda d: d["annotations"][2].update(bbox=[500, 500, 10, 10]),
     r"annotation id 2: box .* lies entirely outside its image"),
    (lambda d: d["annotations"][0].update(image_id=77),
     r"annotation id 0 refers to image id 77, which is not in `images`"),
    (lambda d: d.pop("categories"), r"missing \['categories'\]"),
    (lambda d: d["categories"][-1].update(name=d["categories"][-2]["name"].upper() + " "),
     r"categories 'square' and 'SQUARE ' are one class when names are compared \(case and "
     r"surrounding spaces ignored, as fine-tuning matches classes by name\); rename or merge"),
])
def test_bad_annotations_get_a_message_naming_file_and_entry(tmp_path, change, message):
  error, path = _expect_error(tmp_path, change, message)
  assert path in str(error.value)


def test_original_layout_errors_name_its_file(tmp_path):
  error, path = _expect_error(tmp_path, lambda d: d["annotations"][1].update(category_id=4),
                              "unknown category id 4", layout="coco")
  assert "instances_train2017.json" in path and path in str(error.value)


def test_zero_size_crowd_and_overhanging_boxes_are_counted_warnings(tmp_path, caplog):
  root = coco_folders.write(str(tmp_path / "data"))

  def change(d):
    d["annotations"][0]["bbox"] = [3, 3, 0, 12]        # Zero width: skipped.
    d["annotations"][1]["iscrowd"] = 1                  # Crowd region: skipped.
    d["annotations"][2]["bbox"][0] = -5                 # Partly outside: clipped.
  path = coco_folders.edit(root, "train", "roboflow", change)
  with caplog.at_level(logging.WARNING, logger="zoo"):
    split = coco_folder.load_split("train", path, f"{root}/train")
  assert split.warnings == {"zero_size_boxes_skipped": 1, "boxes_clipped": 1,
                            "crowd_regions_skipped": 1}
  assert "1 zero size boxes skipped" in caplog.text and path in caplog.text
  assert sum(len(labels) for _, _, labels in split.files) == 16 - 2


def test_no_coco_layout_and_no_folder_are_clear(tmp_path):
  with pytest.raises(coco_folder.AnnotationError, match="holds no COCO annotations"):
    data.prepare_builder(f"coco:{tmp_path}")
  with pytest.raises(coco_folder.AnnotationError, match="is not a directory"):
    data.prepare_builder(f"coco:{tmp_path}/missing")


@pytest.mark.parametrize("name", ["voc/2007", "coco/2017"])
def test_tfds_detection_mocks_survive_the_pipeline(tmp_path, name):
  """TFDS's detection mocks are degenerate (tiny images, min > max boxes, box and label
  lists of different lengths): the pipeline keeps only real boxes and never fails."""
  with tfds.testing.mock_data(num_examples=12):
    builder = data.prepare_builder(name, data_dir=str(tmp_path), allow_download=True)
    anchors = detector.anchors_yxyx((None, None, 3), **SMALL)
    ds = detection_input.make_detection_dataset(builder, "train", image_size=64,
                                                anchors_yxyx=anchors, batch_size=4,
                                                training=True, flip=True)
    batches = list(ds)
    truth = detection_input.ground_truth(builder, "train")
  assert len(batches) == 3 and batches[0][0].shape == (4, 64, 64, 3)
  assert len(truth) == 12
  for t in truth:
    b = t["boxes_yxyx"]
    assert len(b) == len(t["labels"])
    assert np.all(b[:, 2] > b[:, 0]) and np.all(b[:, 3] > b[:, 1])
    assert np.all((b >= 0) & (b <= 1))
