"""BENCHMARKS.md, "Detector training steps by what is frozen": seconds per training step of
a detector recipe at its input size, with its backbone frozen, frozen up to each of its
levels (`freeze_backbone_to_level`), and training whole, BatchNorm frozen in every row as a
fine-tuning run keeps it. Random images and targets (the step's cost does not depend on
them), the recipe's loss and optimizer."""

from __future__ import annotations

import time

import keras
import numpy as np

from benchmarks import report
from zoo import registry, tasks, train
from zoo.configs import apply_overrides
from zoo.models import detector

WARMUP_STEPS, TIMED_STEPS = 2, 5


def _rows(model, task):
  """`(label, layers frozen)` per row: the whole backbone, up to each lower level, none."""
  levels = detector.backbone_levels(model)
  batch_norms = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
  rows = [("backbone frozen (freeze_epochs): heads and FPN train",
           task.backbone_layers_to_level(model, levels[-1]))]
  rows += [(f"freeze_backbone_to_level={level}", task.backbone_layers_to_level(model, level))
           for level in reversed(levels[:-1])]
  rows.append(("every layer trains (after freeze_epochs)", []))
  return [(label, frozen + batch_norms) for label, frozen in rows]


def step_times(name: str, overrides=()) -> dict:
  config = apply_overrides(registry.get_config(name), list(overrides)).validate()
  size = int(config.model_kwargs["image_size"])
  task = tasks.get(config.task)
  keras.backend.clear_session()
  model = registry.build_model(config, input_shape=(size, size, 3), num_classes=1)
  rng = np.random.default_rng(0)
  images = rng.random((config.batch_size, size, size, 3), dtype=np.float32)
  targets = np.zeros((config.batch_size, *model.output_shape[1:2], 5), np.float32)
  targets[..., 4] = -1.0  # Background...
  targets[:, :: 500, 4] = 0.0  # ...and a few positive anchors an image.
  measured = []
  for label, frozen in _rows(model, task):
    for layer in model.layers:
      layer.trainable = layer not in frozen
    task.compile(model, config, lambda: train.make_optimizer(config, 100), jit_compile=False)
    for _ in range(WARMUP_STEPS):
      model.train_on_batch(images, targets)
    start = time.perf_counter()
    for _ in range(TIMED_STEPS):
      model.train_on_batch(images, targets)
    measured.append({"row": label, "seconds": (time.perf_counter() - start) / TIMED_STEPS,
                     "trainable": sum(int(np.prod(w.shape)) for w in model.trainable_weights)})
  return {"recipe": name, "overrides": list(overrides), "image_size": size,
          "batch_size": config.batch_size, "backbone": config.backbone, "rows": measured}


def steptime_report(result: dict, *, command: str) -> str:
  lines = report.header(command, libraries="keras") + [
      f"`{result['recipe']}`{''.join(' --set=' + o for o in result['overrides'])}: backbone "
      f"`{result['backbone']}`, {result['image_size']} px, batches of {result['batch_size']}; "
      f"seconds per training step (mean of {TIMED_STEPS} after {WARMUP_STEPS} warm-up "
      "steps), BatchNorm frozen in every row.",
      "",
      "| what trains | trainable weights | seconds a step |",
      "|---|---|---|",
  ]
  for row in result["rows"]:
    lines.append(f"| {row['row']} | {row['trainable']:,} | {row['seconds']:.2f} |")
  return "\n".join(lines) + "\n"


def main(flags, workdir: str, command: str) -> tuple[str, str]:
  del workdir
  result = step_times(flags.step_time, flags.step_time_set)
  return flags.step_time_section, steptime_report(result, command=command)
