"""Recipe `mnist_mlp`: a 2x1024 BatchNorm MLP with dropout and shift augmentation.

Run card (figures filled from BENCHMARKS.md, measured, not claimed):
  command:  python scripts/train.py --model=mnist_mlp --model_dir=runs/mlp \
                --manual_dir=../shared/data/mnist
  expected: >= 98.3 % accuracy on the MNIST test split (10,000 images).
  wall time / hardware: see BENCHMARKS.md (2-core CPU, no GPU).
"""

from zoo.configs.base import TrainConfig


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
