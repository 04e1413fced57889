"""Recipe `detector_mnist`: a small RetinaNet-style detector on `mnist_detection` canvases.

128x128 canvases of one to five real MNIST digits (`zoo.data.mnist_detection`); a plain
strided convnet backbone (strides 2-16), a light FPN on strides 8 and 16, shared 64-wide
class and box subnets, 2,880 anchors (16-40 px, height/width 1, 2 and 3: digits are tall).

Run card: `RUN_CARD` below (the figures the README and the docs show).
"""

from zoo.configs.base import RunCard, TrainConfig

RUN_CARD = RunCard(
    command='zoo-train --model=detector_mnist --model_dir=runs/detector --manual_dir=../shared/data/mnist',
    quality='mAP@[.5:.95] 0.928, mAP@.5 0.979 on 2,000 test canvases of MNIST digits (pycocotools)',
    train_time='~23 min (12 epochs of 100-140 s)',
    measured_in='preset:detector_mnist:3',
)


def get_config() -> TrainConfig:
  return TrainConfig(
      model="retinanet",
      task="detection",
      dataset="mnist_detection",
      batch_size=32,
      eval_batch_size=100,
      train_epochs=12,
      optimizer="adamw",
      learning_rate=2e-3,
      lr_schedule="cosine",
      warmup_epochs=0.3,
      weight_decay=1e-4,
      shuffle_buffer_examples=20_000,
      # No XLA: 5.4 vs 7.0 ms per training image on this CPU (development measurement).
      jit_compile=False,
      log_images=6,
      # A digit is one class: overlapping boxes of two classes are one digit read twice.
      task_kwargs={"class_agnostic_nms": True},
      model_kwargs={"backbone": "small", "widths": (16, 32, 64, 96), "fpn": True,
                    "fpn_width": 64, "head_width": 64, "head_depth": 2,
                    "min_level": 3, "max_level": 4},
  )
