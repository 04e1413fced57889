"""The precision helper: policy names, and loss scaling for compile()-based recipes and for
models with their own train_step and several optimizers (the shape of a GAN)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo import distribute, precision


@pytest.mark.parametrize("name, policy", [("float32", "float32"), ("float16", "mixed_float16"),
                                          ("bfloat16", "mixed_bfloat16"), ("auto", "float32")])
def test_set_policy(name, policy):
  assert precision.set_policy(name) == policy  # `auto` on this CPU-only machine: float32.
  assert keras.mixed_precision.global_policy().name == policy


def test_unknown_policy_is_refused():
  with pytest.raises(ValueError, match=r"Invalid value for `mixed_precision`: expected one of "
                                       r"\['auto', 'float32', 'float16', 'bfloat16'\]\. "
                                       r"Received: 'fp8'"):
    precision.set_policy("fp8")


class TwoOptimizerModel(keras.Model):
  """Two halves, each trained by its own optimizer in a custom train_step, as a GAN's
  generator and discriminator are. The loss is tiny on purpose: its float16 gradients
  underflow to zero unless the loss is scaled."""

  def __init__(self):
    super().__init__()
    self.first = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")
    self.second = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")

  def call(self, x):
    return self.first(x), self.second(x)

  def compile(self, first_optimizer, second_optimizer):
    super().compile()
    self.first_optimizer = precision.loss_scaled(first_optimizer)
    self.second_optimizer = precision.loss_scaled(second_optimizer)
    # Built here, in the strategy scope: built lazily inside the distributed step, a
    # LossScaleOptimizer fails under MirroredStrategy ("You must feed a value for
    # placeholder tensor ... cond/Placeholder").
    self.first_optimizer.build(self.first.trainable_variables)
    self.second_optimizer.build(self.second.trainable_variables)

  def train_step(self, x):
    logs = {}
    for name, layer, optimizer in [("first", self.first, self.first_optimizer),
                                   ("second", self.second, self.second_optimizer)]:
      with tf.GradientTape() as tape:
        y = tf.cast(layer(x), tf.float32)
        loss = 1e-9 * tf.reduce_mean(tf.square(y))
        scaled = optimizer.scale_loss(loss)
      grads = tape.gradient(scaled, layer.trainable_variables)
      optimizer.apply(grads, layer.trainable_variables)
      logs[f"{name}_loss"] = loss
    return logs


def _train(policy, strategy_name="default"):
  precision.set_policy(policy)
  strategy = distribute.get_strategy(strategy_name)
  x = np.ones((8, 4), "float32")
  with strategy.scope():
    model = TwoOptimizerModel()
    model(x)
    # The gradient of the tiny loss is about 1e-8: a large learning rate makes it visible.
    model.compile(keras.optimizers.SGD(1e6), keras.optimizers.SGD(1e6))
  model.fit(tf.data.Dataset.from_tensors(x).repeat(2), epochs=1, verbose=0)
  return model


@pytest.mark.parametrize("strategy_name", ["default", "mirrored"])
def test_custom_train_step_with_two_optimizers_is_loss_scaled_under_float16(strategy_name):
  model = _train("float16", strategy_name)
  for optimizer in (model.first_optimizer, model.second_optimizer):
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
  for layer in (model.first, model.second):
    kernel = np.asarray(layer.kernel)
    assert kernel.dtype == np.float32
    assert np.all(np.isfinite(kernel)) and np.all(kernel < 1.0)  # Both halves trained.


def test_without_loss_scaling_the_same_float16_step_underflows(monkeypatch):
  monkeypatch.setattr(precision, "loss_scaled", lambda optimizer: optimizer)
  model = _train("float16")
  np.testing.assert_array_equal(np.asarray(model.first.kernel), 1.0)  # Gradients were 0.


def test_float32_needs_no_loss_scaling():
  model = _train("float32")
  assert not isinstance(model.first_optimizer, keras.optimizers.LossScaleOptimizer)
  assert np.all(np.asarray(model.first.kernel) < 1.0)


def test_bfloat16_gets_no_loss_scaling():
  # bfloat16 has float32's exponent range: small gradients do not underflow.
  model = _train("bfloat16")
  assert not isinstance(model.first_optimizer, keras.optimizers.LossScaleOptimizer)
  assert np.all(np.asarray(model.first.kernel) < 1.0)
