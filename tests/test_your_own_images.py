"""A classifier trained on a user's folder (`--dataset=folder:DIR`) through the whole path:
`scripts/train.py`, export, `zoo.load`, `scripts/predict.py` and `scripts/serve.py`, each
answering with the folder's class names, and the same answer everywhere."""

import base64
import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest

import zoo
from tests import recipes
from tests.conftest import REPO
from tests.data import image_folders
from tests.data.test_hostile_images import png_bomb
from tests.serving.conftest import start_server, stop_server
from zoo import errors, evaluate, export, runtime, train


@pytest.fixture(scope="module")
def folder_model(tmp_path_factory):
  """mnist_cnn trained one short epoch on a split-layout folder of shapes, and exported."""
  tmp = tmp_path_factory.mktemp("own_images")
  root = image_folders.write_splits(tmp / "shapes", splits=(("train", 8), ("val", 3)))
  (root / "README.roboflow.txt").write_text("exported by a labelling tool")
  run = tmp / "run"
  proc = subprocess.run(
      [sys.executable, str(REPO / "scripts" / "train.py"), "--model=mnist_cnn",
       f"--dataset=folder:{root}", f"--model_dir={run}", f"--data_dir={tmp / 'tfds'}",
       "--epochs=1", "--batch_size=8"],
      capture_output=True, text=True, cwd=REPO, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "skipped 1 file(s) that are not images (README.roboflow.txt)" in proc.stderr
  metrics = json.loads((run / "metrics.json").read_text())
  assert metrics["split"] == "valid" and metrics["num_examples"] == 9
  path = export.export_run(str(run), export_dir=str(tmp / "exports"),
                           data_dir=str(tmp / "tfds"), variants=["float32"], onnx=False)
  return root, path


def test_the_export_carries_the_folders_classes_and_input_contract(folder_model):
  root, path = folder_model
  card = json.loads(open(f"{path}/model_card.json").read())
  assert card["labels"] == list(image_folders.CLASSES)
  assert open(f"{path}/labels.txt").read().split() == list(image_folders.CLASSES)
  assert card["image_shape"] == [28, 28, 1]
  assert card["photo_preprocessing"] == "pad"


def test_load_predict_and_serve_answer_with_the_folders_class_names(folder_model, tmp_path):
  root, path = folder_model
  files = sorted(str(p) for p in (root / "val").rglob("*") if p.is_file())[:6]
  loaded = zoo.load(path).predict_files(files)
  labels = [r["label"] for r in loaded]
  assert set(labels) <= set(image_folders.CLASSES)
  assert all(r["preprocessing"] == "pad" and not r["inverted"] for r in loaded)
  # Turning digit centring off changes nothing for a folder's model (it never centres).
  alone = zoo.load(path).predict_files(files[:1], center_digits=False)[0]
  assert alone.pop("probability") == pytest.approx(loaded[0]["probability"], abs=1e-6)
  assert [r["label"] for r in alone.pop("top_k")] == [r["label"] for r in loaded[0]["top_k"]]
  assert alone == {k: v for k, v in loaded[0].items() if k not in ("probability", "top_k")}

  proc = subprocess.run([sys.executable, str(REPO / "scripts" / "predict.py"),
                         f"--model={path}", *files],
                        capture_output=True, text=True, cwd=REPO, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  printed = json.loads(proc.stdout)["results"]
  assert [r["label"] for r in printed] == labels
  np.testing.assert_allclose([r["probability"] for r in printed],
                             [r["probability"] for r in loaded], atol=1e-6)

  served = start_server(None, tmp_path / "serve.log",
                        f"--model_name=shapes", f"--model_base_path={path.rsplit('/', 1)[0]}")
  try:
    instances = [{"b64": base64.b64encode(open(f, "rb").read()).decode()} for f in files]
    status, body, _ = served.request("POST", "/v1/models/shapes:predict", {
        "signature_name": "serve_image_bytes", "instances": instances})
  finally:
    stop_server(served)
  assert status == 200, body
  assert [r["labels"] for r in body["predictions"]] == labels
  np.testing.assert_allclose([max(r["probabilities"]) for r in body["predictions"]],
                             [r["probability"] for r in loaded], atol=1e-5)


def test_generators_train_on_a_folder_and_say_when_fid_needs_a_classifier(
    folder_model, tmp_path, caplog):
  """dcgan_mnist on loose images: trained, exported, no FID and the reason; cdcgan_mnist on
  the class folders with the classifier trained on them: FID and per-class agreement."""
  root, classifier = folder_model
  loose = tmp_path / "loose"
  loose.mkdir()
  for path in sorted((root / "train").rglob("*.*")):
    (loose / path.name).write_bytes(path.read_bytes())  # 24 images, no class folders.
  kwargs = {"data_dir": str(tmp_path / "tfds")}
  config = recipes.dcgan_tiny().replace(dataset=f"folder:{loose}", eval_split="valid")
  with caplog.at_level(logging.WARNING, logger="zoo"):
    metrics = train.train_and_evaluate(config, str(tmp_path / "dcgan"), **kwargs)
  assert "no FID or class statistics during training: FID needs a feature classifier" in (
      caplog.text)
  assert metrics["fid"] is None and "FID needs a feature classifier" in metrics["quality"]
  path = export.export_run(str(tmp_path / "dcgan"), export_dir=str(tmp_path / "exports"),
                           variants=["float32"], onnx=False, **kwargs)
  card = runtime.read_card(path)
  assert card["metrics"]["fid"] is None and all(c["passed"] for c in card["checks"])
  table = export.parity_table(card)
  assert "float32" in table and "PASS" in table
  assert zoo.load(path).generate_seeds([0, 1]).shape == (2, 28, 28, 1)

  conditional = recipes.dcgan_tiny(conditional=True)
  conditional = conditional.replace(
      dataset=f"folder:{root}", eval_split="valid",
      task_kwargs={**conditional.task_kwargs, "feature_model": classifier})
  metrics = train.train_and_evaluate(conditional, str(tmp_path / "cdcgan"), **kwargs)
  assert np.isfinite(metrics["fid"]) and len(metrics["label_agreement"]) == 3
  assert metrics["feature_model"]["path"] == classifier

  mismatched = conditional.replace(
      task_kwargs={**conditional.task_kwargs, "feature_model": "saved_models/mnist_cnn"})
  with pytest.raises(errors.InvalidValueError, match="classifies 10 classes of .28, 28, 1. "
                                                     "images; this data has 3 classes"):
    train.train_and_evaluate(mismatched, str(tmp_path / "mismatched"), **kwargs)


def test_a_run_whose_folder_is_gone_still_exports_and_evaluates(folder_model, tmp_path):
  root, path = folder_model
  card = runtime.read_card(path)
  run, data_dir = card["training"]["model_dir"], os.path.join(os.path.dirname(root), "tfds")
  moved = root.with_name("shapes_moved")
  os.rename(root, moved)
  try:
    again = export.export_run(run, export_dir=str(tmp_path / "exports"), data_dir=data_dir,
                              variants=["float32"], onnx=False)
    assert runtime.read_card(again)["labels"] == list(image_folders.CLASSES)
    assert evaluate.evaluate_run(run, data_dir=data_dir)["num_examples"] == 9
  finally:
    os.rename(moved, root)


def test_hostile_files_get_one_line_each_within_a_memory_bound(folder_model, tmp_path):
  """A 20000x20000 PNG bomb (~400 KB; decoding it as before took ~19 bytes a pixel, 7.6
  GB), a FIFO without writer and a folder, beside a good file: `predict_files` answers the
  good one and gives each bad one its line; the export's `serve_image_bytes` (what
  TensorFlow Serving runs) refuses the bomb from its header. The child process's peak
  memory stays under 1.5 GB."""
  root, path = folder_model
  bomb = tmp_path / "bomb.png"
  bomb.write_bytes(png_bomb(20000, 20000))
  fifo = tmp_path / "pipe.png"
  os.mkfifo(fifo)
  good = sorted(p for p in (root / "val").rglob("*") if p.is_file())[0]
  script = f"""
import json
import numpy as np
import zoo
from zoo import runtime
model = zoo.load({path!r})
results = model.predict_files([{str(bomb)!r}, {str(fifo)!r}, {str(tmp_path)!r}, {str(good)!r}])
try:
  model.backend.run("serve_image_bytes",
                    image_bytes=np.array([open({str(bomb)!r}, "rb").read()], object))
  served = "answered"
except Exception as e:
  served = runtime.budget_line(e) or repr(e)[:300]
# This process's own peak (VmHWM: reset by exec, unlike getrusage's ru_maxrss, which
# keeps the forking parent's size).
peak = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status")
            if line.startswith("VmHWM:"))
print(json.dumps({{"results": results, "served": served, "peak_bytes": peak}}))
"""
  proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                        cwd=REPO, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  bomb_line = ("image of 20000x20000 pixels (width x height, from its header) is over the "
               "budget of 50000000 pixels (MAX_IMAGE_PIXELS); downscale it first")
  bad_bomb, bad_fifo, bad_dir, ok = out["results"]
  assert bad_bomb == {"file": str(bomb), "error": bomb_line}
  assert bad_fifo["error"].startswith("not a regular file")
  assert bad_dir["error"].startswith("not a regular file")
  assert ok["file"] == str(good) and ok["label"] in image_folders.CLASSES
  assert out["served"] == bomb_line
  assert out["peak_bytes"] < 1.5e9, out["peak_bytes"]
