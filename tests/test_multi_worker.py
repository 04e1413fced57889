"""Multi-worker training and fault tolerance, proven with real processes on loopback.

Every process here is `scripts/train.py`, started by the test with `TF_CONFIG` naming
127.0.0.1 ports chosen free at run time. Every wait is bounded in time, and the test stops
only the processes it started, by PID. The model is `mnist_mlp` shrunk by flags, on 8,192
real MNIST training images, without BatchNorm and dropout (their statistics and masks are
per replica, so with them two workers would not compute what one process computes).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import REPO
from zoo import train

pytestmark = pytest.mark.slow

EPOCHS = 3
RECIPE_ARGS = [
    "--model=mnist_mlp", f"--epochs={EPOCHS}", "--batch_size=64",
    "--set=train_split='train[:8192]'", "--set=eval_split='test[:2000]'",
    "--set=eval_batch_size=500", "--set=warmup_epochs=0.0", "--set=log_images=0",
    "--set=model_kwargs.hidden_units=(64,)", "--set=model_kwargs.batch_norm=False",
    "--set=model_kwargs.dropout=0.0",
]
PROCESS_TIMEOUT_SECONDS = 240


def _free_ports(n):
  socks = [socket.socket() for _ in range(n)]
  try:
    for s in socks:
      s.bind(("127.0.0.1", 0))
    return [s.getsockname()[1] for s in socks]
  finally:
    for s in socks:
      s.close()


class Cluster:
  """Starts `scripts/train.py` processes and always stops the ones still running."""

  def __init__(self, tmp_path):
    self.tmp_path = tmp_path
    self.procs = []

  def start(self, model_dir, *, data_dir, ports=None, index=None, extra=(), name="p",
            recipe_args=RECIPE_ARGS):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_CONFIG", None)
    args = [*recipe_args, f"--model_dir={model_dir}", f"--data_dir={data_dir}", *extra]
    if ports is not None:
      env["TF_CONFIG"] = json.dumps({
          "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
          "task": {"type": "worker", "index": index}})
      args.append("--strategy=multi_worker_mirrored")
    log = open(self.tmp_path / f"{name}.log", "w")
    proc = subprocess.Popen([sys.executable, str(REPO / "scripts" / "train.py"), *args],
                            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    proc.log_path = log.name
    self.procs.append(proc)
    return proc

  def wait(self, proc, timeout=PROCESS_TIMEOUT_SECONDS):
    try:
      return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
      self.stop_all()
      pytest.fail(f"process {proc.pid} still running after {timeout} s:\n{tail(proc)}")

  def kill(self, proc):
    proc.send_signal(signal.SIGKILL)  # MultiWorkerMirroredStrategy catches SIGTERM.
    proc.wait(timeout=30)

  def stop_all(self):
    for proc in self.procs:
      if proc.poll() is None:
        self.kill(proc)


def tail(proc, n=3000):
  return open(proc.log_path).read()[-n:]


@pytest.fixture
def cluster(tmp_path):
  c = Cluster(tmp_path)
  yield c
  c.stop_all()


def _weights(run_dir):
  return keras.saving.load_model(os.path.join(run_dir, train.CHECKPOINT)).get_weights()


def _metrics(run_dir):
  with open(os.path.join(run_dir, "metrics.json")) as f:
    return json.load(f)


def _backup_epoch(run_dir):
  """Epochs completed according to the run's backup, or 0 before the first one."""
  try:
    with open(os.path.join(run_dir, "backup", "training_metadata.json")) as f:
      return json.load(f)["epoch"]
  except (OSError, ValueError, KeyError):
    return 0


def _wait_for_backup_epoch(run_dir, epoch, procs, timeout=PROCESS_TIMEOUT_SECONDS):
  deadline = time.monotonic() + timeout
  while _backup_epoch(run_dir) < epoch:
    for p in procs:
      assert p.poll() is None, f"process ended early ({p.returncode}):\n{tail(p)}"
    assert time.monotonic() < deadline, f"no backup of epoch {epoch} after {timeout} s"
    time.sleep(0.2)


def _epoch_steps_logged(run_dir, tag="epoch_loss"):
  """Epoch indices of every `tag` summary written to TensorBoard's train logs."""
  steps = []
  train_logs = os.path.join(run_dir, "tensorboard", "train")
  for f in os.listdir(train_logs):
    for event in tf.compat.v1.train.summary_iterator(os.path.join(train_logs, f)):
      steps += [event.step for v in event.summary.value if v.tag == tag]
  return sorted(steps)


def _worker_dirs(model_dir):
  return [str(model_dir), str(model_dir / "workers" / "worker_1")]


@pytest.fixture(scope="module")
def uninterrupted(real_mnist_data_dir, tmp_path_factory):
  """The same run, uninterrupted, on two workers and in one process (all three at once)."""
  tmp = tmp_path_factory.mktemp("uninterrupted")
  c = Cluster(tmp)
  try:
    ports = _free_ports(2)
    procs = [c.start(tmp / "two", data_dir=real_mnist_data_dir, ports=ports, index=i,
                     name=f"worker{i}") for i in range(2)]
    procs.append(c.start(tmp / "one", data_dir=real_mnist_data_dir, name="single"))
    for p in procs:
      assert c.wait(p) == 0, tail(p)
  finally:
    c.stop_all()
  return {"two": tmp / "two", "one": tmp / "one"}


def test_two_workers_train_what_one_process_trains(uninterrupted):
  chief, other = _worker_dirs(uninterrupted["two"])
  card = json.loads(open(os.path.join(chief, "run_card.json")).read())
  # MultiWorkerMirroredStrategy is the public name of this class.
  assert card["strategy"] == "CollectiveAllReduceStrategy" and card["num_replicas"] == 2
  assert card["jit_compile"] is False  # No XLA collectives on CPUs.
  for a, b in zip(_weights(chief), _weights(other)):
    np.testing.assert_array_equal(a, b)  # The workers hold one model.
  for a, b in zip(_weights(chief), _weights(uninterrupted["one"])):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  two, one = _metrics(chief), _metrics(uninterrupted["one"])
  assert two["num_examples"] == one["num_examples"] == 2000
  assert two["accuracy"] == pytest.approx(one["accuracy"], abs=1e-3)
  assert two["accuracy"] > 0.85  # It learned: 3 epochs on 8k images.
  assert _metrics(other)["accuracy"] == two["accuracy"]


def test_killed_worker_stops_its_peer_clearly_and_both_resume(
    uninterrupted, cluster, real_mnist_data_dir, tmp_path):
  model_dir = tmp_path / "run"
  ports = _free_ports(2)
  start = lambda i: cluster.start(model_dir, data_dir=real_mnist_data_dir, ports=ports,
                                  index=i, name=f"worker{i}_{len(cluster.procs)}")
  chief, other = start(0), start(1)
  # Both workers' backups of epoch 1 (each writes its own; on a loaded machine the second
  # can land more than a second after the chief's).
  for run_dir in _worker_dirs(model_dir):
    _wait_for_backup_epoch(run_dir, 1, [chief, other])
  time.sleep(1.0)  # Into the next epoch (about 5 s each).
  cluster.kill(other)
  started = time.monotonic()
  assert cluster.wait(chief, timeout=120) != 0
  assert time.monotonic() - started < 120
  assert "a peer worker stopped" in tail(chief) and "Restart every worker" in tail(chief), \
      tail(chief)
  done = [_backup_epoch(d) for d in _worker_dirs(model_dir)]
  assert done[0] == done[1] and 1 <= done[0] < EPOCHS, done

  chief, other = start(0), start(1)
  assert cluster.wait(chief) == 0, tail(chief)
  assert cluster.wait(other) == 0, tail(other)
  dirs = _worker_dirs(model_dir)
  for d in dirs:
    assert _metrics(d)["epochs_run_this_invocation"] == EPOCHS - done[0]
    assert _epoch_steps_logged(d) == list(range(EPOCHS))  # None lost, none twice.
  for a, b in zip(_weights(dirs[0]), _weights(dirs[1])):
    np.testing.assert_array_equal(a, b)
  # The resumed epoch sees another shuffle order than the uninterrupted run: close, not equal.
  reference = _metrics(_worker_dirs(uninterrupted["two"])[0])["accuracy"]
  assert _metrics(dirs[0])["accuracy"] == pytest.approx(reference, abs=0.02)


def test_killed_single_process_run_resumes_from_its_last_backup(
    uninterrupted, cluster, real_mnist_data_dir, tmp_path):
  model_dir = tmp_path / "run"
  # 30,000 training images: epochs of a few seconds, so that the kill lands inside the run
  # (with the batched input pipeline an 8,192-image epoch of this MLP lasts well under 1 s).
  longer = ["--set=train_split='train[:30000]'"]
  proc = cluster.start(model_dir, data_dir=real_mnist_data_dir, name="first", extra=longer)
  _wait_for_backup_epoch(str(model_dir), 1, [proc])
  time.sleep(0.5)  # Into epoch 2, past epoch 1's TensorBoard write (after the backup).
  cluster.kill(proc)
  done = _backup_epoch(str(model_dir))
  assert 1 <= done < EPOCHS
  proc = cluster.start(model_dir, data_dir=real_mnist_data_dir, name="second", extra=longer)
  assert cluster.wait(proc) == 0, tail(proc)
  metrics = _metrics(model_dir)
  assert metrics["epochs_run_this_invocation"] == EPOCHS - done
  assert _epoch_steps_logged(str(model_dir)) == list(range(EPOCHS))
  # Trained on 30,000 images, it should do at least as well as the 8,192-image reference
  # (bit-identical resumes are tests/test_resume.py's).
  reference = _metrics(uninterrupted["one"])["accuracy"]
  assert metrics["accuracy"] >= reference - 0.02


def test_worker_whose_peer_never_starts_gives_up_with_a_clear_message(
    cluster, real_mnist_data_dir, tmp_path):
  ports = _free_ports(2)
  proc = cluster.start(tmp_path / "run", data_dir=real_mnist_data_dir, ports=ports, index=0,
                       extra=["--worker_start_timeout=5"], name="alone")
  assert cluster.wait(proc, timeout=90) == -signal.SIGKILL
  assert (f"worker 0 waited 5 s for the other workers in TF_CONFIG (127.0.0.1:{ports[1]})"
          in tail(proc)), tail(proc)


GAN_ARGS = [
    "--model=dcgan_mnist", "--epochs=2", "--batch_size=64",
    "--set=train_split='train[:2048]'", "--set=log_images=0",
    "--set=model_kwargs.generator_filters=(16,8)", "--set=model_kwargs.discriminator_filters=(8,16)",
    "--set=task_kwargs.quality_every_epochs=0", "--set=task_kwargs.eval_samples=500",
]


def test_gan_custom_train_step_on_two_workers(cluster, real_mnist_data_dir, tmp_path):
  """The GAN's own train_step (two optimizers, global-batch losses) under
  multi_worker_mirrored: both workers finish and hold one model, whose losses are finite."""
  ports = _free_ports(2)
  procs = [cluster.start(tmp_path / "gan", data_dir=real_mnist_data_dir, ports=ports, index=i,
                         name=f"gan{i}", recipe_args=GAN_ARGS) for i in range(2)]
  for p in procs:
    assert cluster.wait(p) == 0, tail(p)
  chief, other = _worker_dirs(tmp_path / "gan")
  card = json.loads(open(os.path.join(chief, "run_card.json")).read())
  assert card["num_replicas"] == 2 and card["config"]["task"] == "generation"
  models = [keras.saving.load_model(os.path.join(d, train.CHECKPOINT)) for d in (chief, other)]
  for a, b in zip(models[0].get_weights(), models[1].get_weights()):
    np.testing.assert_array_equal(a, b)
  metrics = _metrics(chief)
  assert metrics["epochs_run_this_invocation"] == 2 and _epoch_steps_logged(chief, "epoch_d_loss") == [0, 1]
  assert np.isfinite(metrics["fid"]) and metrics["num_samples"] == 500
  assert _metrics(other)["fid"] == metrics["fid"]
