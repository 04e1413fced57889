"""The one place the `tf.distribute` strategy is chosen.

`batch_size` in every config is the global batch: the sum over all replicas.
"""

from __future__ import annotations

from typing import Optional

import tensorflow as tf

STRATEGIES = ("auto", "default", "one_device", "mirrored", "multi_worker_mirrored", "tpu")


def get_strategy(name: str = "default", *, tpu: Optional[str] = None) -> tf.distribute.Strategy:
  """Returns the strategy called `name`.

  Args:
    name: `auto` (mirrored over all GPUs if more than one, else default), `default`,
      `one_device` (first GPU, else CPU), `mirrored`, `multi_worker_mirrored` (reads
      `TF_CONFIG`) or `tpu`.
    tpu: TPU address for `tpu` (`''` or None: the local/Colab TPU).
  """
  if name not in STRATEGIES:
    raise ValueError(f"Invalid value for `strategy`: expected one of {list(STRATEGIES)}. "
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
    return tf.distribute.MirroredStrategy()
  if name == "multi_worker_mirrored":
    return tf.distribute.MultiWorkerMirroredStrategy()
  resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
  tf.config.experimental_connect_to_cluster(resolver)
  tf.tpu.experimental.initialize_tpu_system(resolver)
  return tf.distribute.TPUStrategy(resolver)


def check_global_batch(batch_size: int, strategy: tf.distribute.Strategy) -> None:
  """Raises if the global batch does not split evenly over the replicas."""
  n = strategy.num_replicas_in_sync
  if batch_size % n:
    raise ValueError(
        "Invalid value for `batch_size`: expected a positive multiple of the number of "
        f"replicas ({n}). Received: batch_size={batch_size}")
