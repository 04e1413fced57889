"""BENCHMARKS.md, "The backbone family": for each backbone of `zoo.models.backbones`, the
photo classifier (`image_classifier --set=backbone=NAME`) trained on one folder, measured
at the end of its run, then exported (SavedModel, int8 TFLite, ONNX): accuracy, training
time, model size and one-photo latency of each file, so a user can pick a backbone.

A backbone without ImageNet weights (MobileNetV2 here) trains from scratch
(`init_from=none`); the others start from ImageNet, as the recipe does."""

from __future__ import annotations

import os

from benchmarks import exported, folder, report
from zoo import export
from zoo.models import backbones

# What the table shows of each export, and its label: the files #42 names.
FILES = (("keras", "Keras"), ("saved_model", "SavedModel"), ("int8", "int8 TFLite"),
         ("onnx", "ONNX"))


def family_row(name: str, photos: str, workdir: str, *, data_dir, overrides=()) -> dict:
  """Trains `image_classifier` with backbone `name` on `photos`, exports it and times it."""
  start = [] if backbones.get(name).imagenet else ["init_from=none"]
  trained = folder.run_folder_recipe(f"image_classifier@{name}", photos, workdir,
                                     data_dir=data_dir,
                                     overrides=[f"backbone={name}", *start, *overrides])
  version = export.export_run(trained["run_dir"], export_dir=os.path.join(workdir, "exports"),
                              name=f"family_{name}", variants=["int8"], onnx=True,
                              data_dir=data_dir)
  files = {r["file"].split(" ")[0]: r
           for r in exported.export_rows(version, data_dir=data_dir)["rows"]}
  return {"backbone": name, **trained, "version": version, "files": files}


def family_report(rows: list[dict], *, command: str, folder_note: str) -> str:
  lines = report.header(command, libraries="keras ai-edge-litert onnxruntime") + [
      "",
      f"Data: {folder_note} each backbone's `image_classifier` (`--set=backbone=NAME`; "
      "from scratch where it has no ImageNet weights) trains its recipe's schedule, is "
      "measured on `valid` at the end of the run (training seconds exclude validation), "
      "then is exported (`variants=int8`, ONNX). Size: the file (the SavedModel: graph and "
      "variables). Latency: median of 200 calls with one photo through `zoo.load`'s "
      "`predict`, after 10 warm-up calls, in one process on this CPU.",
      "",
      "| backbone | start | input | valid accuracy | train time | "
      + " | ".join(f"{label} size" for key, label in FILES if key != "keras") + " | "
      + " | ".join(f"{label} latency" for _, label in FILES) + " |",
      "|---" * (5 + 2 * len(FILES) - 1) + "|",
  ]
  for r in rows:
    shape = "x".join(map(str, r["image_shape"][:2]))
    sizes = [f"{r['files'][key]['bytes'] / 1e6:.1f} MB" if key in r["files"] else "n/a"
             for key, _ in FILES if key != "keras"]
    times = [f"{r['files'][key]['latency_ms']:.1f} ms" if key in r["files"] else "n/a"
             for key, _ in FILES]
    lines.append(f"| `{r['backbone']}` | {r['init_from']} | {shape} | "
                 f"{report.pct(r['final_accuracy'])} | {r['train_seconds']:.0f} s | "
                 + " | ".join(sizes) + " | " + " | ".join(times) + " |")
  return "\n".join(lines) + "\n"


def main(flags, workdir: str, command: str) -> tuple[str, str]:
  photos, folder_note = flags.family, f"the folder `{flags.family}`:"
  if flags.folder_holdout:
    photos = folder.selection_folder(photos, workdir)
    folder_note = (f"the training photos of `{flags.family}` alone (its valid split unread), "
                   "a stratified 20 % held out as `valid`:")
  rows = [family_row(name, photos, workdir, data_dir=flags.data_dir,
                     overrides=flags.family_set)
          for name in flags.family_backbones or backbones.names()]
  report.save_json(workdir, "family.json", rows)
  section = (flags.family_section
             or f"The backbone family: {os.path.basename(os.path.normpath(flags.family))}")
  return section, family_report(rows, command=command, folder_note=folder_note)
