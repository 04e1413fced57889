"""BENCHMARKS.md, "A short run, whole command (shortrun)": what a user waits for, start to
finish: `scripts/train.py --model=mnist_cnn --epochs=2` as a command (imports, data, model,
two epochs, final evaluation, run card), against the keras-io convnet example run as a
script (`keras_io_convnet.py`) and against the zoo's recipe of it, each until its epoch log
first shows 99.0 % validation accuracy, `runs` times."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks import report

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_VAL_ACCURACY = re.compile(r"val_accuracy: ([0-9.]+)")


def _command(recipe: str, model_dir: str, manual_dir: str, *extra: str) -> list:
  return [sys.executable, "-u", os.path.join(REPO, "scripts", "train.py"), f"--model={recipe}",
          f"--model_dir={model_dir}", f"--manual_dir={manual_dir}", *extra]


def whole_command(recipe: str, manual_dir: str, *extra: str) -> dict:
  """Wall seconds of the whole command and the test accuracy it reports."""
  with tempfile.TemporaryDirectory() as tmp:
    model_dir = os.path.join(tmp, "run")
    started = time.perf_counter()
    subprocess.run(_command(recipe, model_dir, manual_dir, *extra), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    with open(os.path.join(model_dir, "metrics.json")) as f:
      accuracy = json.load(f)["accuracy"]
  return {"seconds": seconds, "accuracy": accuracy}


def until_accuracy(recipe: str, manual_dir: str, target: float) -> dict:
  """Wall seconds from the command's start to the end of the first epoch whose validation
  accuracy reaches `target` (the command is stopped there), and that epoch. `recipe`
  `keras_io_script` is the keras-io example itself (`keras_io_convnet.py`)."""
  with tempfile.TemporaryDirectory() as tmp:
    command = ([sys.executable, "-u", os.path.join(os.path.dirname(__file__),
                                                   "keras_io_convnet.py"), manual_dir]
               if recipe == "keras_io_script"
               else _command(recipe, os.path.join(tmp, "run"), manual_dir))
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    epoch, reached = 0, None
    try:
      for line in proc.stdout:
        match = _VAL_ACCURACY.search(line)
        if match:
          epoch += 1
          if float(match.group(1)) >= target:
            reached = {"seconds": time.perf_counter() - started, "epoch": epoch,
                       "accuracy": float(match.group(1))}
            break
    finally:
      proc.kill()
      proc.wait(timeout=60)
  if reached is None:
    raise RuntimeError(f"{recipe} never reached {target} validation accuracy")
  return reached


def main(flags, workdir: str, command: str) -> tuple[str, str]:
  runs, target = flags.shortrun, flags.target_accuracy
  short, script, recipe = [], [], []
  for _ in range(runs):  # In threes: a row's commands meet the same machine load.
    short.append(whole_command("mnist_cnn", flags.manual_dir, "--epochs=2"))
    script.append(until_accuracy("keras_io_script", flags.manual_dir, target))
    recipe.append(until_accuracy("keras_example_cnn", flags.manual_dir, target))
  report.save_json(workdir, "shortrun.json",
                   {"short": short, "keras_io_script": script, "keras_example_cnn": recipe})
  vs_script = [s["seconds"] / k["seconds"] for s, k in zip(short, script)]
  vs_recipe = [s["seconds"] / k["seconds"] for s, k in zip(short, recipe)]
  lines = report.header(command) + [
      "Each row is three whole commands run as a user runs them, each in its own process, "
      "back to back on this machine, on the real MNIST: `python scripts/train.py "
      "--model=mnist_cnn --epochs=2` from start to exit (test accuracy, prepared TFDS data); "
      "the keras-io \"Simple MNIST convnet\" example as a script "
      "(`scripts/benchmarks/keras_io_convnet.py`: numpy arrays from the MNIST files, "
      "`fit(..., validation_split=0.1)`), from start to the end of its first epoch whose "
      f"`val_accuracy` (its 6,000 held-out training images) is >= {target:.3f}; and the "
      "zoo's recipe of the same example (`--model=keras_example_cnn`, through "
      "`scripts/train.py` and the zoo's input pipeline; validation on the test split) to "
      "the same accuracy. Each command is stopped at its target.", "",
      "| run | `mnist_cnn --epochs=2`, whole command | its test accuracy | keras-io script "
      f"to {100 * target:.1f} % (epoch) | ratio | zoo's `keras_example_cnn` to "
      f"{100 * target:.1f} % (epoch) | ratio |",
      "|---|---|---|---|---|---|---|"]
  for i, (s, k, r, a, b) in enumerate(zip(short, script, recipe, vs_script, vs_recipe),
                                      start=1):
    lines.append(f"| {i} | {s['seconds']:.1f} s | {100 * s['accuracy']:.2f} % | "
                 f"{k['seconds']:.1f} s ({k['epoch']}) | {a:.2f} | "
                 f"{r['seconds']:.1f} s ({r['epoch']}) | {b:.2f} |")
  lines += ["", f"Ratio, median of {runs}: **{statistics.median(vs_script):.2f}** against the "
            f"keras-io script (goal: at most 1/3; worst {max(vs_script):.2f}); "
            f"{statistics.median(vs_recipe):.2f} against the zoo's recipe of it (worst "
            f"{max(vs_recipe):.2f})."]
  return "A short run, whole command (shortrun)", "\n".join(lines) + "\n"
