"""Recipe `mnist_mlp`: a 2x1024 BatchNorm MLP with dropout and shift augmentation.

Run card: `RUN_CARD` below (the figures the README and the docs show).
"""

from zoo.configs.base import RunCard, TrainConfig

RUN_CARD = RunCard(
    command='zoo-train --model=mnist_mlp --model_dir=runs/mlp --manual_dir=../shared/data/mnist',
    quality='MNIST test accuracy 99.11 ± 0.06 % over seeds 0-2 (99.04-99.15 %)',
    train_time='~2 min (15 epochs of ~8 s)',
    measured_in='Accuracy over seeds (seeds)',
)


def get_config() -> TrainConfig:
  return TrainConfig(
      model="mlp",
      dataset="mnist",
      batch_size=128,
      train_epochs=15,
      optimizer="adamw",
      learning_rate=2e-3,
      lr_schedule="cosine",
      warmup_epochs=1.0,
      weight_decay=1e-4,
      augment=True,
      max_shift_pixels=2,
      model_kwargs={"hidden_units": (1024, 1024), "dropout": 0.2, "batch_norm": True},
  )
