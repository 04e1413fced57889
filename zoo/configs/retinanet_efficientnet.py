"""Recipe `retinanet_efficientnet`: the photo detector, RetinaNet on EfficientNet-Lite0.

Its stride-8/16/32 blocks, fine-tuned from ImageNet, from a COCO-format folder
(`--dataset=coco:DIR`, Roboflow's layout: `train/` and `valid/`).

Letterboxed RGB input whose side the data decides (`image_size="auto"`: the smallest at
which the median training box is as large as the smallest anchor, 32 px; from 320 to the
photos' own size), the backbone from ImageNet (`init_from="imagenet"`,
`zoo.finetune`; `--init_from=none` for scratch), FPN on strides 8-32, RetinaNet's anchors (3
scales, aspect ratios 0.5, 1, 2), horizontal flips. The FPN and both subnets train alone
for the first `freeze_epochs` epochs, then every layer at a tenth of the rate, the
backbone's BatchNorm in inference mode throughout (`--set=freeze_backbone_to_level=3`
keeps the backbone up to its stride-8 map frozen too: a step a quarter cheaper at 512 px).
Another detector run (`--init_from=runs/x`) gives its backbone, FPN and box subnet, and its class subnet too
where the classes match. `--set=backbone=efficientnet_lite1` (`zoo.models.backbones`)
swaps the network.

  python scripts/train.py --model=retinanet_efficientnet --dataset=coco:path/to/export \
      --model_dir=runs/photos

Run card: `RUN_CARD` below (the figures the README and the docs show).
"""

from zoo.configs import retinanet_mobilenet
from zoo.configs.base import RunCard, TrainConfig

RUN_CARD = RunCard(
    command='zoo-train --model=retinanet_efficientnet --dataset=coco:DIR --model_dir=runs/boxes',
    quality='fine-tuned from ImageNet: mAP@.5 0.958, mAP@[.5:.95] 0.491 on 40 raccoon photos (160 to train); 0.773 / 0.298 from scratch',
    train_time='~8 min (30 epochs)',
    measured_in='Starting from trained weights: raccoons, fine-tuned from ImageNet',
)


def get_config() -> TrainConfig:
  # `retinanet_mobilenet`'s recipe (anchors, FPN, heads, schedule, flips) with the backbone
  # swapped and started from ImageNet.
  config = retinanet_mobilenet.get_config()
  model_kwargs = {k: v for k, v in config.model_kwargs.items()
                  if k not in ("backbone", "backbone_weights")}
  return config.replace(
      # Batches of 8: 20 steps an epoch on the 160 training photos of a small set.
      batch_size=8,
      eval_batch_size=8,
      init_from="imagenet",
      freeze_epochs=5,
      unfrozen_learning_rate_scale=0.1,
      # bn_momentum stays 0.9: it matters only from scratch (loaded BatchNorm is frozen).
      backbone="efficientnet_lite0",
      # The input side from the training boxes (zoo.models.detector.input_size_for): 320
      # for raccoons (a box is ~59 % of its photo), 512 for pears' small fruit (~6.6 %).
      model_kwargs={**model_kwargs, "image_size": "auto"},
  )
