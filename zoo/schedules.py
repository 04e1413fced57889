"""Schedules of the zoo's own, registered so a checkpoint's optimizer reloads.

`ScaledAfter` is fine-tuning's second phase (Keras' transfer-learning guide): once the layers
loaded from trained weights are unfrozen, every rate is multiplied by a small factor.

`warm_ema_momentum` is the weight average's momentum at a step: Keras keeps a fixed
`ema_momentum` from the first step, so on a small dataset (a few hundred steps in all) the
average still holds the first, untrained weights when the run ends. TensorFlow's
`tf.train.ExponentialMovingAverage(num_updates=)` warms it up instead: at step n the momentum
is `min(ema_momentum, (1 + n) / (10 + n))`, so the average spans about the last n/10
steps early on and the full ~1/(1 - ema_momentum) steps from n ~ 10/(1 - ema_momentum) on
(0.99: step 890). `AdamEMAWarmup`, `AdamWEMAWarmup` and `SGDEMAWarmup` are Keras's
optimizers with that momentum (`TrainConfig.ema_warmup`).
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="zoo")
class ScaledAfter(keras.optimizers.schedules.LearningRateSchedule):
  """`base` (a number or a schedule) until `boundary_step`, then `base x scale`.

  Args:
    base: the learning rate, or a schedule of the step.
    boundary_step: the first step, counted from 0 over the whole run, at the lower rate.
    scale: the factor from `boundary_step` on (0.1: ten times lower).
  """

  def __init__(self, base, boundary_step: int, scale: float):
    self.base = base
    self.boundary_step = int(boundary_step)
    self.scale = float(scale)

  def __call__(self, step):
    rate = self.base(step) if callable(self.base) else ops.convert_to_tensor(self.base)
    factor = ops.where(ops.greater_equal(step, self.boundary_step), self.scale, 1.0)
    return rate * ops.cast(factor, rate.dtype)

  def get_config(self):
    base = (keras.optimizers.schedules.serialize(self.base)
            if isinstance(self.base, keras.optimizers.schedules.LearningRateSchedule)
            else self.base)
    return {"base": base, "boundary_step": self.boundary_step, "scale": self.scale}

  @classmethod
  def from_config(cls, config):
    base = config["base"]
    if isinstance(base, dict):
      base = keras.optimizers.schedules.deserialize(base)
    return cls(base, config["boundary_step"], config["scale"])


def warm_ema_momentum(momentum: float, step):
  """The average's momentum at `step` (0-based): 0 at step 0 (the average starts as the
  weights, as Keras's does), then `min(momentum, (1 + step) / (10 + step))`."""
  step = ops.cast(step, "float32")
  warm = ops.minimum(ops.cast(momentum, "float32"), (1.0 + step) / (10.0 + step))
  return ops.where(ops.equal(step, 0.0), 0.0, warm)


class _EMAWarmup:
  """Keras's moving average of the weights with `warm_ema_momentum` in place of its fixed
  momentum. Keras calls `_update_model_variables_moving_average` once per applied step,
  before it increments `iterations` (keras/src/optimizers/base_optimizer.py); this is that
  method with the momentum changed, so swapping, checkpoints and `finalize_variable_values`
  stay Keras's. tests/test_train.py checks it against the formula step by step."""

  def _update_model_variables_moving_average(self, trainable_variables):
    if not self.use_ema:
      return
    momentum = warm_ema_momentum(self.ema_momentum, self.iterations)
    for var, average in zip(trainable_variables, self._model_variables_moving_average):
      if average is not None:
        m = ops.cast(momentum, var.dtype)
        average.assign(ops.add(ops.multiply(m, average), ops.multiply(1.0 - m, var)))


@keras.saving.register_keras_serializable(package="zoo")
class AdamEMAWarmup(_EMAWarmup, keras.optimizers.Adam):
  """`keras.optimizers.Adam` whose weight average warms up (see the module docstring)."""


@keras.saving.register_keras_serializable(package="zoo")
class AdamWEMAWarmup(_EMAWarmup, keras.optimizers.AdamW):
  """`keras.optimizers.AdamW` whose weight average warms up (see the module docstring)."""


@keras.saving.register_keras_serializable(package="zoo")
class SGDEMAWarmup(_EMAWarmup, keras.optimizers.SGD):
  """`keras.optimizers.SGD` whose weight average warms up (see the module docstring)."""
