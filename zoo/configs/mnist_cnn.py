"""Recipe `mnist_cnn`: a small BatchNorm convnet, cosine schedule, shift augmentation.

Run card (figures filled from BENCHMARKS.md, measured, not claimed):
  command:  python scripts/train.py --model=mnist_cnn --model_dir=runs/cnn \
                --manual_dir=../shared/data/mnist
  expected: >= 99.4 % accuracy on the MNIST test split (10,000 images), and 99.0 % in at
            most a third of the wall time the keras-io example convnet needs.
  wall time / hardware: see BENCHMARKS.md (2-core CPU, no GPU).
"""

from zoo.configs.base import TrainConfig


def get_config() -> TrainConfig:
  return TrainConfig(
      model="cnn",
      dataset="mnist",
      batch_size=128,
      train_epochs=12,
      optimizer="adamw",
      learning_rate=3e-3,
      lr_schedule="cosine",
      warmup_epochs=0.5,
      weight_decay=1e-4,
      augment=True,
      max_shift_pixels=2,
      # XLA makes convolutions 2-3x slower on CPU here (see BENCHMARKS.md).
      jit_compile=False,
      model_kwargs={"filters": (32, 64), "dropout": 0.0},
  )
