"""Learning-rate schedules of the zoo's own, registered so a checkpoint's optimizer reloads.

`ScaledAfter` is fine-tuning's second phase (Keras' transfer-learning guide): once the layers
loaded from trained weights are unfrozen, every rate is multiplied by a small factor.
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
