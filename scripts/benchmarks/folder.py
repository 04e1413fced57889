"""BENCHMARKS.md, "Your own images (folder)": every classification recipe trained on one
folder of labelled images (`--dataset=folder:DIR`), the keras-io convnet
(`keras_example_cnn`) among them, in one run: valid accuracy after the recipe's own
schedule, its best epoch, and training time on this machine. Each starts where its recipe
does (`init_from`: from scratch, or fine-tuned from trained weights), so a recipe and its
`@scratch` twin side by side measure what the trained start gives."""

from __future__ import annotations

import os

import keras
from PIL import Image, ImageOps

from benchmarks import report
from zoo import callbacks as zoo_callbacks
from zoo import data, precision, registry, rundir, train
from zoo.configs import apply_overrides
from zoo.data import digit_photos


def run_folder_recipe(entry: str, folder: str, workdir: str, *, data_dir, overrides=()) -> dict:
  """Trains `entry` (a recipe name, or `recipe@label` for a second run of one recipe with
  other overrides) on `folder:<folder>`, validating on its `valid` split."""
  name = entry.partition("@")[0]
  config = registry.get_config(name).replace(dataset=f"folder:{folder}", eval_split="valid")
  config = apply_overrides(config, list(overrides)).validate()
  recorder = zoo_callbacks.EpochLogs(("val_accuracy",))
  keras.backend.clear_session()
  run_dir = report.fresh_run_dir(workdir, entry.replace("@", "_"))
  metrics = train.train_and_evaluate(config, run_dir, data_dir=data_dir,
                                     extra_callbacks=[recorder])
  precision.set_policy("float32")
  accuracies = recorder.values["val_accuracy"]
  best = max(range(len(accuracies)), key=accuracies.__getitem__)
  # The epochs trained: more than train_epochs where min_train_steps asked for more.
  epochs = rundir.read_json(run_dir, rundir.RUN_CARD).get("train_epochs", config.train_epochs)
  return {"recipe": name, "entry": entry, "run_dir": run_dir,
          "overrides": list(overrides), "epochs": epochs,
          "init_from": config.init_from, "freeze_epochs": config.freeze_epochs,
          "image_shape": list(config.folder_image_shape), "resize": config.folder_resize,
          "final_accuracy": metrics["accuracy"], "best_accuracy": accuracies[best],
          "best_epoch": best + 1, "train_seconds": sum(recorder.train_seconds),
          "per_epoch_accuracy": accuracies, "per_epoch_seconds": recorder.train_seconds}


def shrunk_folder(folder: str, workdir: str, side: int) -> str:
  """A copy of `folder` (in `workdir`) with every photo shrunk, aspect kept, to a shorter
  side of `side` pixels (PNG, so nothing more is lost; a centre crop is then `side` x
  `side`, as CIFAR's 32 px photos): photos far smaller than a backbone's input."""
  target = os.path.join(workdir, f"shrunk{side}_" + os.path.basename(os.path.normpath(folder)))
  for root, _, files in os.walk(folder, followlinks=True):
    out_dir = os.path.join(target, os.path.relpath(root, folder))
    os.makedirs(out_dir, exist_ok=True)
    for name in sorted(files):
      out = os.path.join(out_dir, name + ".png")
      if os.path.exists(out):
        continue
      try:
        with Image.open(os.path.join(root, name)) as image:
          image = ImageOps.exif_transpose(image).convert("RGB")
          scale = side / min(image.size)
          image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                       Image.Resampling.LANCZOS).save(out + ".part", format="PNG")
        os.replace(out + ".part", out)
      except OSError:  # Not an image (a README): left out, as the folder reader would.
        continue
  return target


def selection_folder(folder: str, workdir: str) -> str:
  """A folder of `folder`'s `train/` class folders alone (links, in `workdir`), so that the
  zoo holds out part of train as `valid` (`zoo.data.image_folder`'s class layout): what
  schedules are chosen on, leaving the folder's own valid split for the final figure."""
  train = os.path.join(folder, "train")
  if not os.path.isdir(train):
    raise ValueError(f"--folder_holdout needs {folder}/train/<class>/ (the split layout).")
  target = os.path.join(workdir, "selection_" + os.path.basename(os.path.normpath(folder)))
  os.makedirs(target, exist_ok=True)
  for name in sorted(os.listdir(train)):
    link = os.path.join(target, name)
    if os.path.isdir(os.path.join(train, name)) and not os.path.exists(link):
      os.symlink(os.path.abspath(os.path.join(train, name)), link)
  return target


def folder_report(rows: list[dict], info, *, command: str, folder_note: str) -> str:
  lines = report.header(command, libraries="keras tensorflow-datasets") + [
      "",
      f"Data: {folder_note} {info.num_classes} classes; "
      + ", ".join(f"{k} {v:,}" for k, v in sorted(info.num_examples.items()))
      + " images. Each recipe prepares it at its own input shape (`folder_image_shape`, "
      "`folder_resize`), starts where it starts (`init_from`: `none` is from scratch; "
      "frozen: epochs with the loaded layers frozen), trains for its own schedule and is "
      "measured on `valid`; training seconds exclude validation.",
      "",
      "| recipe | overrides | start | input | epochs | valid accuracy | best (epoch) | "
      "train time |",
      "|---|---|---|---|---|---|---|---|",
  ]
  for r in rows:
    shape = "x".join(map(str, r["image_shape"]))
    start = r.get("init_from", "none")
    if start != "none" and r.get("freeze_epochs"):
      start += f", {r['freeze_epochs']} frozen"
    lines.append(f"| `{r['recipe']}` | {' '.join(f'`{o}`' for o in r['overrides'])} | "
                 f"{start} | {shape} {r['resize']} | {r['epochs']} | "
                 f"{report.pct(r['final_accuracy'])} | "
                 f"{report.pct(r['best_accuracy'])} ({r['best_epoch']}) | "
                 f"{r['train_seconds']:.0f} s |")
  return "\n".join(lines) + "\n"


def main(flags, workdir: str, command: str) -> tuple[str, str]:
  folder = flags.folder
  if os.path.exists(folder):
    folder_note = f"the folder `{folder}`:"
  elif flags.folder_make:  # MNIST's digits under other class names.
    kind, _, count = flags.folder_make.partition(":")
    digit_photos.write_digit_folder(flags.manual_dir, folder, kind=kind,
                                    train_images=int(count or 6000))
    folder_note = (f"`{folder}`, written by this run (`zoo.data.digit_photos."
                   f"write_digit_folder(kind={kind!r}, train_images={int(count or 6000)})`: "
                   + ("MNIST training digits under their English names, `zero` ... `nine`; "
                      if kind == "words" else
                      "MNIST digits turned a quarter turn, classes `turned_0` ... `turned_9`, "
                      "none of them a class of the MNIST presets; ")
                   + "valid: the first 1,000 MNIST test digits, likewise):")
  else:  # Built here, exactly as scripts/make_image_folder.py builds it.
    digit_photos.write_photo_folder(flags.manual_dir, folder)
    folder_note = (f"`{folder}`, written by this run as `python scripts/make_image_folder.py "
                   f"--manual_dir={flags.manual_dir} --output_dir={folder}` would write it "
                   "(photo-like MNIST digits, RGB JPEG, 64-192 px):")
  if flags.folder_holdout:
    folder_note = (
        f"the training photos of `{flags.folder}` alone (its valid split unread), of which the "
        "zoo holds out a stratified 20 % (`folder_validation_fraction`, fixed seed) as "
        "`valid`: the split schedules are chosen on:")
  if flags.folder_shrink:
    folder_note = (f"{folder_note[:-1]}, every photo shrunk by this run (aspect kept, "
                   f"Lanczos, `--folder_shrink`) to a shorter side of {flags.folder_shrink} px:")
    folder = shrunk_folder(folder, workdir, flags.folder_shrink)
  if flags.folder_holdout:
    folder = selection_folder(folder, workdir)
  overrides: dict[str, list[str]] = {}
  for item in flags.folder_set:
    entry, _, override = item.partition(":")
    overrides.setdefault(entry, []).append(override)
  rows = [run_folder_recipe(entry, folder, workdir, data_dir=flags.data_dir,
                            overrides=overrides.get(entry, ()))
          for entry in flags.folder_recipes]
  config = registry.get_config(rows[0]["recipe"]).replace(dataset=f"folder:{folder}")
  info = data.dataset_info(data.builder_for(config, data_dir=flags.data_dir))
  report.save_json(workdir, "folder.json", rows)
  return flags.folder_section, folder_report(rows, info, command=command,
                                                   folder_note=folder_note)
