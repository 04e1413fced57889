"""BENCHMARKS.md, "Exported models (export)": size, accuracy and single-image latency of
every file of exported classifiers, beside the Keras checkpoint they came from."""

from __future__ import annotations

import json
import os

import keras

from benchmarks import report
from zoo import data, loading, rundir


def export_rows(version_dir: str, *, data_dir, runs: int = 200) -> list[dict]:
  """Size, accuracy and single-image latency of every artifact of an exported version,
  and of the Keras checkpoint it came from, side by side on the same images."""
  card = json.load(open(os.path.join(version_dir, "model_card.json")))
  builder = data.prepare_builder(card["training"]["config"]["dataset"], data_dir=data_dir)
  images, labels = data.split_arrays(builder, card["metrics"]["split"])
  one = images[:1]
  keras_model = keras.saving.load_model(os.path.join(card["training"]["model_dir"],
                                                     rundir.CHECKPOINT))
  x = data.normalize_images(one)
  rows = [{"artifact": "Keras (.keras checkpoint)",
           "bytes": os.path.getsize(os.path.join(card["training"]["model_dir"], rundir.CHECKPOINT)),
           "accuracy": card["metrics"]["keras_accuracy"],
           "latency_ms": report.median_ms(lambda: keras_model(x, training=False), runs)}]
  saved = loading.load(version_dir)
  variables = os.path.join(version_dir, "variables")
  size = os.path.getsize(os.path.join(version_dir, "saved_model.pb")) + sum(
      os.path.getsize(os.path.join(variables, f)) for f in os.listdir(variables))
  rows.append({"artifact": "SavedModel (serving_default)", "bytes": size,
               "accuracy": card["parity"]["saved_model"]["accuracy"],
               "agreement": card["parity"]["saved_model"]["top1_agreement"],
               "latency_ms": report.median_ms(lambda: saved.predict(one), runs)})
  for variant in ("float32", "float16", "dynamic_int8", "int8"):
    if variant not in card["files"]:
      continue
    p = loading.load(os.path.join(version_dir, card["files"][variant]["path"]))
    rows.append({"artifact": f"TFLite {variant}", "bytes": card["files"][variant]["bytes"],
                 "accuracy": card["parity"][variant]["accuracy"],
                 "agreement": card["parity"][variant]["top1_agreement"],
                 "latency_ms": report.median_ms(lambda: p.predict(one), runs)})
  return rows


def export_report(results: dict[str, list[dict]], *, command: str) -> str:
  lines = report.header(command) + [
      "Accuracy: on the split named in each model card (the 10,000-image MNIST test split); "
      "latency: median of 200 single-image calls through `zoo.load(...).predict` (Keras: a "
      "direct `model(x)` call), after 10 warm-up calls, in one process.",
  ]
  for name, rows in results.items():
    lines += ["", f"`{name}`:", "", "| artifact | size | accuracy | top-1 agreement with Keras | "
              "latency, 1 image (median) |", "|---|---|---|---|---|"]
    for r in rows:
      agreement = f"{100 * r['agreement']:.2f} %" if "agreement" in r else ""
      lines.append(f"| {r['artifact']} | {r['bytes'] / 1e6:.2f} MB | {100 * r['accuracy']:.2f} % | "
                   f"{agreement} | {r['latency_ms']:.2f} ms |")
  return "\n".join(lines) + "\n"


def main(flags, workdir: str, command: str) -> tuple[str, str]:
  results = {path: export_rows(path, data_dir=flags.data_dir) for path in flags.exported}
  return "Exported models (export)", export_report(results, command=command)
