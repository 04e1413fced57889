"""Recipe `mnist_cnn`: a small BatchNorm convnet, cosine schedule, weight averaging, shifts.

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
      # Validate, checkpoint and export the weights averaged over ~100 steps: at the
      # high learning rates of the first epochs they are ~0.5 points more accurate.
      ema_momentum=0.99,
      augment=True,
      max_shift_pixels=2,
      # No XLA: on this CPU it made the keras-io convnet 4x slower and gave this net no
      # gain beyond the machine's noise in development runs (BENCHMARKS.md, XLA table).
      jit_compile=False,
      model_kwargs={"filters": (32, 64), "stem_kernel": 5, "stem_strides": 2,
                    "bn_momentum": 0.9, "dropout": 0.0},
  )
