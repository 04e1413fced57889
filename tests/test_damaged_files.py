"""Damaged exports and run directories (issue #39, item 5): `zoo.load`, `zoo-predict`'s
loading, export and resume each end in one line naming the file and what was wrong."""

import json
import shutil

import pytest

import zoo
from tests.conftest import REPO
from zoo import errors, export, rundir, runtime

SOURCE = REPO / "saved_models" / "mnist_cnn" / "2"  # The smallest shipped version.


@pytest.fixture
def version(tmp_path):
  copy = tmp_path / "mnist_cnn" / "2"
  shutil.copytree(SOURCE, copy)
  return copy


def _one_line(error) -> str:
  message = str(error)
  assert "\n" not in message and message.isprintable(), message
  return message


@pytest.mark.parametrize("content, why", [
    ("{not json", r"not valid JSON at line 1 \(damaged or truncated\?\)"),
    ("[]", "expected a JSON object, found a JSON list"),
    ('{"files": {}}', "no task"),
])
def test_a_damaged_card_is_one_line(version, content, why):
  (version / "model_card.json").write_text(content)
  with pytest.raises(errors.InvalidValueError) as raised:
    zoo.load(str(version))
  assert f"Invalid model card '{version}/model_card.json': " in _one_line(raised.value)
  assert raised.match(why)


def test_a_card_without_the_labels_its_task_needs_is_one_line(version):
  card = json.loads((version / "model_card.json").read_text())
  del card["labels"]
  (version / "model_card.json").write_text(json.dumps(card))
  with pytest.raises(errors.InvalidValueError) as raised:
    zoo.load(str(version / "model_float32.tflite"))
  assert _one_line(raised.value).startswith(f"Invalid model card in '{version}")
  assert raised.match(r"does not describe a '(image_)?classification' model \(no 'labels'\)")


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_tflite_file_is_one_line(version, damage):
  path = version / "model_float32.tflite"
  raw = path.read_bytes()
  path.write_bytes(b"\x00garbage" * 100 if damage == "garbage" else raw[:len(raw) // 3])
  with pytest.raises(errors.InvalidValueError) as raised:
    zoo.load(str(path))
  assert _one_line(raised.value).startswith(f"Invalid model file '{path}': tflite cannot "
                                            "load it (")


def test_a_damaged_onnx_file_is_one_line(version):
  path = version / "model.onnx"
  path.write_bytes(b"\x08\x07garbage that is not a model")
  with pytest.raises(errors.InvalidValueError) as raised:
    zoo.load(str(path))
  assert _one_line(raised.value).startswith(f"Invalid model file '{path}': onnx cannot load")


def test_truncated_variables_are_one_line(version):
  data = version / "variables" / "variables.data-00000-of-00001"
  data.write_bytes(data.read_bytes()[:1000])
  with pytest.raises(errors.InvalidValueError) as raised:
    zoo.load(str(version))
  assert _one_line(raised.value).startswith(f"Invalid model file '{version}': saved_model "
                                            "cannot load it (")


@pytest.mark.parametrize("name", [rundir.CONFIG, rundir.RUN_CARD])
def test_a_run_directory_whose_json_is_not_an_object_is_one_line(tmp_path, name):
  run = tmp_path / "run"
  run.mkdir()
  (run / rundir.CONFIG).write_text(json.dumps({"model": "mnist_mlp"}))
  (run / name).write_text("[1, 2]")
  with pytest.raises(errors.InvalidValueError) as raised:
    rundir.read_json(str(run), name)
  assert _one_line(raised.value) == (f"Invalid run file '{run / name}': expected a JSON "
                                     "object, found a JSON list.")


def test_init_from_an_export_with_a_damaged_card_is_one_line(version):
  (version / "model_card.json").write_text('{"task": "classification"}')
  with pytest.raises(errors.InvalidValueError, match=r"model_card\.json': no training\.$"):
    export.restore_from_export(str(version), str(version.parent / "run"))


def test_read_json_object_names_an_unreadable_file(tmp_path):
  with pytest.raises(errors.InvalidValueError, match=r"Invalid run file '.*': cannot read"):
    runtime.read_json_object(str(tmp_path), "run file")  # A folder.


def test_the_server_serves_the_good_version_and_names_the_damaged_one_in_one_line(tmp_path,
                                                                                   caplog):
  from zoo.serving import repository
  base = tmp_path / "mnist_cnn"
  shutil.copytree(SOURCE, base / "2")
  shutil.copytree(SOURCE, base / "3")
  data = base / "3" / "variables" / "variables.data-00000-of-00001"
  data.write_bytes(data.read_bytes()[:1000])
  served = repository.Repository.load([repository.ModelSource(
      "mnist_cnn", str(base), repository.VersionPolicy("all"))])
  states = served.models["mnist_cnn"]
  assert states[2].servable is not None
  assert states[3].servable is None and _one_line(states[3].error)
  assert "Could not load mnist_cnn version 3" in caplog.text
  line = next(r.getMessage() for r in caplog.records if "Could not load" in r.getMessage())
  assert "\n" not in line
