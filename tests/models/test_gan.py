"""Contract tests of the GAN builders and of `GAN.train_step` under each policy and strategy."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo import distribute
from zoo.models import gan

# Exact weight counts of the default networks (28x28x1, latent 64). A changed count is a
# changed architecture: update it knowingly.
G = 64 * 7 * 7 * 128 + 4 * 128 + 4 * 4 * 128 * 64 + 4 * 64 + 4 * 4 * 64 + 1
D = (4 * 4 * 64 + 64) + (4 * 4 * 64 * 128 + 128) + (7 * 7 * 128 + 1)
EXPECTED_PARAMS = {
    "generator": G, "discriminator": D,
    "conditional_generator": G + 32 * 7 * 7 * 128 + 10 * 32,
    "conditional_discriminator": D + 10 * 7 * 7 * 128,
    # TensorFlow tutorial, as its model.summary() prints: 2,330,944 and 212,865.
    "tutorial_generator": 2_330_944, "tutorial_discriminator": 212_865,
}
POLICIES = ["float32", "mixed_float16", "mixed_bfloat16"]


def _build(kind, **kwargs):
  if kind == "tutorial":
    return gan.tf_tutorial_dcgan(**kwargs)
  return gan.dcgan(conditional=kind == "conditional", **kwargs)


def _batch(model, n=8, seed=0):
  rng = np.random.default_rng(seed)
  images = rng.uniform(-1, 1, (n, 28, 28, 1)).astype("float32")
  labels = rng.integers(0, 10, n)
  return (images, labels) if model.conditional else images


def _inputs(model, n=4):
  latent = tf.random.normal((n, model.latent_dim))
  return [latent, tf.range(n) % 10] if model.conditional else latent


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("kind", ["unconditional", "conditional", "tutorial"])
def test_builder_contract(kind, policy):
  keras.mixed_precision.set_global_policy(policy)
  model = _build(kind)
  prefix = {"unconditional": "", "conditional": "conditional_", "tutorial": "tutorial_"}[kind]
  assert model.generator.count_params() == EXPECTED_PARAMS[prefix + "generator"]
  assert model.discriminator.count_params() == EXPECTED_PARAMS[prefix + "discriminator"]
  images = model(_inputs(model), training=False)
  assert tuple(images.shape) == (4, 28, 28, 1) and images.dtype == "float32"
  assert np.all(np.abs(images) <= 1.0)  # tanh, in float32 under every policy.
  d_in = [images, tf.range(4) % 10] if model.conditional else images
  logits = model.discriminator(d_in, training=False)
  assert tuple(logits.shape) == (4, 1) and logits.dtype == "float32"
  for v in model.generator.weights + model.discriminator.weights:
    assert v.dtype == "float32", v.path
  if policy != "float32":
    compute = {layer.name: layer.compute_dtype for layer in model.generator.layers
               if layer.weights}
    assert set(compute.values()) == {policy.split("_")[1]}, compute


def test_config_round_trip_gives_the_same_images(tmp_path):
  model = gan.dcgan(conditional=True)
  model.save(tmp_path / "g.keras")
  loaded = keras.saving.load_model(tmp_path / "g.keras")
  inputs = _inputs(model)
  np.testing.assert_allclose(loaded(inputs), model(inputs), atol=1e-6)
  assert loaded.conditional and loaded.latent_dim == model.latent_dim


@pytest.mark.parametrize("kwargs, message", [
    ({"input_shape": (30, 30, 1)}, r"Invalid value for `image_shape`: height and width must be "
                                   r"divisible by 4"),
    ({"latent_dim": 0}, r"Invalid value for `latent_dim`"),
    ({"generator_filters": ()}, r"Invalid value for `filters`"),
    ({"discriminator_dropout": 1.0}, r"Invalid value for `dropout`"),
])
def test_builder_errors(kwargs, message):
  with pytest.raises(ValueError, match=message):
    gan.dcgan(**kwargs)


def _compile(model, lr=1e-3):
  model.compile(d_optimizer=keras.optimizers.Adam(lr, beta_1=0.5),
                g_optimizer=keras.optimizers.Adam(lr, beta_1=0.5))


def _fit_and_check(model, batch, steps=3):
  before_g = [w.numpy().copy() for w in model.generator.trainable_weights]
  before_d = [w.numpy().copy() for w in model.discriminator.trainable_weights]
  ds = tf.data.Dataset.from_tensor_slices(batch).batch(8).repeat(steps).take(steps)
  history = model.fit(ds, epochs=1, verbose=0)
  for key in ("d_loss", "g_loss", "d_real", "d_fake"):
    assert np.isfinite(history.history[key][-1]), key
  assert 0 < history.history["d_real"][-1] < 1
  changed = lambda before, after: any(  # noqa: E731
      not np.array_equal(b, a.numpy()) for b, a in zip(before, after))
  assert changed(before_g, model.generator.trainable_weights)
  assert changed(before_d, model.discriminator.trainable_weights)
  return history


@pytest.mark.parametrize("conditional", [False, True])
def test_train_steps_change_both_networks_with_finite_losses(conditional):
  model = gan.dcgan(conditional=conditional, generator_filters=(8, 4),
                    discriminator_filters=(4, 8), latent_dim=8)
  _compile(model)
  _fit_and_check(model, _batch(model))
  assert int(model.d_optimizer.iterations) == int(model.g_optimizer.iterations) == 3


def test_mixed_float16_scales_the_loss_of_both_optimizers():
  keras.mixed_precision.set_global_policy("mixed_float16")
  model = gan.dcgan(generator_filters=(8, 4), discriminator_filters=(4, 8), latent_dim=8)
  _compile(model)
  for opt in (model.d_optimizer, model.g_optimizer):
    assert isinstance(opt, keras.optimizers.LossScaleOptimizer)
    assert float(opt.dynamic_scale) == 2.0 ** 15  # Keras's initial dynamic scale.
  _fit_and_check(model, _batch(model))
  for opt in (model.d_optimizer, model.g_optimizer):
    assert int(opt.iterations) >= 1  # Steps were applied (and not all skipped as overflowed).
  for v in model.generator.weights + model.discriminator.weights:
    assert v.dtype == "float32"


def test_losses_are_averaged_over_the_global_batch_under_mirrored():
  """One SGD step (scale-sensitive, unlike Adam) on the same batch of 8, on one device and
  under `mirrored` over two logical CPUs (4 + 4): if each replica divides by the global
  batch, the summed gradients and so the discriminator's new weights are the same. The
  generator's last layer is zeroed, so fake images are all 0 whatever the latents (which
  differ per replica) and the discriminator's step is deterministic."""
  batch = np.random.default_rng(0).uniform(-1, 1, (8, 28, 28, 1)).astype("float32")
  weights, logs = {}, {}
  for name in ("default", "mirrored"):
    keras.utils.set_random_seed(0)
    strategy = distribute.get_strategy(name)
    with strategy.scope():
      model = gan.dcgan(generator_filters=(8, 4), discriminator_filters=(4, 8), latent_dim=8)
      model.compile(d_optimizer=keras.optimizers.SGD(0.5), g_optimizer=keras.optimizers.SGD(0.5))
    assert strategy.num_replicas_in_sync == (2 if name == "mirrored" else 1)
    if name == "default":
      initial = [w.numpy().copy() for w in model.discriminator.trainable_weights]
    last = model.generator.get_layer("to_image")
    last.set_weights([np.zeros_like(w) for w in last.get_weights()])
    history = model.fit(tf.data.Dataset.from_tensor_slices(batch).batch(8), epochs=1,
                        verbose=0)
    weights[name] = [w.numpy() for w in model.discriminator.trainable_weights]
    logs[name] = {k: v[-1] for k, v in history.history.items()}
  for a, b in zip(weights["default"], weights["mirrored"]):
    np.testing.assert_allclose(a, b, atol=1e-5)
  assert not all(np.array_equal(a, b) for a, b in zip(initial, weights["default"]))
  for key in ("d_loss", "d_real", "d_fake"):
    assert logs["mirrored"][key] == pytest.approx(logs["default"][key], abs=1e-5), key


def test_seed_latents_are_the_same_for_the_same_seed_and_differ_across_seeds():
  a = gan.seed_latents([1, 2, 3], 16).numpy()
  b = gan.seed_latents([3, 2, 1], 16).numpy()
  np.testing.assert_array_equal(a[0], b[2])
  assert not np.allclose(a[0], a[1])
  assert abs(float(np.std(gan.seed_latents(np.arange(500), 16)))) == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("strategy_name", ["default", "mirrored"])
def test_generator_weight_average_follows_training_and_is_what_samples(strategy_name):
  from zoo import callbacks
  strategy = distribute.get_strategy(strategy_name)
  with strategy.scope():
    model = gan.dcgan(generator_filters=(8, 4), discriminator_filters=(4, 8), latent_dim=8,
                      ema_momentum=0.5)
    _compile(model)
  start = [w.numpy().copy() for w in model.generator_ema.weights]
  batch = _batch(model)
  ds = tf.data.Dataset.from_tensor_slices(batch).batch(8).repeat(3)
  model.fit(ds, epochs=1, verbose=0, callbacks=[callbacks.GeneratorEMA()])
  average = [w.numpy() for w in model.generator_ema.weights]
  current = [w.numpy() for w in model.generator.weights]
  assert any(not np.array_equal(a, s) for a, s in zip(average, start))  # It moved...
  assert any(not np.allclose(a, c) for a, c in zip(average, current))  # ...behind training.
  z = _inputs(model)
  np.testing.assert_array_equal(model(z), model.generator_ema(z, training=False))
  # One more update by hand: average <- 0.5 average + 0.5 weights.
  model.update_sampler()
  for a, w, new in zip(average, current, model.generator_ema.weights):
    np.testing.assert_allclose(new.numpy(), 0.5 * a + 0.5 * w, rtol=1e-5, atol=1e-6)
