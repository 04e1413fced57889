"""BENCHMARKS.md, "Exported models (export)": for every file of exported models of any task
(SavedModel, every TFLite variant, ONNX), its size, its median one-input latency through
the task's front in one process, and the parity figures its model card holds; the Keras
model too (its checkpoint where the run directory it came from is still there, else the
recipe's architecture freshly built, for its latency)."""

from __future__ import annotations

import os

from benchmarks import report
from zoo import data, registry, rundir, runtime, tasks
from zoo.configs import TrainConfig


def _bytes(version_dir: str, entry: dict) -> int:
  if "bytes" in entry:
    return entry["bytes"]
  variables = os.path.join(version_dir, "variables")  # The SavedModel: graph + variables.
  return os.path.getsize(os.path.join(version_dir, "saved_model.pb")) + sum(
      os.path.getsize(os.path.join(variables, f)) for f in os.listdir(variables))


def export_rows(version_dir: str, *, data_dir, manual_dir=None, runs: int = 200) -> dict:
  """Size, parity and median one-input latency of every file of an exported version (and of
  its Keras checkpoint, when its run directory exists)."""
  card = runtime.read_card(version_dir)
  task = tasks.for_card(card)
  config = TrainConfig.from_dict(card["training"]["config"])
  # A folder's dataset as the run prepared it (its image shape and resize), else by name.
  builder = data.builder_for(config, data_dir=data_dir, manual_dir=manual_dir)
  example = task.example_input(config, builder)
  rows = []
  info = data.dataset_info(builder)
  model_dir = card["training"].get("model_dir") or ""
  if os.path.exists(rundir.path(model_dir, rundir.CHECKPOINT)):
    _, model = rundir.load_run(model_dir)
    file, size = "keras", os.path.getsize(rundir.path(model_dir, rundir.CHECKPOINT))
  else:
    # The run directory is gone: the recipe's architecture, freshly built, times the same
    # Keras path (a forward pass costs the same whatever the weights); no parity.
    model = registry.build_model(config, input_shape=info.image_shape,
                                 num_classes=info.num_classes)
    file, size = "keras (architecture only)", None
  predict = task.predict_fn(task.keras_front(model, config, info))
  rows.append({"file": file, "bytes": size, "parity": {},
               "latency_ms": report.median_ms(lambda: predict(*example), runs)})
  for key, entry in card["files"].items():
    predict = task.predict_fn(task.open_file(version_dir, key, card))
    rows.append({"file": key, "bytes": _bytes(version_dir, entry),
                 "parity": card["parity"].get(key, {}),
                 "latency_ms": report.median_ms(lambda: predict(*example), runs)})
  return {"task": task.name, "metrics": card["metrics"], "rows": rows}


def export_report(results: dict[str, dict], *, command: str) -> str:
  lines = report.header(command, libraries="keras ai-edge-litert onnxruntime") + [
      "Latency: median of 200 calls with one input (one test image, one test canvas, or one "
      "seed) through the task's front (`zoo.load`'s `predict`, `detect` or "
      "`generate_seeds`), after 10 warm-up calls, in one process on this CPU; ONNX Runtime "
      "with its CPU provider. A generator's TFLite and ONNX files take a latent, so their "
      "time includes drawing the seed's latent in Python (the SavedModel draws it in its "
      "`generate` graph). Parity: as each model card records it (against the Keras "
      "model; an ONNX file added to an older export: against its SavedModel). The `keras` "
      "row is the trained checkpoint through the task's serving functions; where the run "
      "directory a model came from is not on this machine, `keras (architecture only)` "
      "times the recipe's architecture freshly built (the same forward pass; no size, no "
      "parity).",
  ]
  for name, result in results.items():
    task = tasks.get(result["task"])
    keys = list(dict.fromkeys(k for r in result["rows"] for k in r["parity"]
                              if k != "reference"))
    lines += ["", f"`{name}` ({result['task']}, parity on {result['metrics']['split']}):", "",
              "| file | size | latency, 1 input (median) | "
              + " | ".join(k.replace("_", " ") for k in keys) + " |",
              "|---" * (3 + len(keys)) + "|"]
    for r in result["rows"]:
      figures = [task.format_value(k, r["parity"][k]) if k in r["parity"] else ""
                 for k in keys]
      size = "" if r["bytes"] is None else f"{r['bytes'] / 1e6:.2f} MB"
      lines.append(f"| {r['file']} | {size} | {r['latency_ms']:.2f} ms | "
                   + " | ".join(figures) + " |")
  return "\n".join(lines) + "\n"


def main(flags, workdir: str, command: str) -> tuple[str, str]:
  results = {path: export_rows(path, data_dir=flags.data_dir, manual_dir=flags.manual_dir)
             for path in flags.exported}
  report.save_json(workdir, "exported.json", results)
  return "Exported models (export)", export_report(results, command=command)
