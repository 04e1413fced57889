"""ONNX files: every task's export writes one, ONNX Runtime (CPU provider only) runs it from
its card's contract alone, `zoo.load` gives the task's front, and `add_onnx` gives an
exported version (the zoo's shipped models) its file, checked against its SavedModel."""

import json
import os
import shutil

import numpy as np
import onnxruntime
import pytest

import zoo
from tests.conftest import REPO
from zoo import artifacts, data, errors, export, runtime
from zoo.tasks import classification, detection, generation

pytestmark = pytest.mark.slow


def _session(path):
  """What an app does, with no zoo import: ONNX Runtime, CPU only."""
  return onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])


def _onnx_tensor_dtype(spec):
  return {"uint8": np.uint8, "float32": np.float32, "int64": np.int64}[spec["dtype"]]


@pytest.fixture(scope="module")
def shipped_copy(tmp_path_factory):
  """Copies of shipped versions without their ONNX file, for add_onnx."""
  def copy(name, version):
    target = tmp_path_factory.mktemp("shipped") / name / str(version)
    shutil.copytree(REPO / "saved_models" / name / str(version), target)
    (target / runtime.ONNX_FILE).unlink(missing_ok=True)
    card = json.loads((target / runtime.CARD).read_text())
    card["files"].pop("onnx", None)
    card["parity"].pop("onnx", None)
    card["checks"] = [c for c in card["checks"] if not c["check"].startswith("onnx ")]
    (target / runtime.CARD).write_text(json.dumps(card))
    return str(target)
  return copy


def test_add_onnx_gives_a_shipped_classifier_its_file_checked_against_its_saved_model(
    shipped_copy, real_mnist_data_dir):
  version_dir = shipped_copy("mnist_mlp", 2)
  before = runtime.read_card(version_dir)
  card = export.add_onnx(version_dir, data_dir=real_mnist_data_dir)
  entry = card["files"]["onnx"]
  assert entry["opset"] == artifacts.ONNX_OPSET and entry["bytes"] > 0
  # Measured against the Keras model at export, or against the SavedModel when added to
  # an older export (`--add_onnx`, the run directory gone).
  assert card["parity"]["onnx"].get("reference", "keras") in ("keras", "saved_model")
  assert set(card["parity"]["onnx"]) - {"reference"}  # the figures themselves
  assert card["parity"]["onnx"]["top1_agreement"] >= 0.999
  assert card["parity"]["onnx"]["accuracy"] == pytest.approx(
      before["parity"]["saved_model"]["accuracy"], abs=2e-4)
  onnx_checks = [c for c in card["checks"] if c["check"].startswith("onnx ")]
  assert len(onnx_checks) == 1 and onnx_checks[0]["passed"]
  assert card["checks"][:len(before["checks"])] == before["checks"]  # Nothing else changed.
  assert runtime.read_card(version_dir) == card

  # The card's contract alone is enough to call the file (no zoo import needed).
  session = _session(os.path.join(version_dir, entry["path"]))
  images, labels = data.split_arrays(
      data.prepare_builder("mnist", data_dir=real_mnist_data_dir), "test[:200]")
  spec = entry["inputs"]["images"]
  feed = {"images": images.astype(_onnx_tensor_dtype(spec))}
  out = dict(zip([o.name for o in session.get_outputs()], session.run(None, feed)))
  assert set(out) == set(entry["outputs"])
  assert np.mean(out["classes"] == labels) > 0.95
  assert list(out["labels"][:3]) == [str(c) for c in out["classes"][:3]]

  front = zoo.load(version_dir, kind="onnx")
  assert isinstance(front, classification.Classifier) and front.kind == "onnx"
  np.testing.assert_allclose(front.predict(images)["probabilities"],
                             zoo.load(version_dir).predict(images)["probabilities"], atol=1e-5)
  with pytest.raises(errors.AlreadyExistsError, match="has model.onnx already"):
    export.add_onnx(version_dir, data_dir=real_mnist_data_dir)


def test_a_failed_onnx_check_leaves_the_version_as_it_was(shipped_copy, real_mnist_data_dir,
                                                          monkeypatch):
  version_dir = shipped_copy("mnist_mlp", 2)
  before = runtime.read_card(version_dir)
  monkeypatch.setitem(classification.MIN_AGREEMENT, "onnx", 1.01)
  with pytest.raises(artifacts.ExportError, match=r"onnx top-1 agreement >= 1\.01"):
    export.add_onnx(version_dir, data_dir=real_mnist_data_dir)
  assert runtime.read_card(version_dir) == before
  assert not os.path.exists(os.path.join(version_dir, runtime.ONNX_FILE))


@pytest.mark.parametrize("name, version", [("detector_mnist", 3)])
def test_the_detector_onnx_file_returns_final_boxes_for_images_of_two_sizes(
    name, version):
  path = REPO / "saved_models" / name / str(version) / runtime.ONNX_FILE
  session = _session(str(path))
  for shape in ((1, 128, 128, 1), (2, 60, 100, 1)):
    rng = np.random.default_rng(0)
    out = dict(zip([o.name for o in session.get_outputs()],
                   session.run(None, {"images": rng.integers(0, 256, shape, np.uint8)})))
    assert out["detection_boxes"].shape == (shape[0], 100, 4)
    assert out["num_detections"].shape == (shape[0],)
    assert 0 <= out["detection_boxes"].min() and out["detection_boxes"].max() <= 1
  front = zoo.load(str(path))
  assert isinstance(front, detection.Detector) and front.kind == "onnx"


@pytest.mark.parametrize("name, version", [("dcgan_mnist", 2), ("cdcgan_mnist", 1)])
def test_the_generator_onnx_file_draws_what_the_saved_model_draws(name, version):
  version_dir = REPO / "saved_models" / name / str(version)
  onnx_front = zoo.load(str(version_dir), kind="onnx")
  saved = zoo.load(str(version_dir))
  assert isinstance(onnx_front, generation.Generator)
  labels = [3, 7, 1] if saved.conditional else None
  diff = (onnx_front.generate_seeds([1, 2, 3], labels).astype(int)
          - saved.generate_seeds([1, 2, 3], labels))
  assert np.abs(diff).max() <= 2


@pytest.mark.parametrize("name, version", [("mnist_mlp", 2), ("mnist_cnn", 3),
                                           ("dcgan_mnist", 2), ("cdcgan_mnist", 1),
                                           ("detector_mnist", 3)])
def test_every_shipped_model_carries_a_checked_onnx_file(name, version):
  card = runtime.read_card(str(REPO / "saved_models" / name / str(version)))
  assert card["files"]["onnx"]["opset"] == artifacts.ONNX_OPSET
  # Measured against the Keras model at export, or against the SavedModel when added to
  # an older export (`--add_onnx`, the run directory gone).
  assert card["parity"]["onnx"].get("reference", "keras") in ("keras", "saved_model")
  assert set(card["parity"]["onnx"]) - {"reference"}  # the figures themselves
  onnx_checks = [c for c in card["checks"] if c["check"].startswith("onnx ")]
  assert onnx_checks and all(c["passed"] for c in onnx_checks)
