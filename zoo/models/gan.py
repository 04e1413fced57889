"""DCGAN builders for MNIST-sized images and the `GAN` model that trains them with `fit()`.

`dcgan(...)` returns a `GAN`: a `keras.Model` holding a generator and a discriminator, with
its own `train_step` (one discriminator step, then one generator step, per batch) so that
`fit()`, callbacks, `BackupAndRestore`, strategies and loss scaling all work unchanged.
Calling the GAN maps latent vectors (and labels, when conditional) to images in [-1, 1].

Precision: the generator's tanh, the discriminator's logits and every loss are float32
under any policy; both optimizers go through `zoo.precision.loss_scaled`.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from zoo import errors, precision
from zoo.models import common


def dcgan_generator(*, latent_dim=64, image_shape=(28, 28, 1), num_classes=0, filters=(128, 64),
                    kernel_size=4, label_dim=32, name="generator"):
  """Latent vector (and label) -> image in [-1, 1].

  Dense -> reshape to (H/2^k, W/2^k, filters[0]) -> BN-ReLU -> for each later entry of
  `filters` a stride-2 Conv2DTranspose-BN-ReLU -> a last stride-2 Conv2DTranspose to the
  image's channels with tanh (float32). Convolutions before BatchNorm have no bias.

  Args:
    latent_dim: size of the latent vector.
    image_shape: (height, width, channels); height and width divisible by 2^len(filters).
    num_classes: > 0 makes it class-conditional: a second input `label` (int) whose
      embedding is concatenated to the latent vector.
    filters: channels of the reshaped Dense output and of each upsampling block.
    kernel_size: kernel of the transposed convolutions.
    label_dim: size of the label embedding (conditional only).
  """
  common.check_positive_ints("filters", filters)
  _check_gan_args(latent_dim, image_shape, num_classes)
  height, width, channels = image_shape
  scale = 2 ** len(filters)
  if height % scale or width % scale:
    raise errors.InvalidValueError(
        f"Invalid value for `image_shape`: height and width must be divisible by "
        f"{scale} (2 ** len(filters)). Received: image_shape={image_shape!r}")
  latent = keras.Input(shape=(latent_dim,), name="latent")
  inputs, x = [latent], latent
  if num_classes:
    label = keras.Input(shape=(), dtype="int32", name="label")
    inputs.append(label)
    x = keras.layers.Concatenate()(
        [x, keras.layers.Embedding(num_classes, label_dim, name="label_embedding")(label)])
  h, w = height // scale, width // scale
  x = keras.layers.Dense(h * w * filters[0], use_bias=False, name="project")(x)
  x = keras.layers.Reshape((h, w, filters[0]))(x)
  x = keras.layers.BatchNormalization(name="bn_project")(x)
  x = keras.layers.ReLU()(x)
  for i, f in enumerate(filters[1:]):
    x = keras.layers.Conv2DTranspose(f, kernel_size, strides=2, padding="same", use_bias=False,
                                     name=f"up_{i}")(x)
    x = keras.layers.BatchNormalization(name=f"bn_up_{i}")(x)
    x = keras.layers.ReLU()(x)
  x = keras.layers.Conv2DTranspose(channels, kernel_size, strides=2, padding="same",
                                   name="to_image")(x)
  images = keras.layers.Activation("tanh", dtype="float32", name="images")(x)
  return keras.Model(inputs, images, name=name)


def dcgan_discriminator(*, image_shape=(28, 28, 1), num_classes=0, filters=(64, 128),
                        kernel_size=4, dropout=0.0, leaky_slope=0.2, name="discriminator"):
  """Image (and label) -> one real/fake logit (float32).

  Stride-2 convolutions with LeakyReLU(0.2), no pooling and no BatchNorm (the
  discriminator sees real and fake batches separately), then a Dense logit. Conditional:
  a projection discriminator (Miyato & Koyama, 2018): logit = dense(h) + <embed(label), h>.

  Args:
    image_shape: (height, width, channels), pixels in [-1, 1].
    num_classes: > 0 makes it class-conditional (second input `label`).
    filters: channels of each stride-2 convolution.
    kernel_size: kernel of the convolutions.
    dropout: dropout rate after each convolution (the TensorFlow tutorial uses 0.3).
    leaky_slope: LeakyReLU's negative slope (DCGAN paper 0.2; Keras's default 0.3).
  """
  common.check_positive_ints("filters", filters)
  common.check_rate("dropout", dropout)
  _check_gan_args(1, image_shape, num_classes)
  image = keras.Input(shape=tuple(image_shape), name="image")
  inputs, x = [image], image
  for i, f in enumerate(filters):
    x = keras.layers.Conv2D(f, kernel_size, strides=2, padding="same", name=f"conv_{i}")(x)
    x = keras.layers.LeakyReLU(leaky_slope)(x)
    if dropout:
      x = keras.layers.Dropout(dropout)(x)
  h = keras.layers.Flatten()(x)
  h = keras.layers.Activation("linear", dtype="float32", name="features")(h)
  logit = keras.layers.Dense(1, dtype="float32", name="logit")(h)
  if num_classes:
    label = keras.Input(shape=(), dtype="int32", name="label")
    inputs.append(label)
    embedded = keras.layers.Embedding(num_classes, h.shape[-1], dtype="float32",
                                      name="label_projection")(label)
    projection = keras.layers.Dot(axes=1, dtype="float32")([embedded, h])
    logit = keras.layers.Add(dtype="float32", name="conditional_logit")([logit, projection])
  return keras.Model(inputs, logit, name=name)


def _check_gan_args(latent_dim, image_shape, num_classes):
  common.check_positive_ints("latent_dim", (latent_dim,))
  common.check_image_shape(image_shape, "image_shape")
  if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
    raise errors.InvalidValueError("Invalid value for `num_classes`: expected an integer >= 0 (0 = "
                                   f"unconditional). Received: num_classes={num_classes!r}")


def seed_latents(seeds, latent_dim: int) -> tf.Tensor:
  """One standard-normal latent vector per int seed: float32 [N, latent_dim].

  A stateless draw (`tf.random.stateless_normal`, seed `[seed, 0]`): the same seed gives
  the same vector on every call, in Python and inside the exported `generate` signature.
  """
  seeds = tf.cast(tf.convert_to_tensor(seeds), tf.int64)
  return tf.map_fn(
      lambda s: tf.random.stateless_normal([latent_dim], seed=tf.stack([s, 0])), seeds,
      fn_output_signature=tf.TensorSpec([latent_dim], tf.float32))


def to_uint8(images: tf.Tensor) -> tf.Tensor:
  """Generator output in [-1, 1] -> uint8 pixels 0-255 (the dataset's encoding)."""
  x = (tf.cast(images, tf.float32) + 1.0) * 127.5
  return tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8)


@keras.saving.register_keras_serializable(package="zoo")
class GAN(keras.Model):
  """A generator and a discriminator trained together by `fit()` (non-saturating loss).

  `fit()` data: batches of images in [-1, 1] (unconditional) or `(images, labels)`
  (conditional). Each `train_step` draws latents, takes one discriminator step on the
  real and generated batch, then one generator step on a new latent batch. Logged:
  `d_loss`, `g_loss`, `d_real` (mean D(x) as a probability) and `d_fake` (mean D(G(z))).

  Losses are per-example binary cross-entropies from logits in float32, averaged over the
  *global* batch (`tf.nn.compute_average_loss`): under Mirrored/MultiWorkerMirrored each
  replica's gradients are summed, so each replica divides by the global batch size.
  """

  def __init__(self, generator: keras.Model, discriminator: keras.Model, *,
               latent_dim: int, num_classes: int = 0, ema_momentum: float = 0.0, **kwargs):
    super().__init__(**kwargs)
    self.generator = generator
    self.discriminator = discriminator
    self.ema_momentum = float(ema_momentum)
    # With `ema_momentum`, a copy of the generator whose weights are the exponential moving
    # average of the trained ones (updated by `update_sampler`, e.g. from
    # `zoo.callbacks.GeneratorEMA`); it is what `call()`, evaluation and export use.
    self.generator_ema = None
    if self.ema_momentum:
      self.generator_ema = keras.models.clone_model(generator)
      self.generator_ema.set_weights(generator.get_weights())
    self.latent_dim = int(latent_dim)
    self.num_classes = int(num_classes)
    # Seeded from Keras's global seed (`keras.utils.set_random_seed(config.seed)`); its
    # state is a variable, so a resumed run continues the same stream of latents.
    self.seed_generator = keras.random.SeedGenerator()
    self.trackers = {name: keras.metrics.Mean(name=name)
                     for name in ("d_loss", "g_loss", "d_real", "d_fake")}
    self.built = True  # Both networks are built functional models.

  @property
  def conditional(self) -> bool:
    return self.num_classes > 0

  @property
  def sampler(self) -> keras.Model:
    """The generator to sample from: the weight average if kept, else the generator."""
    return self.generator_ema if self.generator_ema is not None else self.generator

  def update_sampler(self) -> None:
    """One EMA step of the sampler's weights (all of them, BatchNorm statistics too) towards
    the generator's. Call it in cross-replica context (a callback), after a train step."""
    if not hasattr(self, "_ema_step"):  # One graph call per step, not 3 eager ops per weight.
      m = self.ema_momentum

      @tf.function
      def ema_step():
        for average, weight in zip(self.generator_ema.weights, self.generator.weights):
          average.assign(m * average + (1.0 - m) * tf.cast(weight, average.dtype))

      self._ema_step = ema_step
    self._ema_step()

  def call(self, inputs, training=False):
    """latent [N, D] (or (latent, labels)) -> images in [-1, 1], float32, from `sampler`."""
    return self.sampler(inputs, training=False)

  def compile(self, d_optimizer, g_optimizer, **kwargs):
    """Both optimizers are wrapped for loss scaling under mixed_float16 and built here,
    inside the strategy scope (a LossScaleOptimizer built lazily in a distributed step
    fails under MirroredStrategy); built optimizers are also what `BackupAndRestore`
    needs to restore their state on resume. No model-level optimizer (Keras's default
    would be an unused RMSprop, built on every variable by `fit` and warned about at each
    resume: "Skipping variable loading for optimizer 'rm_sprop'")."""
    super().compile(optimizer=None, **kwargs)
    self.d_optimizer = precision.loss_scaled(d_optimizer)
    self.g_optimizer = precision.loss_scaled(g_optimizer)
    self.d_optimizer.build(self.discriminator.trainable_variables)
    self.g_optimizer.build(self.generator.trainable_variables)

  @property
  def metrics(self):
    return list(self.trackers.values())

  def _split(self, data):
    if self.conditional:
      images, labels = data[0], tf.cast(data[1], "int32")
      return images, labels
    if isinstance(data, (tuple, list)):
      data = data[0]
    return data, None

  def _with_label(self, x, labels):
    return [x, labels] if self.conditional else x

  def _latent(self, batch):
    return keras.random.normal((batch, self.latent_dim), seed=self.seed_generator)

  def train_step(self, data):
    real, labels = self._split(data)
    batch = tf.shape(real)[0]
    bce = lambda target, logits: tf.nn.sigmoid_cross_entropy_with_logits(  # noqa: E731
        labels=tf.fill(tf.shape(logits), target), logits=logits)[:, 0]

    fake = self.generator(self._with_label(self._latent(batch), labels), training=True)
    with tf.GradientTape() as tape:
      real_logits = self.discriminator(self._with_label(real, labels), training=True)
      fake_logits = self.discriminator(self._with_label(fake, labels), training=True)
      per_example = bce(1.0, real_logits) + bce(0.0, fake_logits)
      d_loss = tf.nn.compute_average_loss(per_example)
      scaled = self.d_optimizer.scale_loss(d_loss)
    d_vars = self.discriminator.trainable_variables
    self.d_optimizer.apply(tape.gradient(scaled, d_vars), d_vars)

    latent = self._latent(batch)
    with tf.GradientTape() as tape:
      fake = self.generator(self._with_label(latent, labels), training=True)
      logits = self.discriminator(self._with_label(fake, labels), training=True)
      g_loss = tf.nn.compute_average_loss(bce(1.0, logits))
      scaled = self.g_optimizer.scale_loss(g_loss)
    g_vars = self.generator.trainable_variables
    self.g_optimizer.apply(tape.gradient(scaled, g_vars), g_vars)

    # The trackers average per replica and sum over replicas when read; feed them the
    # replica's own mean (compute_average_loss divided by the number of replicas).
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    self.trackers["d_loss"].update_state(d_loss * replicas)
    self.trackers["g_loss"].update_state(g_loss * replicas)
    self.trackers["d_real"].update_state(tf.reduce_mean(tf.sigmoid(real_logits)))
    self.trackers["d_fake"].update_state(tf.reduce_mean(tf.sigmoid(fake_logits)))
    return {name: t.result() for name, t in self.trackers.items()}

  def test_step(self, data):  # `evaluate()` reports the current losses without training.
    real, labels = self._split(data)
    latent = self._latent(tf.shape(real)[0])
    fake = self.sampler(self._with_label(latent, labels), training=False)
    real_logits = self.discriminator(self._with_label(real, labels), training=False)
    fake_logits = self.discriminator(self._with_label(fake, labels), training=False)
    ones, zeros = tf.ones_like(real_logits), tf.zeros_like(fake_logits)
    d_loss = (tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(ones, real_logits))
              + tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(zeros, fake_logits)))
    g_loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(ones, fake_logits))
    self.trackers["d_loss"].update_state(d_loss)
    self.trackers["g_loss"].update_state(g_loss)
    self.trackers["d_real"].update_state(tf.reduce_mean(tf.sigmoid(real_logits)))
    self.trackers["d_fake"].update_state(tf.reduce_mean(tf.sigmoid(fake_logits)))
    return {name: t.result() for name, t in self.trackers.items()}

  def get_compile_config(self):
    # Optimizers are not restored from a .keras file: evaluation and export only sample,
    # and training rebuilds them from its config (BackupAndRestore restores their state).
    return None

  def get_config(self):
    return {"generator": keras.saving.serialize_keras_object(self.generator),
            "discriminator": keras.saving.serialize_keras_object(self.discriminator),
            "latent_dim": self.latent_dim, "num_classes": self.num_classes,
            "ema_momentum": self.ema_momentum, "name": self.name}

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    for key in ("generator", "discriminator"):
      config[key] = keras.saving.deserialize_keras_object(config[key])
    return cls(**config)


def dcgan(*, input_shape=(28, 28, 1), num_classes=10, name="dcgan", conditional=False,
          latent_dim=64, generator_filters=(128, 64), discriminator_filters=(64, 128),
          kernel_size=4, discriminator_dropout=0.0, label_dim=32, ema_momentum=0.0):
  """A DCGAN (`conditional=True`: a class-conditional one) for images of `input_shape`.

  Args:
    input_shape: (height, width, channels) of the dataset's images.
    num_classes: the dataset's classes (used only when `conditional`).
    conditional: generate a requested class: the generator and discriminator take labels.
    latent_dim: size of the latent vector.
    generator_filters: the generator's `filters` (see `dcgan_generator`).
    discriminator_filters: the discriminator's `filters` (see `dcgan_discriminator`).
    kernel_size: both networks' convolution kernel side, pixels.
    discriminator_dropout: the discriminator's `dropout`.
    label_dim: the conditional generator's label embedding size.
    ema_momentum: > 0 keeps an exponential moving average of the generator's weights
      with this momentum per step (updated by `zoo.callbacks.GeneratorEMA`), and samples,
      evaluates and exports it; 0.999 averages over roughly the last 1,000 steps.

  Returns:
    A `GAN`; compile it with `compile(d_optimizer=..., g_optimizer=...)`.
  """
  classes = num_classes if conditional else 0
  generator = dcgan_generator(latent_dim=latent_dim, image_shape=tuple(input_shape),
                              num_classes=classes, filters=tuple(generator_filters),
                              kernel_size=kernel_size, label_dim=label_dim)
  discriminator = dcgan_discriminator(image_shape=tuple(input_shape), num_classes=classes,
                                      filters=tuple(discriminator_filters),
                                      kernel_size=kernel_size, dropout=discriminator_dropout)
  common.check_rate("ema_momentum", ema_momentum)
  return GAN(generator, discriminator, latent_dim=latent_dim, num_classes=classes,
             ema_momentum=ema_momentum, name=name)


def tf_tutorial_dcgan(*, input_shape=(28, 28, 1), num_classes=10, name="tf_tutorial_dcgan"):
  """The DCGAN of the TensorFlow tutorial (tensorflow.org/tutorials/generative/dcgan), as
  published: the reference `scripts/benchmark.py --gan` measures `dcgan_mnist` against.

  Generator Dense(7*7*256, no bias)-BN-LeakyReLU-reshape-Conv2DT(128,5,1)-BN-LReLU-
  Conv2DT(64,5,2)-BN-LReLU-Conv2DT(1,5,2,tanh), no biases; discriminator
  Conv(64,5,2)-LReLU-Dropout(0.3)-Conv(128,5,2)-LReLU-Dropout(0.3)-Flatten-Dense(1).
  """
  del num_classes  # Unconditional.
  if tuple(input_shape) != (28, 28, 1):
    raise errors.InvalidValueError(
        "Invalid value for `input_shape`: the tutorial's DCGAN makes 28x28x1 "
        f"images. Received: input_shape={input_shape!r}")
  latent = keras.Input(shape=(100,), name="latent")
  x = keras.layers.Dense(7 * 7 * 256, use_bias=False)(latent)
  x = keras.layers.BatchNormalization()(x)
  x = keras.layers.LeakyReLU()(x)
  x = keras.layers.Reshape((7, 7, 256))(x)
  for f, s in ((128, 1), (64, 2)):
    x = keras.layers.Conv2DTranspose(f, 5, strides=s, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.LeakyReLU()(x)
  x = keras.layers.Conv2DTranspose(1, 5, strides=2, padding="same", use_bias=False)(x)
  images = keras.layers.Activation("tanh", dtype="float32", name="images")(x)
  generator = keras.Model(latent, images, name="generator")
  discriminator = dcgan_discriminator(image_shape=(28, 28, 1), filters=(64, 128),
                                      kernel_size=5, dropout=0.3, leaky_slope=0.3)
  return GAN(generator, discriminator, latent_dim=100, name=name)
