"""The one place the dtype policy is decided. Call `set_policy` before building any model.

Which policy where:
  * GPU with compute capability >= 7.0: `float16` (mixed_float16, with loss scaling).
  * TPU: `bfloat16` (mixed_bfloat16).
  * CPU: `float32`. float16 has no native kernels on CPUs without AVX-512 FP16 (oneDNN
    falls back to Eigen): `mnist_cnn` trains 2.4x slower under it on the benchmark CPU.
    `bfloat16` runs natively on CPUs with AVX-512 BF16 / AMX and is used only when asked
    for explicitly (see BENCHMARKS.md, "Precision policies").

Whatever the policy, builders keep logits, probabilities and so losses in float32, and
variables are float32. Loss scaling (float16 only): `model.compile(optimizer=...)` adds it
by itself; a model with its own `train_step` and optimizers (a GAN's two) wraps each with
`loss_scaled` and calls `optimizer.scale_loss(loss)` before taking gradients, which is the
identity for an unwrapped optimizer, so one `train_step` serves every policy.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from zoo import errors

_KERAS_POLICY = {"float32": "float32", "float16": "mixed_float16",
                 "bfloat16": "mixed_bfloat16"}
# The names `--mixed_precision` / `TrainConfig.mixed_precision` accept (the one list).
POLICIES = ("auto", *_KERAS_POLICY)


def resolve_policy(name: str) -> str:
  """Maps `auto|float32|float16|bfloat16` to a Keras policy name for this machine."""
  if name == "auto":
    if tf.config.list_logical_devices("TPU"):
      return "mixed_bfloat16"
    gpus = tf.config.list_physical_devices("GPU")
    if gpus and all(_compute_capability(g) >= (7, 0) for g in gpus):
      return "mixed_float16"
    return "float32"
  if name not in _KERAS_POLICY:
    raise errors.InvalidValueError("Invalid value for `mixed_precision`: expected one of "
                                   f"{list(POLICIES)}. Received: {name!r}")
  return _KERAS_POLICY[name]


def _compute_capability(gpu) -> tuple[int, int]:
  details = tf.config.experimental.get_device_details(gpu)
  return tuple(details.get("compute_capability", (0, 0)))


def set_policy(name: str) -> str:
  """Sets the global Keras dtype policy; returns the Keras policy name it set."""
  policy = resolve_policy(name)
  keras.mixed_precision.set_global_policy(policy)
  return policy


def loss_scaled(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
  """`optimizer` wrapped in a dynamic `LossScaleOptimizer` if the global policy is
  mixed_float16 (float16 gradients underflow without it); unchanged otherwise.

  In a custom `train_step`: `grads = tape.gradient(optimizer.scale_loss(loss), variables)`
  then `optimizer.apply(grads, variables)`, which unscales them and skips a step whose
  gradients overflowed. Call it inside the strategy scope, after `set_policy`, and build
  the optimizer there too (`optimizer.build(variables)`): built lazily inside a distributed
  step, a LossScaleOptimizer fails under MirroredStrategy.
  """
  if (keras.mixed_precision.global_policy().name == "mixed_float16"
      and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer)):
    return keras.optimizers.LossScaleOptimizer(optimizer)
  return optimizer
