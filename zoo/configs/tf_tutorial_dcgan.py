"""Baseline `tf_tutorial_dcgan`: the TensorFlow DCGAN tutorial on MNIST, as published.

tensorflow.org/tutorials/generative/dcgan: the networks in `zoo.models.gan.tf_tutorial_dcgan`,
binary cross-entropy from logits, Adam 1e-4 (default beta_1 0.9) for both networks,
batch 256, latent 100, 50 epochs, images scaled to [-1, 1]. It is the yardstick
`scripts/benchmark.py --suite=gan` measures `dcgan_mnist` against at equal wall time.
"""

from zoo.configs.base import TrainConfig


def get_config() -> TrainConfig:
  return TrainConfig(
      model="tf_tutorial_dcgan",
      task="generation",
      dataset="mnist",
      batch_size=256,
      train_epochs=50,
      optimizer="adam",
      learning_rate=1e-4,
      lr_schedule="constant",
      augment=False,
      jit_compile=False,  # As published (Keras does not use XLA on CPU by default).
  )
