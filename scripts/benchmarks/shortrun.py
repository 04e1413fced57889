"""BENCHMARKS.md, "A short run, whole command (shortrun)": what a user waits for, start to
finish: `scripts/train.py --model=mnist_cnn --epochs=2` as a command (imports, data, model,
two epochs, final evaluation, run card), against the keras-io convnet recipe's command
until its epoch log first shows 99.0 % validation accuracy, each run `runs` times."""

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
  accuracy reaches `target` (the command is stopped there), and that epoch."""
  with tempfile.TemporaryDirectory() as tmp:
    started = time.perf_counter()
    proc = subprocess.Popen(_command(recipe, os.path.join(tmp, "run"), manual_dir),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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
  runs = flags.shortrun
  short, keras_io = [], []
  for _ in range(runs):  # In pairs: a row's two commands meet the same machine load.
    short.append(whole_command("mnist_cnn", flags.manual_dir, "--epochs=2"))
    keras_io.append(until_accuracy("keras_example_cnn", flags.manual_dir,
                                   flags.target_accuracy))
  report.save_json(workdir, "shortrun.json", {"short": short, "keras_io": keras_io})
  ratios = [s["seconds"] / k["seconds"] for s, k in zip(short, keras_io)]
  lines = report.header(command) + [
      "Each row is a whole command run as a user runs it, in its own process, on the real "
      "MNIST (prepared in the default TFDS folder), one after the other on this machine, the two commands of a row back to back: "
      "`python scripts/train.py --model=mnist_cnn --epochs=2` from start to exit, and "
      "`python scripts/train.py --model=keras_example_cnn` (the keras-io \"Simple MNIST "
      "convnet\" recipe) from start to the end of its first epoch logging validation "
      f"accuracy >= {flags.target_accuracy:.3f} (then stopped).", "",
      "| run | `mnist_cnn --epochs=2`, whole command | its test accuracy | keras-io convnet "
      f"to {100 * flags.target_accuracy:.1f} % | at epoch | ratio |",
      "|---|---|---|---|---|---|"]
  for i, (s, k, r) in enumerate(zip(short, keras_io, ratios), start=1):
    lines.append(f"| {i} | {s['seconds']:.1f} s | {100 * s['accuracy']:.2f} % | "
                 f"{k['seconds']:.1f} s | {k['epoch']} | {r:.2f} |")
  lines += ["", f"Ratio, median of {runs}: **{statistics.median(ratios):.2f}** (goal: at most "
            f"1/3); worst {max(ratios):.2f}."]
  return "A short run, whole command (shortrun)", "\n".join(lines) + "\n"
