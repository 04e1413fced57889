"""Baseline `tf_tutorial_dcgan`: the TensorFlow DCGAN tutorial on MNIST, as published.

tensorflow.org/tutorials/generative/dcgan: the networks in `zoo.models.gan.tf_tutorial_dcgan`,
binary cross-entropy from logits, Adam 1e-4 (default beta_1 0.9) for both networks,
batch 256, latent 100, 50 epochs, images scaled to [-1, 1]. It is the yardstick
`scripts/benchmark.py --suite=gan` measures `dcgan_mnist` against at equal wall time.

Run card: `RUN_CARD` below (the figures the README and the docs show).
"""

from zoo.configs.base import RunCard, TrainConfig

RUN_CARD = RunCard(
    command='zoo-train --model=tf_tutorial_dcgan --model_dir=runs/tutorial --manual_dir=../shared/data/mnist',
    quality='FID 200.37 after 10 minutes (dcgan_mnist: 15.14 in the same time): the TensorFlow tutorial baseline',
    train_time='10 min budget (4.5 epochs)',
    measured_in='DCGAN vs the TensorFlow tutorial (gan)',
)


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
