"""Recipe `retinanet_efficientnet`: the photo detector. RetinaNet on EfficientNet-Lite0's
stride-8/16/32 blocks, fine-tuned from ImageNet, from a COCO-format folder
(`--dataset=coco:DIR`, Roboflow's layout: `train/` and `valid/`).

320x320 letterboxed RGB input, the backbone from ImageNet (`init_from="imagenet"`,
`zoo.finetune`; `--init_from=none` for scratch), FPN on strides 8-32, RetinaNet's anchors (3
scales, aspect ratios 0.5, 1, 2), horizontal flips. The FPN and both subnets train alone
for the first `freeze_epochs` epochs, then every layer at a tenth of the rate, the
backbone's BatchNorm in inference mode throughout. Another detector run
(`--init_from=runs/x`) gives its backbone, FPN and box subnet, and its class subnet too
where the classes match.

  python scripts/train.py --model=retinanet_efficientnet --dataset=coco:path/to/export \
      --model_dir=runs/photos

Run card (BENCHMARKS.md, "Starting from trained weights"): measured there on
../shared/data/raccoon (160 training photos, 40 validation), beside --init_from=none.
"""

from zoo.configs.base import TrainConfig


def get_config() -> TrainConfig:
  return TrainConfig(
      model="retinanet",
      task="detection",
      # A folder the user names: without --dataset this fails at once saying so.
      dataset="coco:data/coco",
      train_split="train",
      eval_split="valid",
      batch_size=8,
      eval_batch_size=8,
      train_epochs=30,
      optimizer="adamw",
      learning_rate=1e-3,
      lr_schedule="cosine",
      warmup_epochs=1.0,
      weight_decay=1e-4,
      shuffle_buffer_examples=2_000,
      jit_compile=False,
      log_images=6,
      init_from="imagenet",
      freeze_epochs=5,
      unfrozen_learning_rate_scale=0.1,
      model_kwargs={"backbone": "efficientnet_lite0", "image_size": 320,
                    # Only from scratch does it matter (loaded BatchNorm layers are frozen):
                    # see image_classifier.
                    "bn_momentum": 0.9,
                    "fpn": True, "fpn_width": 64, "head_width": 64, "head_depth": 2,
                    "min_level": 3, "max_level": 5, "anchor_size_in_strides": 4.0,
                    "aspect_ratios": (0.5, 1.0, 2.0)},
      task_kwargs={"flip": True, "map_images": 200},
  )
