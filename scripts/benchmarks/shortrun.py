"""BENCHMARKS.md, "A short run, whole command (shortrun)": what a user waits for, start to
finish: `scripts/train.py --model=mnist_cnn --epochs=2` as a command (imports, data, model,
two epochs, final evaluation, run card), against the keras-io convnet example run as a
script (`keras_io_convnet.py`), whole and until its epoch log first shows 99.0 % validation
accuracy (one run gives both), and against the zoo's recipe of it to that accuracy, `runs`
times."""

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
_TEST_ACCURACY = re.compile(r"^Test accuracy: ([0-9.]+)")


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


def until_accuracy(recipe: str, manual_dir: str, target: float, *,
                   run_to_the_end: bool = False) -> dict:
  """Wall seconds from the command's start to the end of the first epoch whose validation
  accuracy reaches `target`, and that epoch. `recipe` `keras_io_script` is the keras-io
  example itself (`keras_io_convnet.py`). The command is stopped there, unless
  `run_to_the_end`: then it runs as published and `whole_seconds` and its final `test_accuracy`
  are recorded too (one run gives both figures)."""
  with tempfile.TemporaryDirectory() as tmp:
    command = ([sys.executable, "-u", os.path.join(os.path.dirname(__file__),
                                                   "keras_io_convnet.py"), manual_dir]
               if recipe == "keras_io_script"
               else _command(recipe, os.path.join(tmp, "run"), manual_dir))
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    epoch, reached, test_accuracy = 0, None, None
    try:
      for line in proc.stdout:
        match = _VAL_ACCURACY.search(line)
        if match:
          epoch += 1
          if reached is None and float(match.group(1)) >= target:
            reached = {"seconds": time.perf_counter() - started, "epoch": epoch,
                       "accuracy": float(match.group(1))}
            if not run_to_the_end:
              break
        match = _TEST_ACCURACY.search(line)
        if match:
          test_accuracy = float(match.group(1))
      if run_to_the_end and proc.wait() != 0:
        raise RuntimeError(f"{recipe} failed (exit status {proc.returncode})")
    finally:
      proc.kill()
      proc.wait(timeout=60)
  if reached is None:
    raise RuntimeError(f"{recipe} never reached {target} validation accuracy")
  if run_to_the_end:
    reached.update(whole_seconds=time.perf_counter() - started, epochs=epoch,
                   test_accuracy=test_accuracy)
  return reached


def main(flags, workdir: str, command: str) -> tuple[str, str]:
  runs, target = flags.shortrun, flags.target_accuracy
  short, script, recipe = [], [], []
  for _ in range(runs):  # In threes: a row's commands meet the same machine load.
    short.append(whole_command("mnist_cnn", flags.manual_dir, "--epochs=2"))
    script.append(until_accuracy("keras_io_script", flags.manual_dir, target,
                                 run_to_the_end=True))
    recipe.append(until_accuracy("keras_example_cnn", flags.manual_dir, target))
  report.save_json(workdir, "shortrun.json",
                   {"short": short, "keras_io_script": script, "keras_example_cnn": recipe})
  vs_whole = [s["seconds"] / k["whole_seconds"] for s, k in zip(short, script)]
  vs_script = [s["seconds"] / k["seconds"] for s, k in zip(short, script)]
  vs_recipe = [s["seconds"] / k["seconds"] for s, k in zip(short, recipe)]
  lines = report.header(command) + [
      "Each row is three whole commands run as a user runs them, each in its own process, "
      "back to back on this machine, on the real MNIST: `python scripts/train.py "
      "--model=mnist_cnn --epochs=2` from start to exit (test accuracy, prepared TFDS data); "
      "the keras-io \"Simple MNIST convnet\" example as a script "
      "(`scripts/benchmarks/keras_io_convnet.py`: numpy arrays from the MNIST files, "
      "`fit(batch_size=128, epochs=15, validation_split=0.1)`, then the test score), run "
      "as published from start to exit, and from the same run the time to the end of its "
      f"first epoch whose `val_accuracy` (its 6,000 held-out training images) is >= "
      f"{target:.3f}; and the zoo's recipe of the same example (`--model=keras_example_cnn`, "
      "through `scripts/train.py` and the zoo's input pipeline; validation on the test "
      "split), stopped at the same accuracy.", "",
      "| run | `mnist_cnn --epochs=2`, whole command | its test accuracy | keras-io script, "
      "whole (its test accuracy) | ratio | keras-io script to its first "
      f"{100 * target:.1f} % epoch (epoch) | ratio | zoo's `keras_example_cnn` to "
      f"{100 * target:.1f} % (epoch) | ratio |",
      "|---|---|---|---|---|---|---|---|---|"]
  for i, (s, k, r, w, a, b) in enumerate(
      zip(short, script, recipe, vs_whole, vs_script, vs_recipe), start=1):
    lines.append(f"| {i} | {s['seconds']:.1f} s | {100 * s['accuracy']:.2f} % | "
                 f"{k['whole_seconds']:.1f} s ({report.pct(k['test_accuracy'])}) | {w:.2f} | "
                 f"{k['seconds']:.1f} s ({k['epoch']}) | {a:.2f} | "
                 f"{r['seconds']:.1f} s ({r['epoch']}) | {b:.2f} |")
  lines += ["", f"Ratio, median of {runs} (goal: at most 1/3): "
            f"**{statistics.median(vs_whole):.2f}** against the keras-io script run whole "
            f"(worst {max(vs_whole):.2f}); "
            f"**{statistics.median(vs_script):.2f}** against the same script stopped at its "
            f"first {100 * target:.1f} % epoch (worst {max(vs_script):.2f}); "
            f"{statistics.median(vs_recipe):.2f} against the zoo's recipe of it (worst "
            f"{max(vs_recipe):.2f})."]
  return "A short run, whole command (shortrun)", "\n".join(lines) + "\n"
