"""zoo.errors and zoo.cli.run: the zoo's own errors print as one line (exit 2 for a bad
command line, 1 otherwise); every other exception keeps its traceback."""

import subprocess
import sys

import pytest

from tests.conftest import REPO
from zoo import errors

# A script as the zoo's scripts are written: cli first, then main under cli.run.
_SCRIPT = """
from zoo import cli
import sys
from zoo import errors

def main(argv):
  kind = argv[1]
  if kind == "usage":
    raise errors.UsageError("Invalid value for `--model`: 'mnist_cnm' is not a recipe.")
  if kind == "zoo":
    raise errors.InvalidValueError("Invalid value for `images`: expected dtype uint8.")
  raise ValueError("a plain bug")

cli.run(main)
"""


def _run(kind):
  return subprocess.run([sys.executable, "-c", _SCRIPT, kind], capture_output=True, text=True,
                        cwd=REPO, timeout=120)


@pytest.mark.parametrize("kind, status, line", [
    ("usage", 2, "error: Invalid value for `--model`: 'mnist_cnm' is not a recipe."),
    ("zoo", 1, "error: Invalid value for `images`: expected dtype uint8."),
])
def test_zoo_errors_print_one_line_with_their_exit_status(kind, status, line):
  proc = _run(kind)
  assert proc.returncode == status, proc.stderr
  assert proc.stderr.strip().splitlines() == [line]


def test_any_other_exception_keeps_its_traceback():
  proc = _run("bug")
  assert proc.returncode == 1
  assert "Traceback (most recent call last)" in proc.stderr
  assert "ValueError: a plain bug" in proc.stderr
  assert "error: a plain bug" not in proc.stderr


def test_an_unknown_recipe_is_one_line_and_exit_2_not_the_whole_help(tmp_path):
  proc = subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"),
                         "--model=mnist_cnm", f"--model_dir={tmp_path / 'run'}"],
                        capture_output=True, text=True, cwd=REPO, timeout=120)
  assert proc.returncode == 2, proc.stderr
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: Unknown recipe 'mnist_cnm'. Valid "
                                                 "recipes: ["), lines
  assert lines[0].endswith("Did you mean 'mnist_cnn'?"), lines
  assert "--model_dir" not in proc.stderr  # No --help dump.


def test_user_facing_errors_are_also_the_builtin_kinds():
  """Code that caught ValueError / FileNotFoundError / FileExistsError still does."""
  assert issubclass(errors.InvalidValueError, ValueError)
  assert issubclass(errors.NotFoundError, FileNotFoundError)
  assert issubclass(errors.AlreadyExistsError, FileExistsError)
  for cls in (errors.UsageError, errors.InvalidValueError, errors.NotFoundError,
              errors.AlreadyExistsError):
    assert issubclass(cls, errors.ZooError)


@pytest.mark.parametrize("dataset, line", [
    # Not TFDS's 20-line grammar of dataset names.
    ("flder:/no/such",
     "error: Invalid value for `dataset`: 'flder:/no/such' is not a tensorflow-datasets "
     "name (e.g. 'mnist', 'fashion_mnist'), a folder of labelled images ('folder:DIR') or "
     "a folder of COCO-format data ('coco:DIR')."),
    ("folder:/no/such", "error: Invalid value for `dataset`: folder:/no/such is not a directory. "
                        "Expected --dataset=folder:DIR, a folder of class folders of images."),
])
def test_a_bad_dataset_is_one_line(tmp_path, dataset, line):
  proc = subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"),
                         "--model=mnist_mlp", f"--dataset={dataset}",
                         f"--model_dir={tmp_path / 'run'}", f"--data_dir={tmp_path / 'tfds'}"],
                        capture_output=True, text=True, cwd=REPO, timeout=120)
  assert proc.returncode == 1, proc.stderr
  assert proc.stderr.strip().splitlines() == [line]


@pytest.mark.parametrize("script, args, line", [
    ("predict.py", [], "error: Flag --model must be given (see --help)."),
    ("export.py", [], "error: Exactly one of (model_dir, add_onnx, from_export) must be given "
                      "(see --help)."),
    ("train.py", ["--model=mnist_mlp", "--model_dir=unused", "--epoch=2"],
     "error: Unknown command line flag 'epoch'. Did you mean --epochs? (see --help)."),
    ("train.py", ["--model=mnist_mlp", "--model_dir=unused", "--epochs=two"],
     "error: flag --epochs=two: invalid literal for int() with base 10: 'two' (see --help)."),
])
def test_flag_parsing_errors_are_one_line_and_exit_2(script, args, line):
  """Not absl's "FATAL Flags parsing error" and a second line; nothing runs."""
  proc = subprocess.run([sys.executable, str(REPO / "scripts" / script), *args],
                        capture_output=True, text=True, cwd=REPO, timeout=120)
  assert proc.returncode == 2, proc.stderr
  assert proc.stderr.strip().splitlines() == [line]


def test_did_you_mean_names_the_closest_choice_or_nothing():
  assert errors.did_you_mean("mixed_flot16", ["float32", "mixed_float16"]) == (
      " Did you mean 'mixed_float16'?")
  assert errors.did_you_mean("resnet", ["mlp", "cnn"]) == ""
