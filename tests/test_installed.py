"""The zoo as a user installs it: a wheel built from this checkout, installed (not editable)
into a fresh virtualenv, used from another folder with a cache of its own.

To stay cheap, the virtualenv sees this machine's site-packages (`--system-site-packages`)
for TensorFlow and the other dependencies rather than installing them again, and the wheel
is built offline (`--no-build-isolation`). What it proves: the installed `zoo` package is the
wheel's, not the checkout's (asserted), and it finds its shipped models, its commands and
its demo without the checkout.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile

import numpy as np
import pytest
from PIL import Image

from tests.conftest import MNIST_DIR, REPO
from zoo import commands, presets
from zoo.serving import runner

pytestmark = pytest.mark.slow

# The wheel carries the shipped models; PyPI's default limit is 100 MB, the 60 MB.
MAX_WHEEL_BYTES = 60_000_000


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
  """`(bin_dir, env, workdir)`: a venv holding the wheel, and where to run it from."""
  root = tmp_path_factory.mktemp("installed")
  source = root / "source"  # A copy of the tracked files: the build writes beside them.
  # What a clone would hold: tracked files, and new ones git does not ignore.
  tracked = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], cwd=REPO, capture_output=True,
                           check=True).stdout.decode().split("\0")
  for relative in filter(None, tracked):
    if os.path.exists(REPO / relative):
      os.makedirs(source / os.path.dirname(relative), exist_ok=True)
      shutil.copy2(REPO / relative, source / relative)
  subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                  "--no-build-isolation", "-w", str(root / "dist"), str(source)], check=True,
                 capture_output=True, timeout=600)
  (wheel,) = (root / "dist").iterdir()
  venv = root / "venv"
  subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                 check=True, timeout=300)
  bin_dir = venv / "bin"
  subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-deps",
                  "--no-index", "--ignore-installed", str(wheel)], check=True,
                 capture_output=True, timeout=600)
  workdir = root / "elsewhere"
  workdir.mkdir()
  env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", presets.URL_VARIABLE)}
  env.update(ZOO_HOME=str(root / "home"), PATH=f"{bin_dir}{os.pathsep}{env['PATH']}")
  return bin_dir, env, workdir, wheel


def _run(installed, *argv, timeout=300):
  _, env, workdir, _ = installed
  return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, env=env,
                        cwd=workdir)


def test_the_wheel_holds_the_presets_and_stays_small(installed):
  wheel = installed[3]
  size = os.path.getsize(wheel)
  print(f"wheel: {wheel.name}, {size / 1e6:.1f} MB")
  assert size < MAX_WHEEL_BYTES
  names = zipfile.ZipFile(wheel).namelist()
  for name, preset in presets.manifest()["presets"].items():
    for version, listed in preset["versions"].items():
      for relative in listed["files"]:
        assert f"zoo/_shipped/{name}/{version}/{relative}" in names
  assert "zoo/presets.json" in names and "zoo/serving/static/index.html" in names
  assert "zoo/imagenet_classes.json" in names  # zoo.imagenet's class names.


def test_load_and_predict_by_name_from_another_folder(installed):
  code = ("import json, sys, numpy as np, zoo\n"
          "m = zoo.load('mnist_cnn:3')\n"
          "digits = np.zeros((1, 28, 28, 1), np.uint8)\n"
          "files = [str(getattr(v, '__file__', None)) for k, v in sys.modules.items()\n"
          "         if k.split('.')[0] == 'zoo']\n"
          "print(json.dumps({'files': files, 'path': m.source['path'],\n"
          "                  'shape': list(m.predict(digits)['probabilities'].shape)}))\n")
  proc = _run(installed, "python", "-c", code)
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(proc.stdout.splitlines()[-1])
  venv = str(installed[0].parent)
  # Every zoo module came from the wheel, none from the checkout (an editable install of
  # it in the site-packages the venv sees would otherwise fill in what the wheel lacks).
  assert result["files"] and all(f.startswith(venv) for f in result["files"]), result["files"]
  assert result["path"] == os.path.join(installed[1]["ZOO_HOME"], "presets", "mnist_cnn", "3")
  assert result["shape"] == [1, 10]


def test_every_console_command_answers_help(installed):
  bin_dir = installed[0]
  scripts = ["zoo", *(f"zoo-{name}" for name in commands.COMMANDS)]
  # Started together: each imports TensorFlow on its own.
  procs = {s: subprocess.Popen([str(bin_dir / s), "--help"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=installed[1],
                               cwd=installed[2]) for s in scripts}
  for script, proc in procs.items():
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, (script, err[-2000:])
    if script == "zoo":
      assert "commands: train, export, predict" in out, out
    else:  # Its own flags (absl's, or TensorBoard's own).
      assert re.search(r"^\s+--\w", out, re.M), (script, out)
      if script != "zoo-tensorboard":  # absl prints the command's docstring, which names it.
        assert script in out, (script, out)
  proc = _run(installed, "zoo", "--list")
  assert proc.returncode == 0 and "mnist_cnn:4 = mnist_cnn" in proc.stdout


def test_predict_and_evaluate_a_preset_by_name(installed, tmp_path, real_mnist_data_dir):
  digit = tmp_path / "digit.png"
  canvas = np.zeros((28, 28), np.uint8)
  canvas[4:24, 13:16] = 255  # A one.
  Image.fromarray(canvas).save(digit)
  proc = _run(installed, "zoo-predict", "--model=mnist_cnn", str(digit))
  assert proc.returncode == 0, proc.stderr[-3000:]
  answer = json.loads(proc.stdout)
  assert answer["loaded"]["path"].startswith(installed[1]["ZOO_HOME"])
  assert answer["results"][0]["label"] == "1", answer
  proc = _run(installed, "zoo", "evaluate", "--export=mnist_cnn", "--split=test[:500]",
              f"--data_dir={real_mnist_data_dir}", f"--manual_dir={MNIST_DIR}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  metrics = json.loads(proc.stdout)
  assert metrics["model"]["name"] == "mnist_cnn" and metrics["accuracy"] >= 0.98, metrics


def test_serve_a_preset_by_name(installed, tmp_path):
  _, env, workdir, _ = installed
  log_path = tmp_path / "serve.log"
  with open(log_path, "w") as log:
    server = subprocess.Popen(["zoo-serve", "--model_name=mnist_cnn", "--port=0",
                               "--grpc_port=0"], stdout=log, stderr=subprocess.STDOUT,
                              env=env, cwd=workdir)
  try:
    deadline = time.monotonic() + 180
    while not (ports := runner.ready_ports(log_path.read_text())):
      assert server.poll() is None, log_path.read_text()[-3000:]
      assert time.monotonic() < deadline, "zoo-serve did not print its port in 180 s"
      time.sleep(0.5)
    assert ports[1] == 0  # --grpc_port=0: gRPC off.
    base = f"http://127.0.0.1:{ports[0]}"
    with urllib.request.urlopen(f"{base}/v1/models/mnist_cnn", timeout=30) as response:
      status = json.load(response)
    latest = presets.manifest()["presets"]["mnist_cnn"]["latest"]
    assert status["model_version_status"][0]["version"] == str(latest)
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    body = json.dumps({"instances": np.zeros((2, 28, 28, 1), np.uint8).tolist()}).encode()
    request = urllib.request.Request(f"{base}/v1/models/mnist_cnn:predict", data=body)
    with urllib.request.urlopen(request, timeout=30) as response:
      predictions = json.load(response)["predictions"]
    assert len(predictions) == 2
    with urllib.request.urlopen(f"{base}/", timeout=5) as response:  # The demo page.
      assert b"<html" in response.read().lower()
  finally:
    server.terminate()
    server.wait(timeout=60)
