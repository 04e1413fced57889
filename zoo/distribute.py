"""The one place the `tf.distribute` strategy is chosen.

`batch_size` in every config is the global batch: the sum over all replicas (and workers).

Input sharding, chosen once here for every strategy (`shard_inputs`): the auto-shard policy
is `DATA`. Every worker runs the whole input pipeline with the same seed and keeps its own
slice of each global batch, so a global batch holds the same examples whatever the number
of workers: a run on 2 workers computes what the same run on one machine computes (up to
float rounding and per-replica BatchNorm statistics). `FILE` sharding would read less, but
TFDS stores MNIST-sized splits in a single file, and a worker with no file gets no data.

Multi-worker training uses `fit()` like every other strategy. Keras 3.15 / TF 2.21 break
`fit()` under `MultiWorkerMirroredStrategy` in two places; `get_strategy` mends both when it
creates one (see `_mend_keras_fit`).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from typing import Optional

import tensorflow as tf

from zoo import errors

STRATEGIES = ("auto", "default", "one_device", "mirrored", "multi_worker_mirrored", "tpu")


class WorkerLostError(errors.ZooError, RuntimeError):
  """A peer worker stopped (or became unreachable) during multi-worker training."""


def get_strategy(name: str = "default", *, tpu: Optional[str] = None,
                 worker_start_timeout_seconds: float = 300.0) -> tf.distribute.Strategy:
  """Returns the strategy called `name`.

  Args:
    name: `auto` (mirrored over all GPUs if more than one, else default), `default`,
      `one_device` (first GPU, else CPU), `mirrored` (all GPUs; with no GPU, all logical
      CPU devices, so two logical CPUs can stand in for two GPUs), `multi_worker_mirrored`
      (reads `TF_CONFIG`) or `tpu`.
    tpu: TPU address for `tpu` (`''` or None: the local/Colab TPU).
    worker_start_timeout_seconds: `multi_worker_mirrored` only. TensorFlow waits forever
      for every worker in `TF_CONFIG` to start; after this many seconds the process is
      stopped (SIGKILL) after writing a message that names the other workers' addresses.

  Raises:
    ValueError: unknown name, or `multi_worker_mirrored` without a usable `TF_CONFIG`.
  """
  if name not in STRATEGIES:
    raise errors.InvalidValueError(
        f"Invalid value for `strategy`: expected one of {list(STRATEGIES)}. "
        f"Received: {name!r}")
  if name == "auto":
    gpus = tf.config.list_logical_devices("GPU")
    name = "mirrored" if len(gpus) > 1 else "default"
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "one_device":
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
  if name == "mirrored":
    devices = (tf.config.list_logical_devices("GPU")
               or tf.config.list_logical_devices("CPU"))
    _mend_keras_fit()
    return _new_mirrored_strategy([d.name for d in devices])
  if name == "multi_worker_mirrored":
    return _multi_worker_strategy(worker_start_timeout_seconds)
  resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
  tf.config.experimental_connect_to_cluster(resolver)
  tf.tpu.experimental.initialize_tpu_system(resolver)
  return tf.distribute.TPUStrategy(resolver)


def _new_mirrored_strategy(devices):
  """A `MirroredStrategy` whose collective keys no earlier one in this process has used.

  Every `MirroredStrategy` numbers its collective groups from
  `1 + MirroredStrategy._collective_key_base` and its all-reduces from instance 100, and
  TensorFlow's collective executor remembers each (group, instance) for the life of the
  process. A second strategy (a notebook training twice, a test suite) then reuses those
  keys and its first all-reduce of another shape aborts with "Shape mismatch in the
  collective instance 100". TensorFlow's own tests move the base by 100000 per strategy
  (`tensorflow/python/distribute/strategy_combinations.py`); so does this.
  """
  tf.distribute.MirroredStrategy._collective_key_base += 100_000  # pylint: disable=protected-access
  return tf.distribute.MirroredStrategy(devices)


def read_tf_config() -> dict:
  """Parses and checks `TF_CONFIG`; returns it. Raises ValueError saying what is wrong."""
  raw = os.environ.get("TF_CONFIG")
  example = ('TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
             '"task": {"type": "worker", "index": 0}}\'')
  if not raw:
    raise errors.InvalidValueError(
        "Invalid value for `strategy`: multi_worker_mirrored needs the "
        f"TF_CONFIG environment variable on every worker, e.g. {example}. "
        "See README.md, 'Scale out'.")
  try:
    config = json.loads(raw)
    workers = config["cluster"]["worker"]
    task = config["task"]
    index = int(task["index"])
  except (ValueError, KeyError, TypeError) as e:
    raise errors.InvalidValueError(f"Invalid value for `TF_CONFIG`: expected JSON like {example}. "
                                   f"Received: {raw!r} ({type(e).__name__}: {e})") from None
  if task.get("type") == "worker" and not 0 <= index < len(workers):
    raise errors.InvalidValueError(
        f"Invalid value for `TF_CONFIG`: task index {index} is not in "
        f"0..{len(workers) - 1} (the cluster lists {len(workers)} workers).")
  return config


def _multi_worker_strategy(timeout_seconds: float) -> tf.distribute.Strategy:
  config = read_tf_config()
  _mend_keras_fit()
  cluster = config["cluster"]
  me = f"{config['task']['type']} {config['task']['index']}"
  others = [a for job, addrs in cluster.items() for i, a in enumerate(addrs)
            if (job, i) != (config["task"]["type"], int(config["task"]["index"]))]

  message = (
      f"error: multi_worker_mirrored: {me} waited {timeout_seconds:.0f} s for the other "
      f"workers in TF_CONFIG ({', '.join(others)}) and not all of them joined. Start every "
      "worker with the same command and its own task index, check the addresses, or raise "
      "--worker_start_timeout.\n")
  watchdog = _start_watchdog(timeout_seconds, message)
  try:
    return tf.distribute.MultiWorkerMirroredStrategy()
  finally:
    watchdog.kill()
    watchdog.wait()


# The strategy's constructor blocks inside TensorFlow's C++ runtime holding the GIL, so no
# Python thread or signal handler runs until it returns: the watchdog is a process. It
# writes the message and kills this process (SIGKILL: the strategy catches SIGTERM), unless
# this process has ended already (then the watchdog's parent is no longer this PID).
_WATCHDOG = """
import os, signal, sys, time
pid, seconds, message = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
time.sleep(seconds)
if os.getppid() == pid:
  sys.stderr.write(message)
  sys.stderr.flush()
  os.kill(pid, signal.SIGKILL)
"""


def _start_watchdog(seconds: float, message: str) -> subprocess.Popen:
  return subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(seconds),
                           message])


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """True for the one worker that writes the run directory (every worker on one machine)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return True
  if resolver.task_type == "chief":
    return True
  return resolver.task_type == "worker" and resolver.task_id == 0 and (
      "chief" not in resolver.cluster_spec().as_dict())


def worker_dir(model_dir: str, strategy: tf.distribute.Strategy) -> str:
  """Where this worker writes: `model_dir` for the chief, `model_dir/workers/<type>_<id>`
  for the others. Every worker keeps a complete run directory of its own (config,
  backup, checkpoints, logs), so each one resumes from its own backup and no two
  processes ever write the same file."""
  if is_chief(strategy):
    return model_dir
  resolver = strategy.cluster_resolver
  return os.path.join(model_dir, "workers", f"{resolver.task_type}_{resolver.task_id}")


def check_global_batch(batch_size: int, strategy: tf.distribute.Strategy,
                       name: str = "batch_size") -> None:
  """Raises if the global batch does not split evenly over the replicas."""
  n = strategy.num_replicas_in_sync
  if batch_size % n:
    raise errors.InvalidValueError(
                      f"Invalid value for `{name}`: expected a positive multiple of the number of "
                      f"replicas ({n}). Received: {name}={batch_size}")


def xla_supported(strategy: tf.distribute.Strategy) -> bool:
  """False where XLA cannot compile the training step: several replicas on CPU devices.

  Under `MultiWorkerMirroredStrategy` TensorFlow has no XLA collectives for CPUs ("Collectives
  are not yet implemented for CPU devices when compiling with XLA"); under `MirroredStrategy`
  on logical CPUs the compiled step reads another device's variables ("Trying to access
  resource ... located in device CPU:1 from device CPU:0"). Both verified with TF 2.21.
  """
  if strategy.num_replicas_in_sync == 1:
    return True
  return not all("CPU" in d.upper() for d in strategy.extended.worker_devices)


def steps_per_execution(strategy: tf.distribute.Strategy, wanted: int) -> int:
  """`wanted` steps per call, or 1 under `MirroredStrategy` and
  `MultiWorkerMirroredStrategy`, where Keras 3.15's multi-step loop fails (a distributed
  iterator's optional in its `tf.while_loop`; keras-team/keras#19246)."""
  if isinstance(strategy, (tf.distribute.MirroredStrategy,
                           tf.distribute.MultiWorkerMirroredStrategy)):
    return 1
  return wanted


def shard_inputs(ds: tf.data.Dataset) -> tf.data.Dataset:
  """Sets the auto-shard policy `tf.distribute` applies to `ds` (DATA; module docstring)."""
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
  return ds.with_options(options)


def lost_worker_error(error: Exception, model_dir: str) -> WorkerLostError:
  """The message a worker leaves when a peer stopped (TensorFlow raises UnavailableError)."""
  return WorkerLostError(
      f"Multi-worker training of {model_dir!r} stopped: a peer worker stopped or became "
      f"unreachable ({type(error).__name__}: {str(error).splitlines()[0][:300]}). Restart "
      "every worker with the same command: each one resumes from its last backup.")


# Strategies whose symbolic build reads shapes from the element_spec (tested here).
_SPEC_BUILD_STRATEGIES = (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy)


@functools.cache
def _mend_keras_fit() -> None:
  """Works around two Keras 3.15 bugs that break `fit()` under MultiWorkerMirroredStrategy.

  1. `TensorFlowTrainer._maybe_symbolic_build` all-reduces the first input batch across
     workers just to learn its shapes; the cross-worker reduce of a `(x, y)` tuple fails
     ("Attempt to convert a value (PerReplica: ...) to a Tensor"; keras-team/keras issue
     20585, tensorflow/tensorflow issue 72388). Only shapes and dtypes are used, so this
     reads them from the dataset's `element_spec` instead. Drawing no batch also keeps
     the first epoch's shuffle order the one a single-device run sees (Keras draws one
     under `MirroredStrategy` too, which then trains on other batches than the same run
     without a strategy), so this applies to both mirrored strategies.
  2. `reduce_per_replica` averages each step's logs across workers with
     `strategy.reduce("MEAN", v, axis=0)`, which fails for the scalar losses and metrics
     every train and test step returns ("Invalid reduction dimension 0 for input with 0
     dimensions"). Scalars are averaged with `axis=None` instead.

  Both replacements defer to Keras's own code everywhere else. Applied once per process;
  `tests/test_multi_worker.py` fails if a Keras upgrade changes either place.
  """
  from keras.src.backend.tensorflow import trainer as tf_trainer

  original_reduce = tf_trainer.reduce_per_replica

  def reduce_per_replica(values, strategy, reduction):
    if (tf_trainer._collective_all_reduce_multi_worker(strategy)
        and reduction in ("auto", "mean")):
      def mean(v):
        return strategy.reduce("MEAN", v, axis=0 if v.shape.rank else None)
      return tf.nest.map_structure(mean, values)
    return original_reduce(values, strategy, reduction)

  original_build = tf_trainer.TensorFlowTrainer._maybe_symbolic_build

  def _maybe_symbolic_build(self, iterator=None, data_batch=None):
    strategy = self._distribute_strategy
    if iterator is None or not isinstance(strategy, _SPEC_BUILD_STRATEGIES):
      return original_build(self, iterator=iterator, data_batch=data_batch)
    data_batch = iterator.data_adapter.get_tf_dataset().element_spec
    with strategy.scope():
      self._symbolic_build(data_batch=data_batch)

  tf_trainer.reduce_per_replica = reduce_per_replica
  tf_trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
