"""zoo.load, the apps' door: what a wrong path gets."""

import shutil

import pytest

import zoo
from tests.conftest import REPO
from zoo import errors, rundir


def test_a_training_run_says_export_it_first(tmp_path):
  (tmp_path / rundir.CONFIG).write_text("{}")
  with pytest.raises(errors.NotFoundError, match=r"is a training run, not an exported model; "
                                                 r"export it first: python scripts/export\.py "
                                                 r"--model_dir="):
    zoo.load(str(tmp_path))


def test_kind_onnx_on_a_version_without_one_says_so(tmp_path):
  version = tmp_path / "mnist_mlp" / "2"
  shutil.copytree(REPO / "saved_models" / "mnist_mlp" / "2", version,
                  ignore=shutil.ignore_patterns("model.onnx"))
  with pytest.raises(errors.NotFoundError, match=r"has no model\.onnx"):
    zoo.load(str(version), kind="onnx")
  with pytest.raises(errors.InvalidValueError, match=r"`kind`: expected one of"):
    zoo.load(str(version), kind="tflite")
