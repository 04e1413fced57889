"""Baseline `keras_example_cnn`: the keras-io "Simple MNIST convnet" example, as published.

Conv32-Pool-Conv64-Pool-Dropout(0.5)-Dense10, Adam (lr 1e-3), batch 128, 15 epochs,
trained on the first 90 % of the training set (the example's `validation_split=0.1`),
no XLA (Keras's `jit_compile="auto"` is off on CPU-only machines). It is the yardstick
`scripts/benchmark.py` measures `mnist_cnn` against, not a recipe to use.

Run card: `RUN_CARD` below (the figures the README and the docs show).
"""

from zoo.configs.base import RunCard, TrainConfig

RUN_CARD = RunCard(
    command='zoo-train --model=keras_example_cnn --model_dir=runs/ref --manual_dir=../shared/data/mnist',
    quality='MNIST test accuracy 98.98 % after 15 epochs (one run): the keras-io baseline',
    train_time='~4 min (242 s)',
    measured_in='Recipes vs the keras-io example (foundation)',
)


def get_config() -> TrainConfig:
  return TrainConfig(
      model="keras_example_cnn",
      dataset="mnist",
      train_split="train[:90%]",
      batch_size=128,
      train_epochs=15,
      optimizer="adam",
      learning_rate=1e-3,
      lr_schedule="constant",
      augment=False,
      jit_compile=False,
  )
