"""The pre-trained models committed in saved_models/ load and score on the real test set.

Each test pins the version it checks: a user's own export (which goes to exports/, or with
--export_dir=saved_models to a newer version) never changes what these tests load.
"""

import json

import numpy as np
import pytest

import zoo
from tests.conftest import REPO
from zoo import data, quality
from zoo.tasks import classification, detection, generation

pytestmark = pytest.mark.slow

# name: (shipped version, lowest accepted test accuracy)
SHIPPED = {"mnist_mlp": (2, 0.98), "mnist_cnn": (4, 0.993)}
# Generators: name -> shipped version.
SHIPPED_GENERATORS = {"dcgan_mnist": 2, "cdcgan_mnist": 1}


@pytest.fixture(scope="module")
def mnist_test(real_mnist_data_dir):
  return data.split_arrays(data.prepare_builder("mnist", data_dir=real_mnist_data_dir), "test")


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_model_scores_on_the_real_test_set(name, mnist_test):
  images, labels = mnist_test
  version, floor = SHIPPED[name]
  version_dir = REPO / "saved_models" / name / str(version)
  card = json.loads((version_dir / "model_card.json").read_text())
  assert card["version"] == version and card["name"] == name
  predictor = zoo.load(str(version_dir))
  assert predictor.source["version"] == version
  accuracy = float(np.mean(predictor.predict(images)["classes"] == labels))
  assert accuracy >= floor
  assert accuracy == pytest.approx(card["parity"]["saved_model"]["accuracy"], abs=1e-4)
  assert all(check["passed"] for check in card["checks"])
  for variant in ("float32", "float16", "dynamic_int8", "int8"):
    entry = card["files"][variant]
    assert entry["inputs"]["images"]["dtype"] == "uint8"  # One convention for every file.
    tflite = zoo.load(str(version_dir / entry["path"]))
    tflite_acc = float(np.mean(tflite.predict(images[:1000])["classes"] == labels[:1000]))
    assert tflite_acc >= floor - 0.01, (variant, tflite_acc)


def test_cards_before_the_task_seam_still_load():
  """mnist_mlp/2 was exported before tasks existed (card task `image_classification`)."""
  predictor = zoo.load(str(REPO / "saved_models" / "mnist_mlp" / "2"))
  assert predictor.card["task"] == "image_classification"
  assert isinstance(predictor, classification.Classifier) and not predictor.has_features


def _quality(real_mnist_data_dir, conditional):
  """The generation task's evaluator: 2,000 samples vs the real test split."""
  return generation.QualityEvaluator(
      data.prepare_builder("mnist", data_dir=real_mnist_data_dir), "test",
      feature_model=quality.DEFAULT_FEATURE_MODEL, num_samples=2000, num_classes=10,
      conditional=conditional)


@pytest.mark.parametrize("name", sorted(SHIPPED_GENERATORS))
def test_shipped_generator_makes_every_digit_recognisably(name, real_mnist_data_dir):
  """2,000 samples from the exported SavedModel, scored by the shipped classifier: every
  digit 5-15 % of the samples, mean confidence >= 0.9; the conditional model makes the
  requested digit (by the classifier's judgement) >= 90 % of the time for every digit."""
  version = SHIPPED_GENERATORS[name]
  version_dir = REPO / "saved_models" / name / str(version)
  generator = zoo.load(str(version_dir))
  assert isinstance(generator, generation.Generator) and generator.version == version
  assert all(check["passed"] for check in generator.card["checks"])
  result = _quality(real_mnist_data_dir, generator.conditional)(generator.generate_seeds)
  assert 0.05 <= result["coverage_min"] and result["coverage_max"] <= 0.15, result
  assert result["mean_confidence"] >= 0.9, result
  if generator.conditional:
    assert result["label_agreement_min"] >= 0.9, result
  # The same seed gives the same image as the TFLite file (within rounding).
  tflite = zoo.load(str(version_dir / "model_float32.tflite"))
  labels = [3, 7] if generator.conditional else None
  diff = (tflite.generate_seeds([11, 12], labels).astype(int)
          - generator.generate_seeds([11, 12], labels))
  assert np.abs(diff).max() <= 2


# Detectors: name -> (shipped version, lowest mAP@[.5:.95], lowest mAP@.5) on the 2,000
# real test canvases (the targets).
SHIPPED_DETECTORS = {"detector_mnist": (3, 0.70, 0.95)}


@pytest.mark.parametrize("name", sorted(SHIPPED_DETECTORS))
def test_shipped_detector_scores_its_map_on_real_test_canvases(name,
                                                               real_mnist_detection_data_dir):
  version, floor_map, floor_map50 = SHIPPED_DETECTORS[name]
  version_dir = REPO / "saved_models" / name / str(version)
  detector = zoo.load(str(version_dir))
  assert isinstance(detector, detection.Detector) and detector.version == version
  assert all(check["passed"] for check in detector.card["checks"])
  # A digit is one class: one box per digit (`export.py --set=task_kwargs.class_agnostic_nms`).
  assert detector.card["postprocessing"]["class_agnostic_nms"] is True
  builder = data.prepare_builder("mnist_detection", data_dir=real_mnist_detection_data_dir)
  evaluator = detection.DetectionEvaluator(builder, "test", detector.class_names)
  truth = evaluator.truth
  assert len(truth) == 2000
  metrics = evaluator(detector.detect)
  assert metrics["map"] >= floor_map and metrics["map_50"] >= floor_map50, metrics
  assert metrics["map_50"] == pytest.approx(detector.card["parity"]["saved_model"]["map_50"],
                                            abs=1e-4)
  # The TFLite file gives final boxes too, on a few canvases, close to the SavedModel's.
  tflite = zoo.load(str(version_dir / "model_float32.tflite"))
  images = np.stack([t["image"] for t in truth[:8]])
  a, b = detector.detect(images), tflite.detect(images)
  np.testing.assert_allclose(a["detection_scores"][:, :3], b["detection_scores"][:, :3], atol=1e-3)
  # The int8 file (network in int8, decoding and NMS in float) keeps its mAP within the
  # bars on the first 500 real canvases: mAP@.5 within 0.02, mAP@[.5:.95] within 0.03.
  int8 = zoo.load(str(version_dir / "model_int8.tflite"))
  first = detection.DetectionEvaluator(builder, "test", detector.class_names, limit=500)
  reference, quantized = first(detector.detect), first(int8.detect)
  assert abs(quantized["map_50"] - reference["map_50"]) <= detection.MAX_INT8_MAP50_GAP
  assert abs(quantized["map"] - reference["map"]) <= detection.MAX_INT8_MAP_GAP
  assert detector.card["files"]["int8"]["bytes"] < 0.4 * detector.card["files"]["float32"]["bytes"]
