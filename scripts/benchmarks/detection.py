"""BENCHMARKS.md, "Detection (detection)": a detector recipe trained (from where its recipe
starts: from scratch, or fine-tuned from ImageNet), its COCO mAP (pycocotools) and
training time, and every exported file's mAP and one-image latency."""

from __future__ import annotations

import os
import time
from typing import Sequence

import keras

from benchmarks import report
from zoo import callbacks as zoo_callbacks
from zoo import data, evaluate, export, loading, registry, runtime, tasks, train
from zoo.configs import apply_overrides
from zoo.data import detection_input


def detection_benchmark(name: str, workdir: str, *, data_dir, manual_dir,
                        overrides: Sequence[str] = (), report_split: str = "",
                        runs: int = 200) -> dict:
  """Trains detector recipe `name` (with `--set`-style `overrides`), exports it
  (SavedModel + TFLite, parity checked by the export) and times one-image detection through
  `zoo.load` for every file. With `report_split` (e.g. `test`), the trained run is also
  scored once on that split: the recipe's own `eval_split` is where choices are made, the
  report split is read only here."""
  config = apply_overrides(registry.get_config(name), list(overrides)).validate()
  run_dir = report.fresh_run_dir(workdir, name)
  recorder = zoo_callbacks.EpochLogs(("val_map", "val_map_50"))
  keras.backend.clear_session()
  start = time.perf_counter()
  metrics = train.train_and_evaluate(config, run_dir, data_dir=data_dir,
                                     manual_dir=manual_dir, extra_callbacks=[recorder])
  wall = time.perf_counter() - start
  reported = None
  if report_split and report_split != config.eval_split:
    scored = evaluate.evaluate_run(run_dir, split=report_split, data_dir=data_dir,
                                   manual_dir=manual_dir)
    reported = {k: scored[k] for k in ("split", "map", "map_50", "map_75", "num_images",
                                       "num_objects")}
  path = export.export_run(run_dir, export_dir=os.path.join(workdir, "exports"),
                           data_dir=data_dir, manual_dir=manual_dir)
  card = runtime.read_card(path)
  builder = data.prepare_builder(config.dataset, data_dir=data_dir)
  one = detection_input.ground_truth(builder, config.eval_split, limit=1)[0]["image"][None]
  latency = {}
  for key, entry in card["files"].items():
    front = loading.load(path if key == "saved_model" else os.path.join(path, entry["path"]))
    latency[key] = report.median_ms(lambda: front.detect(one), runs)
  return {"recipe": name, "overrides": list(overrides), "dataset": config.dataset,
          "init_from": config.init_from,
          "train_split": config.train_split, "eval_split": config.eval_split,
          "epochs": config.train_epochs, "batch_size": config.batch_size,
          "train_seconds": sum(recorder.train_seconds), "wall_seconds": wall,
          "per_epoch": {"seconds": recorder.train_seconds, **recorder.values},
          "metrics": {k: metrics[k] for k in ("map", "map_50", "map_75", "per_class_ap",
                                              "num_images", "num_objects")},
          "reported": reported,
          "export": path, "files": {k: v.get("bytes") for k, v in card["files"].items()},
          "parity": card["parity"], "checks": card["checks"], "latency_ms": latency,
          "image_shape": list(one.shape[1:]),
          "train_images": data.num_examples(builder, config.train_split),
          "map_images": tasks.get(config.task).knobs(config)["map_images"]}


def detection_report(row: dict, *, command: str) -> str:
  """The detection section of BENCHMARKS.md."""
  m = row["metrics"]
  lines = report.header(command, libraries="keras tensorflow-datasets") + [
      f"`{row['recipe']}`{''.join(' --set=' + o for o in row['overrides'])} (start: "
      f"`init_from={row.get('init_from', 'none')}`): "
      f"{row['epochs']} epochs of batches of {row['batch_size']} on the {row['train_images']:,} "
      f"images of `{row['dataset']}` split `{row['train_split']}`, scored with pycocotools on "
      f"the {m['num_images']:,} images ({m['num_objects']:,} objects) of split "
      f"`{row['eval_split']}`.",
      "",
      f"- training time: {row['train_seconds'] / 60:.1f} min (validation excluded); whole "
      f"run with per-epoch validation, mAP and final evaluation: {row['wall_seconds'] / 60:.1f} "
      "min",
      f"- mAP@[.5:.95] **{m['map']:.4f}**, mAP@.5 **{m['map_50']:.4f}**, mAP@.75 "
      f"{m['map_75']:.4f}" + (f" on `{row['eval_split']}` (where choices are made)"
                              if row.get("reported") else ""),
  ]
  if row.get("reported"):
    r = row["reported"]
    lines.append(
        f"- reported split `{r['split']}` ({r['num_images']:,} images, {r['num_objects']:,} "
        f"objects), read once after training: mAP@[.5:.95] **{r['map']:.4f}**, mAP@.5 "
        f"**{r['map_50']:.4f}**, mAP@.75 {r['map_75']:.4f}")
  lines += [
      "- AP@[.5:.95] per class: " + ", ".join(
          f"{k}: {'n/a' if v is None else f'{v:.3f}'}" for k, v in m["per_class_ap"].items()),
      "",
      "Exported files (decoding and NMS inside each; mAP of each file on the same "
      f"`{row['eval_split']}` images through `zoo.load(...).detect`; latency: median of "
      f"200 one-image calls on a {row['image_shape'][0]}x{row['image_shape'][1]} image after "
      "10 warm-up calls):",
      "",
      "| file | size | mAP@[.5:.95] | mAP@.5 | mAP@.5 gap to Keras | latency, 1 image (median) |",
      "|---|---|---|---|---|---|",
  ]
  for key, parity in row["parity"].items():
    size = row["files"].get(key)
    lines.append(f"| {key} | {f'{size / 1e6:.2f} MB' if size else ''} | {parity['map']:.4f} | "
                 f"{parity['map_50']:.4f} | {parity['map_50_gap']:.4f} | "
                 f"{row['latency_ms'][key]:.2f} ms |")
  if row["recipe"] == "detector_mnist":
    lines += ["", "Targets: mAP@.5 >= 0.95 and mAP@[.5:.95] >= 0.70 within 30 minutes of "
              "training; TFLite float32 median latency <= 15 ms per 128x128 image."]
  lines += ["", f"Per epoch (validation mAP on the first {row['map_images']} images of "
            f"`{row['eval_split']}`, training seconds):", ""]
  per = row["per_epoch"]
  for i, (sec, a, b) in enumerate(zip(per["seconds"], per["val_map"], per["val_map_50"]), start=1):
    lines.append(f"- epoch {i}: mAP {a:.4f}, mAP@.5 {b:.4f}, {sec:.0f} s")
  return "\n".join(lines) + "\n"


# --- Serving (scripts/serve.py under load) ------------------------------------------------


def main(flags, workdir: str, command: str) -> tuple[str, str]:
  row = detection_benchmark(flags.detection, workdir, data_dir=flags.data_dir,
                            manual_dir=flags.manual_dir, overrides=flags.detection_set,
                            report_split=flags.detection_report_split)
  report.save_json(workdir, "detection.json", row)
  section = flags.detection_section or (
      "Detection (detection)" if flags.detection == "detector_mnist"
      else f"Detection, {flags.detection} (detection_{flags.detection})")
  return section, detection_report(row, command=command)
