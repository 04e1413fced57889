"""What a user sees from the scripts: quiet start-up, --help, Ctrl-C and resume, reruns.

These run `scripts/*.py` as a user would, in subprocesses (so on the real MNIST in
../shared/data/mnist, which a subprocess can read; `tfds.testing.mock_data` cannot reach it).
"""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import MNIST_DIR, REPO

TRAIN = str(REPO / "scripts" / "train.py")
# TensorFlow's start-up block and the CUDA probe's error on machines without a GPU driver.
NOISE = re.compile(r"absl::InitializeLog|cuInit|oneDNN custom operations|cpu_feature_guard|"
                   r"Downloading and preparing|Dl Size|shuffle=True|Local rendezvous")


def _env():
  env = dict(os.environ, PYTHONUNBUFFERED="1")
  env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # What a user has: nothing set.
  return env


def test_help_lists_the_scripts_own_flags():
  proc = subprocess.run([sys.executable, TRAIN, "--help"], capture_output=True, text=True,
                        timeout=120, env=_env())
  for flag in ("model", "model_dir", "epochs", "deterministic", "manual_dir", "data_dir",
               "set"):
    assert re.search(rf"--(\[no\])?{flag}:", proc.stdout), (flag, proc.stdout)
  assert len(proc.stdout.splitlines()) < 120  # Not every absl and TensorFlow flag.


@pytest.mark.parametrize("argv, message", [
    (["--epochs=-2"], r"Invalid value for `--epochs`: expected an integer >= 0\. "
                      r"Received: --epochs=-2"),
    (["--batch_size=0"], r"Invalid value for `--batch_size`: .* Received: --batch_size=0"),
    (["--set=train_epochs=-3"], r"Invalid value for `train_epochs`: .* Received: train_epochs=-3"),
])
def test_errors_name_what_the_user_typed_and_start_up_is_quiet(argv, message, tmp_path):
  proc = subprocess.run([sys.executable, TRAIN, "--model=mnist_mlp",
                         f"--model_dir={tmp_path / 'run'}", *argv],
                        capture_output=True, text=True, timeout=120, env=_env())
  assert proc.returncode != 0
  assert re.search(message, proc.stderr), proc.stderr
  assert not NOISE.search(proc.stderr), proc.stderr


class _Lines:
  """Collects a pipe's lines in a thread, so a test can wait for one without blocking."""

  def __init__(self, pipe):
    self.lines = []
    self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
    self._thread.start()

  def _read(self, pipe):
    for line in pipe:
      self.lines.append(line)

  def wait_for(self, text, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
      if any(text in line for line in self.lines):
        return True
      time.sleep(0.1)
    return False

  def text(self):
    self._thread.join(timeout=10)
    return "".join(self.lines)


@pytest.mark.slow
def test_ctrl_c_stops_in_one_line_and_reruns_resume_then_say_complete(tmp_path):
  model_dir = tmp_path / "run"
  argv = [sys.executable, TRAIN, "--model=mnist_mlp", f"--model_dir={model_dir}",
          "--epochs=3", f"--data_dir={tmp_path / 'tfds'}", f"--manual_dir={MNIST_DIR}",
          # 48,000 images: epochs of a second or more, so that the SIGINT sent 0.3 s into
          # epoch 2 lands there (12,000 made epochs shorter than that once the input
          # pipeline batched its work).
          "--set=train_split='train[:48000]'", "--set=model_kwargs.hidden_units=(16,)",
          "--set=log_images=0"]
  # SIGINT as a terminal gives it: a shell starts background jobs (`.ci/run &`) with SIGINT
  # ignored, the child would inherit that, and Python then never raises KeyboardInterrupt.
  proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=_env(),
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
  try:
    out, err = _Lines(proc.stdout), _Lines(proc.stderr)
    assert out.wait_for("Epoch 2/3", timeout=240), out.text() + err.text()
    time.sleep(0.3)  # Into epoch 2's batches.
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
  finally:
    proc.kill()
  stderr = err.text()
  assert "Stopped at epoch 2/3 (1 completed and saved in" in stderr, stderr
  assert "rerun the same command to resume" in stderr
  assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
  # Prepared from the local files, said plainly, with no download report.
  assert "Preparing 'mnist' from the original files" in stderr
  assert not NOISE.search(stderr + out.text()), stderr + out.text()

  resumed = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=_env())
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "from epoch 2/3 (epoch 1 is done and kept)" in resumed.stderr, resumed.stderr
  assert "Epoch 1/3" not in resumed.stdout and "Epoch 3/3" in resumed.stdout
  assert not NOISE.search(resumed.stderr + resumed.stdout), resumed.stderr
  metrics = (model_dir / "metrics.json").read_bytes()
  assert json.loads(metrics)["epochs_run_this_invocation"] == 2

  again = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=_env())
  assert again.returncode == 0, again.stderr[-3000:]
  assert "is complete (3/3 epochs); its metrics.json is kept" in again.stderr, again.stderr
  assert "Epoch" not in again.stdout
  assert (model_dir / "metrics.json").read_bytes() == metrics
  card = json.loads((model_dir / "run_card.json").read_text())
  assert card["data_dir"] == str(tmp_path / "tfds")


def _train_small_cnn(model_dir, data_dir, *extra):
  proc = subprocess.run(
      [sys.executable, TRAIN, "--model=mnist_cnn", f"--model_dir={model_dir}", "--epochs=1",
       f"--data_dir={data_dir}", f"--manual_dir={MNIST_DIR}", "--set=train_split='train[:4000]'",
       "--set=eval_split='test[:1000]'", "--set=log_images=0", *extra],
      capture_output=True, text=True, timeout=300, env=_env())
  assert proc.returncode == 0, proc.stderr[-3000:]
  import keras
  return keras.saving.load_model(model_dir / "checkpoints" / "model.keras").get_weights()


@pytest.mark.slow
def test_same_seed_same_weights_whether_or_not_the_run_prepared_the_data(tmp_path):
  """The README's first run prepares MNIST in-process; it used to draw random numbers after
  seeding, so that run and every later run with the same seed started from other weights."""
  import numpy as np
  first = _train_small_cnn(tmp_path / "a", tmp_path / "tfds")  # Prepares the data.
  second = _train_small_cnn(tmp_path / "b", tmp_path / "tfds")  # Reads it.
  assert len(first) == len(second)
  for w0, w1 in zip(first, second):
    np.testing.assert_array_equal(w0, w1)
  card = json.loads((tmp_path / "a" / "run_card.json").read_text())
  assert card["op_determinism"] is False


@pytest.mark.slow
def test_deterministic_flag_turns_on_tensorflow_op_determinism(real_mnist_data_dir, tmp_path):
  _train_small_cnn(tmp_path / "det", real_mnist_data_dir, "--deterministic")
  assert json.loads((tmp_path / "det" / "config.json").read_text())["deterministic"] is True
  card = json.loads((tmp_path / "det" / "run_card.json").read_text())
  assert card["op_determinism"] is True  # TensorFlow's own state, not the config's.


def test_tensorboard_starts_without_tensorflows_start_up_block(tmp_path):
  """`scripts/run_tensorboard.py` is `tensorboard` with the start-up block filtered: it
  serves, and what it prints is TensorBoard's own."""
  import socket
  import urllib.request
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  proc = subprocess.Popen([sys.executable, str(REPO / "scripts" / "run_tensorboard.py"),
                           f"--logdir={tmp_path}", f"--port={port}"],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=_env())
  lines = _Lines(proc.stdout)
  try:
    assert lines.wait_for(f"at http://localhost:{port}/", timeout=120), lines.lines
    assert urllib.request.urlopen(f"http://localhost:{port}/", timeout=30).status == 200
  finally:
    proc.terminate()
    proc.wait(timeout=30)
  assert not NOISE.search(lines.text()), lines.text()


def test_load_in_a_plain_python_session_prints_nothing(tmp_path):
  """An app's first contact, `import zoo; zoo.load(...)` in plain Python, shows none of
  TensorFlow's start-up lines (oneDNN, cudart, CPU features): only what the app prints."""
  code = "import zoo; print(zoo.load('mnist_cnn').source['name'])"
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        timeout=180, env=_env(), cwd=tmp_path)
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout == "mnist_cnn\n"
  assert proc.stderr == "", proc.stderr
