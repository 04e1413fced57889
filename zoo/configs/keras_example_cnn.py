"""Baseline `keras_example_cnn`: the keras-io "Simple MNIST convnet" example, as published.

Conv32-Pool-Conv64-Pool-Dropout(0.5)-Dense10, Adam (lr 1e-3), batch 128, 15 epochs,
trained on the first 90 % of the training set (the example's `validation_split=0.1`),
no XLA (Keras's `jit_compile="auto"` is off on CPU-only machines). It is the yardstick
`scripts/benchmark.py` measures `mnist_cnn` against, not a recipe to use.

Run card:
  command:  python scripts/train.py --model=keras_example_cnn --model_dir=runs/ref \
                --manual_dir=../shared/data/mnist
  expected: about 99.0-99.2 % test accuracy after 15 epochs (see BENCHMARKS.md).
"""

from zoo.configs.base import TrainConfig


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
