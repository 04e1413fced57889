"""The pre-trained models committed in saved_models/ load and score on the real test set."""

import json
import os

import numpy as np
import pytest

import zoo
from tests.conftest import REPO
from zoo import data

pytestmark = pytest.mark.slow

SHIPPED = {"mnist_mlp": 0.98, "mnist_cnn": 0.993}


@pytest.fixture(scope="module")
def mnist_test(real_mnist_data_dir):
  return data.split_arrays(data.prepare_builder("mnist", data_dir=real_mnist_data_dir), "test")


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_model_scores_on_the_real_test_set(name, mnist_test):
  images, labels = mnist_test
  version_dir = REPO / "saved_models" / name / "1"
  card = json.loads((version_dir / "model_card.json").read_text())
  predictor = zoo.load(str(REPO / "saved_models" / name))
  accuracy = float(np.mean(predictor.predict(images)["classes"] == labels))
  assert accuracy >= SHIPPED[name]
  assert accuracy == pytest.approx(card["parity"]["saved_model"]["accuracy"], abs=1e-4)
  assert all(check["passed"] for check in card["checks"])
  for variant in ("float32", "float16", "dynamic_int8", "int8"):
    path = version_dir / card["files"][variant]["path"]
    tflite_acc = float(np.mean(zoo.load(str(path)).predict(images[:1000])["classes"] == labels[:1000]))
    assert tflite_acc >= SHIPPED[name] - 0.01, (variant, tflite_acc)
