"""The pre-trained models committed in saved_models/ load and score on the real test set.

Each test pins the version it checks: a user's own export (which goes to exports/, or with
--export_dir=saved_models to a newer version) never changes what these tests load.
"""

import json

import numpy as np
import pytest

import zoo
from tests.conftest import REPO
from zoo import data

pytestmark = pytest.mark.slow

# name: (shipped version, lowest accepted test accuracy)
SHIPPED = {"mnist_mlp": (2, 0.98), "mnist_cnn": (2, 0.993)}


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
