"""BENCHMARKS.md, "Recipes vs the keras-io example (foundation)": each recipe trained from
scratch on the real MNIST, its time to a target accuracy, the input pipeline alone, and
the training step with and without XLA. `run_recipe` also serves the seeds and precision
sections."""

from __future__ import annotations

import os
import time
from typing import Optional, Sequence

import keras
import tensorflow as tf

from benchmarks import report
from zoo import callbacks as zoo_callbacks
from zoo import data, precision, registry, tasks, train


def seconds_to_accuracy(train_seconds, val_accuracy, target) -> tuple[Optional[float], Optional[int]]:
  """Cumulative training seconds and epoch (1-based) at which `val_accuracy` first >= target."""
  total = 0.0
  for epoch, (sec, acc) in enumerate(zip(train_seconds, val_accuracy), start=1):
    total += sec
    if acc >= target:
      return total, epoch
  return None, None


def run_recipe(name: str, workdir: str, *, data_dir, manual_dir, target: float,
               train_epochs: Optional[int] = None, mixed_precision: Optional[str] = None,
               seed: Optional[int] = None, deterministic: bool = False) -> dict:
  """Trains recipe `name` from scratch in `workdir`; returns its timing and accuracy row.

  `deterministic=True` turns TensorFlow op determinism on for the rest of the process
  (it cannot be turned off): run such rows last.
  """
  config = registry.get_config(name)
  label = name
  if seed is not None:
    config = config.replace(seed=seed)
    label += f" --seed={seed}"
  if deterministic:
    config = config.replace(deterministic=True)
    label += " --deterministic"
  if train_epochs is not None:
    config = config.replace(train_epochs=train_epochs, min_train_steps=0)  # As --epochs.
    label += f" --epochs={train_epochs}"
  if mixed_precision is not None:
    config = config.replace(mixed_precision=mixed_precision)
    label += f" --mixed_precision={mixed_precision}"
  recorder = zoo_callbacks.EpochLogs(("val_accuracy",))
  keras.backend.clear_session()
  run_dir = report.fresh_run_dir(workdir, label.replace(" --", "_").replace("=", "_"))
  metrics = train.train_and_evaluate(config, run_dir, data_dir=data_dir,
                                     manual_dir=manual_dir, extra_callbacks=[recorder])
  precision.set_policy("float32")  # Leave the process as it was for the next run.
  to_target, epoch = seconds_to_accuracy(recorder.train_seconds, recorder.values["val_accuracy"], target)
  return {
      "recipe": name,
      "label": label,
      "seed": config.seed,
      "deterministic": config.deterministic,
      "mixed_precision": config.mixed_precision,
      "jit_compile": config.jit_compile,
      "epochs": config.train_epochs,
      "final_accuracy": metrics["accuracy"],
      "best_accuracy": max(recorder.values["val_accuracy"]),
      "train_seconds": sum(recorder.train_seconds),
      "seconds_to_target": to_target,
      "epoch_to_target": epoch,
      "per_epoch_accuracy": recorder.values["val_accuracy"],
      "per_epoch_seconds": recorder.train_seconds,
      "images_per_second": _train_images_per_second(config, recorder, data_dir),
  }


def _train_images_per_second(config, recorder, data_dir) -> float:
  builder = data.prepare_builder(config.dataset, data_dir=data_dir)
  n = data.num_examples(builder, config.train_split)
  images = (n // config.batch_size) * config.batch_size
  # The first epoch includes tracing/XLA compilation and filling the cache.
  steady = recorder.train_seconds[1:] or recorder.train_seconds
  return images / (sum(steady) / len(steady))


def pipeline_images_per_second(name: str, *, data_dir, epochs: int = 3) -> list[float]:
  """Images/s of the recipe's training input pipeline alone, one figure per epoch."""
  config = registry.get_config(name)
  builder = data.prepare_builder(config.dataset, data_dir=data_dir)
  ds, _ = tasks.get(config.task).datasets(builder, config)
  rates = []
  for _ in range(epochs):
    start, n = time.perf_counter(), 0
    for batch in ds:
      n += int(tf.nest.flatten(batch)[0].shape[0])
    rates.append(n / (time.perf_counter() - start))
  return rates


def train_step_images_per_second(name: str, *, data_dir,
                                 policies: Sequence[str] = ("float32",),
                                 min_seconds: float = 8.0,
                                 min_steps: int = 10) -> dict[str, dict[str, float]]:
  """Training images/s of the recipe's model on one real batch, repeated (no input
  pipeline), under each of `policies` (`float32`, `bfloat16`, `float16`), without and with
  XLA: `{policy: {"no_xla": images/s, "xla": images/s}}`. Each measurement runs until both
  `min_seconds` and `min_steps` are reached, after 3 untimed steps (tracing, compiling).
  """
  config = registry.get_config(name)
  builder = data.prepare_builder(config.dataset, data_dir=data_dir)
  info = data.dataset_info(builder)
  task = tasks.get(config.task)
  batch = next(iter(task.datasets(builder, config)[0]))
  batch = batch if isinstance(batch, tuple) else (batch,)
  rates = {}
  try:
    for policy in policies:
      for jit_compile in (False, True):
        keras.backend.clear_session()
        precision.set_policy(policy)
        model = registry.build_model(config, input_shape=info.image_shape,
                                     num_classes=info.num_classes)
        # Compiled as training compiles it, by the recipe's task.
        task.compile(model, config, lambda: train.make_optimizer(config, 100), jit_compile)
        for _ in range(3):
          model.train_on_batch(*batch)
        steps, start = 0, time.perf_counter()
        while steps < min_steps or time.perf_counter() - start < min_seconds:
          model.train_on_batch(*batch)
          steps += 1
        rate = steps * config.batch_size / (time.perf_counter() - start)
        rates.setdefault(policy, {})["xla" if jit_compile else "no_xla"] = rate
  finally:
    precision.set_policy("float32")
  return rates


def foundation_report(rows: list[dict], pipeline: dict, xla: dict, *, command: str,
                      target: float, reference: str, contender: str) -> str:
  """The markdown section for BENCHMARKS.md. `reference`/`contender` are row labels."""
  ref = next(r for r in rows if r["label"] == reference)
  con = next(r for r in rows if r["label"] == contender)
  lines = report.header(command, libraries="keras tensorflow-datasets") + [
      "Data: the real MNIST files in `../shared/data/mnist`; accuracy is on the 10,000-image "
      "test split after every epoch; seconds are training time only (validation excluded), "
      "all recipes in one process, one after the other.",
      "",
      "| recipe | epochs | final test acc | best test acc | train time | "
      f"time to {100 * target:.1f} % (epoch) | train images/s |",
      "|---|---|---|---|---|---|---|",
  ]
  for r in rows:
    reach = report.sec(r["seconds_to_target"])
    if r["epoch_to_target"]:
      reach += f" ({r['epoch_to_target']})"
    lines.append(f"| `{r['label']}` | {r['epochs']} | {report.pct(r['final_accuracy'])} | "
                 f"{report.pct(r['best_accuracy'])} | {r['train_seconds']:.1f} s | {reach} | "
                 f"{r['images_per_second']:.0f} |")
  if ref["seconds_to_target"] and con["seconds_to_target"]:
    ratio = con["seconds_to_target"] / ref["seconds_to_target"]
    lines += ["", f"`{contender}` reaches {100 * target:.1f} % in {ratio:.2f}x the training "
              f"time of `{reference}` (target: at most 0.33x)."]
  lines += ["", "Input pipeline alone vs training loop (images/s, steady state = after the "
            "first epoch, which reads and decodes the TFDS files and fills the cache):", "",
            "| recipe | pipeline alone, epoch 1 | pipeline alone, steady | training loop, steady |",
            "|---|---|---|---|"]
  for name, rates in pipeline.items():
    row = next(r for r in rows if r["label"] == name)
    steady = rates[1:] or rates
    lines.append(f"| `{name}` | {rates[0]:.0f} | {sum(steady) / len(steady):.0f} | "
                 f"{row['images_per_second']:.0f} |")
  lines += ["", "XLA (`jit_compile`) on this CPU: training images/s of each recipe's model on "
            "one real batch, repeated (no input pipeline):", "",
            "| recipe | no XLA | XLA |", "|---|---|---|"]
  for name, rates in xla.items():
    lines.append(f"| `{name}` | {rates['no_xla']:.0f} | {rates['xla']:.0f} |")
  lines += ["", "Per-epoch test accuracy:", ""]
  for r in rows:
    lines.append(f"- `{r['label']}`: " + ", ".join(f"{100 * a:.2f}" for a in r["per_epoch_accuracy"]))
  return "\n".join(lines) + "\n"


def main(flags, workdir: str, command: str) -> tuple[str, str]:
  rows = [run_recipe(name, workdir, data_dir=flags.data_dir, manual_dir=flags.manual_dir,
                     target=flags.target_accuracy)
          for name in flags.recipes]
  contender = flags.contender
  if flags.contender_epochs:
    rows.append(run_recipe(
        flags.contender, os.path.join(workdir, "budget"), data_dir=flags.data_dir,
        manual_dir=flags.manual_dir, target=flags.target_accuracy,
        train_epochs=flags.contender_epochs))
    contender = rows[-1]["label"]
  pipeline = {name: pipeline_images_per_second(name, data_dir=flags.data_dir)
              for name in flags.recipes}
  xla = {name: train_step_images_per_second(name, data_dir=flags.data_dir)["float32"]
         for name in flags.recipes}
  report.save_json(workdir, "benchmark.json", {"rows": rows, "pipeline": pipeline, "xla": xla})
  body = foundation_report(rows, pipeline, xla, command=command,
                           target=flags.target_accuracy, reference="keras_example_cnn",
                           contender=contender)
  return "Recipes vs the keras-io example (foundation)", body
