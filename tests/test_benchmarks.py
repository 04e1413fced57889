"""The arithmetic and file handling behind BENCHMARKS.md."""

import keras
import numpy as np
import pytest

import os
import sys

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
from benchmarks import family, folder, foundation, precision, report, serving, steptime  # noqa: E402,I001
from tests.data import image_folders  # noqa: E402
from zoo.models import backbones  # noqa: E402


def test_seconds_to_accuracy_counts_training_time_up_to_the_first_epoch_at_target():
  assert foundation.seconds_to_accuracy([10, 5, 7, 3], [0.97, 0.985, 0.991, 0.995], 0.99) == (22, 3)
  assert foundation.seconds_to_accuracy([10, 5], [0.97, 0.98], 0.99) == (None, None)
  assert foundation.seconds_to_accuracy([4.0], [0.99], 0.99) == (4.0, 1)


def test_write_section_replaces_its_own_block_and_keeps_the_others(tmp_path):
  path = str(tmp_path / "BENCHMARKS.md")
  report.write_section(path, "A", "first\n")
  report.write_section(path, "B", "other\n")
  report.write_section(path, "A", "second\n")
  text = open(path).read()
  assert "second" in text and "first" not in text and "other" in text
  assert text.count("## A") == 1 and text.index("## A") < text.index("## B")


def test_run_recipe_refuses_a_run_directory_that_would_resume(tmp_path):
  (tmp_path / "mnist_mlp_epochs_1_mixed_precision_bfloat16").mkdir()
  with pytest.raises(ValueError, match="already exists: benchmarks train from scratch"):
    foundation.run_recipe("mnist_mlp", str(tmp_path), data_dir=None, manual_dir=None,
                          target=0.99, train_epochs=1, mixed_precision="bfloat16")


def test_shrunk_folder_keeps_the_layout_aspect_and_orientation_and_leaves_out_what_is_not_a_photo(
    tmp_path):
  from PIL import Image
  source = tmp_path / "photos"
  for split, name, size in [("train", "ant", (100, 60)), ("val", "bee", (40, 120))]:
    (source / split / name).mkdir(parents=True)
    Image.new("RGB", size, (200, 30, 30)).save(source / split / name / "a.jpg")
  # Same stem, other format: a second photo, not a copy over the first.
  Image.new("RGB", (60, 60), (30, 30, 200)).save(source / "train" / "ant" / "a.png")
  # Stored 100 x 60, shown upright (EXIF orientation 6: turn 90 degrees) as 60 x 100.
  exif = Image.Exif()
  exif[0x0112] = 6
  Image.new("RGB", (100, 60)).save(source / "train" / "ant" / "turned.jpg", exif=exif)
  (source / "README.md").write_text("not a photo")
  shrunk = folder.shrunk_folder(str(source), str(tmp_path / "work"), 20)
  with Image.open(os.path.join(shrunk, "train", "ant", "a.jpg.png")) as image:
    assert image.size == (33, 20)  # Shorter side 20, aspect 5:3 kept.
    assert image.getpixel((10, 10))[0] > 150  # The red JPEG, not the blue PNG.
  with Image.open(os.path.join(shrunk, "train", "ant", "a.png.png")) as image:
    assert image.size == (20, 20) and image.getpixel((10, 10))[2] > 150
  with Image.open(os.path.join(shrunk, "train", "ant", "turned.jpg.png")) as image:
    assert image.size == (20, 33)  # Upright, as the folder reader would see it.
  with Image.open(os.path.join(shrunk, "val", "bee", "a.jpg.png")) as image:
    assert image.size == (20, 60)
  assert sorted(os.listdir(shrunk)) == ["train", "val"]  # The README is not copied.
  # A second call finds the copy and leaves it as it is.
  assert folder.shrunk_folder(str(source), str(tmp_path / "work"), 20) == shrunk


def test_family_trains_exports_and_times_each_backbone_from_its_start(toy, tmp_path,
                                                                      monkeypatch):
  """The family table on a toy backbone with "ImageNet" weights and its twin without (from
  scratch): each trained, exported (SavedModel, int8, ONNX) and timed file by file."""
  import dataclasses
  monkeypatch.setitem(backbones.REGISTRY, "toy_scratch",
                      dataclasses.replace(backbones.REGISTRY["toy"], name="toy_scratch",
                                          imagenet=None))
  monkeypatch.setattr(report, "median_ms", lambda fn, runs: (fn(), 1.5)[1])  # One call.
  root = image_folders.write_splits(tmp_path / "shapes", splits=(("train", 4), ("val", 2)))
  overrides = ["folder_image_shape=32,32,3", "train_epochs=1", "min_train_steps=0",
               "freeze_epochs=0", "batch_size=4", "eval_batch_size=4", "log_images=0"]
  rows = [family.family_row(name, str(root), str(tmp_path / "work"),
                            data_dir=str(tmp_path / "tfds"), overrides=overrides)
          for name in ("toy", "toy_scratch")]
  assert [r["init_from"] for r in rows] == ["imagenet", "none"]
  for r in rows:
    assert {"keras", "saved_model", "onnx"} <= set(r["files"]), r["files"]
    assert all(f["bytes"] is None or f["bytes"] > 0 for f in r["files"].values())
  text = family.family_report(rows, command="python scripts/benchmark.py --family=x",
                              folder_note="the folder `x`:")
  assert "| `toy` | imagenet | 32x32 |" in text and "| `toy_scratch` | none | 32x32 |" in text
  assert "1.5 ms" in text and "SavedModel size" in text and "int8 TFLite latency" in text


def test_precision_report_compares_each_policy_with_float32_and_says_there_is_no_gpu():
  rates = {("mnist_mlp", "float32"): {"no_xla": 1000.0, "xla": 1200.0},
           ("mnist_mlp", "float16"): {"no_xla": 250.0, "xla": 900.0}}
  rows = [{"recipe": "mnist_mlp", "mixed_precision": p, "jit_compile": True, "epochs": 15,
           "final_accuracy": acc, "train_seconds": 10.0, "images_per_second": 6000.0}
          for p, acc in (("float32", 0.9901), ("float16", 0.9893))]
  text = precision.precision_report(rates, rows, command="python scripts/benchmark.py --precision")
  assert "**no GPU or TPU was available**" in text
  assert "no GPU" in report.describe_hardware()
  assert "| `mnist_mlp` | float16 | 250 | 900 | 0.25x |" in text
  assert "| `mnist_mlp` | 15 | float16 | on | 98.93 % | 10.0 s | 6000 |" in text


def test_train_step_rates_cover_every_policy_with_and_without_xla(real_mnist_data_dir):
  rates = foundation.train_step_images_per_second(
      "mnist_mlp", data_dir=real_mnist_data_dir, policies=("float32", "bfloat16"), min_seconds=0.0,
      min_steps=2)
  assert set(rates) == {"float32", "bfloat16"}
  assert all(set(r) == {"no_xla", "xla"} and min(r.values()) > 0 for r in rates.values())
  assert keras.mixed_precision.global_policy().name == "float32"  # Restored.


def test_step_times_cover_the_frozen_backbone_each_level_and_the_whole(monkeypatch):
  """The --step_time rows on a tiny detector: each row trains more weights than the one
  before, from the heads alone to every layer (BatchNorm frozen in all)."""
  monkeypatch.setattr(steptime, "WARMUP_STEPS", 1)
  monkeypatch.setattr(steptime, "TIMED_STEPS", 1)
  result = steptime.step_times("detector_mnist", [
      "model_kwargs.image_size=64", "batch_size=2", "model_kwargs.widths=(4,8,8,8)",
      "model_kwargs.fpn_width=8", "model_kwargs.head_width=8", "model_kwargs.head_depth=1"])
  rows = result["rows"]
  assert [r["row"] for r in rows] == [
      "backbone frozen (freeze_epochs): heads and FPN train", "freeze_backbone_to_level=3",
      "every layer trains (after freeze_epochs)"]
  counts = [r["trainable"] for r in rows]
  assert counts == sorted(set(counts)) and all(r["seconds"] > 0 for r in rows)
  text = steptime.steptime_report(result, command="python scripts/benchmark.py --step_time=x")
  assert "| freeze_backbone_to_level=3 | " in text and "64 px, batches of 2" in text


def test_serving_benchmark_loads_the_server_with_wrk_and_reports_every_row():
  """The --serving benchmark end to end with tiny counts (figures in BENCHMARKS.md come
  from the full command): two server starts, wrk runs with no failed request."""
  import shutil
  if not shutil.which("wrk"):
    pytest.skip("needs Debian's wrk (CI installs it)")
  from tests.conftest import MNIST_DIR
  row = serving.serving_benchmark(str(REPO / "saved_models" / "mnist_cnn"),
                                     manual_dir=str(MNIST_DIR), requests=60, max_seconds=3,
                                     in_process_seconds=0.5)
  assert [(r["batching"], r["clients"]) for r in row["runs"]] == [
      (False, 1), (False, 16), (True, 1), (True, 16)]
  assert all(r["failed"] == 0 and r["requests"] >= 60 for r in row["runs"])
  assert all(r["requests_per_second"] > 0 and r["p99_ms"] >= r["p50_ms"] > 0
             for r in row["runs"])
  report = serving.serving_report(row, command="python scripts/benchmark.py --serving=...")
  assert report.count("| on |") == 2 and "the requests/s of batching off" in report


def test_zeroshot_scores_top1_top5_and_between_the_folders_classes():
  from benchmarks import zeroshot
  logits = np.full((3, 1000), -5.0, np.float32)
  logits[0, 310] = 9  # An ant read as "ant".
  logits[1, [1, 2, 3, 4, 309]] = [9, 8, 7, 6, 5]  # A bee fifth, and above "ant".
  logits[2, [0, 310, 309]] = [9, 8, -6]  # A bee read as a tench, then "ant"; "bee" last.
  items = [("a.jpg", 310), ("b.jpg", 309), ("c.jpg", 309)]
  assert zeroshot.measure(logits, items, [310, 309]) == {
      "photos": 3, "top1": 1 / 3, "top5": 2 / 3, "between": 2 / 3}


def test_zeroshot_fits_a_photo_by_the_zoos_crop_and_the_references_padded_crop():
  import tensorflow as tf
  from benchmarks import zeroshot
  image = np.zeros((100, 200, 3), np.uint8)
  image[:, 50:150] = 255  # A white centre square the width of the shorter side.
  image[40:60, 90:110] = 0  # And a black dot in its middle.
  whole = zeroshot.fit(tf.constant(image), 32, "crop").numpy()
  padded = zeroshot.fit(tf.constant(image), 32, "crop_padding").numpy()
  assert whole.shape == padded.shape == (32, 32, 3) and whole.dtype == np.float32
  assert 0 <= whole.min() and whole.max() <= 1 and padded.max() <= 1
  # The padded crop keeps the centre 32/64 of the side: the dot is twice as wide.
  dark = lambda x: int((x[16, :, 0] < 0.5).sum())
  assert abs(dark(padded) - 2 * dark(whole)) <= 2, (dark(padded), dark(whole))
  assert whole[16, 0, 0] > 0.9  # The crop at the aspect is the white square, edge to edge.
  with pytest.raises(ValueError, match="expected one of"):
    zeroshot.fit(tf.constant(image), 32, "stretch")
