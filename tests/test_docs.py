"""The docs cannot lie: every example in README.md and docs/ runs, and what it shows is
what it printed.

Examples are run with Sybil (chosen over pytest-markdown-docs because it checks printed
output, not only that a block runs: a `>>>` block is a doctest, and a `console` block's
`$ command` lines are run with their output compared, `...` matching anything). Blocks:

- ```python: run; with `>>>` prompts, each output is checked (doctest, ELLIPSIS and
  NORMALIZE_WHITESPACE).
- ```console: each `$ ` line runs in bash; the lines under it are its expected output.
- ```bash: run in bash, must exit 0.
- A block that must not run here carries `<!-- skip: next "why" -->` just above it (it
  needs internet, a GPU, a server, or trains for minutes); the reason is required.

Every page's examples run in order in one namespace, in a fresh working directory holding
`digit.png` (the first MNIST test digit, a 7) and `canvas.png` (a 128x128 canvas of test
digits, as `detector_mnist` was trained on), with `ZOO_HOME` the test session's cache and
the zoo's commands on PATH. The generated pages (docs/recipes.md, the README's table) must
match what `scripts/make_docs.py` writes.
"""

import doctest
import os
import pathlib
import re
import subprocess
import sys
import textwrap
import unittest

import numpy as np
import pytest
from PIL import Image
from sybil import Document
from sybil.evaluators.doctest import OutputChecker
from sybil.parsers.markdown import CodeBlockParser, PythonCodeBlockParser, SkipParser

from tests.conftest import MNIST_DIR, REPO
from zoo import catalog
from zoo.data import mnist_detection

PAGES = sorted([REPO / "README.md", *(REPO / "docs").rglob("*.md")])
# Fenced blocks whose language says what they are; anything else is refused (untagged
# blocks hide whether they are code or output).
LANGUAGES = {"python", "console", "bash", "text", "json", "yaml", "ini", "protobuf"}
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
_CHECKER = OutputChecker()


def _shell_env():
  env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="200")
  env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
  return env


def _run(command, namespace):
  return subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                        cwd=namespace["__workdir__"], env=_shell_env(), timeout=600)


def _evaluate_console(example):
  """`$ command` lines, each followed by the output it printed (stdout and stderr)."""
  text = example.parsed
  steps = re.split(r"^\$ ", text, flags=re.M)
  if steps[0].strip():
    return f"console block does not start with '$ ': {steps[0]!r}"
  for step in steps[1:]:
    command, _, want = step.partition("\n")
    proc = _run(command, example.namespace)
    got = proc.stdout + proc.stderr
    if not _CHECKER.check_output(want, got, FLAGS):
      return (f"`{command}` (exit {proc.returncode}) printed:\n{textwrap.indent(got, '  ')}"
              f"the page shows:\n{textwrap.indent(want, '  ')}")
  return None


def _evaluate_bash(example):
  proc = _run(example.parsed, example.namespace)
  if proc.returncode != 0:
    return f"exit {proc.returncode}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
  return None


PARSERS = [
    PythonCodeBlockParser(doctest_optionflags=FLAGS),
    CodeBlockParser(language="console", evaluator=_evaluate_console),
    CodeBlockParser(language="bash", evaluator=_evaluate_bash),
    SkipParser(),
]


@pytest.fixture(scope="module")
def example_files(tmp_path_factory):
  """digit.png and canvas.png, made from the real MNIST test files."""
  root = tmp_path_factory.mktemp("docs_files")
  images, labels = mnist_detection.read_mnist(str(MNIST_DIR), "test")
  Image.fromarray(images[0]).save(root / "digit.png")
  canvas, _, _ = next(c for c in mnist_detection.make_canvases(images, labels, 20, seed=3)
                      if len(c[2]) == 3)
  Image.fromarray(canvas[..., 0]).save(root / "canvas.png")
  return root


def _page_id(path):
  return str(path.relative_to(REPO))


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_examples_run_and_print_what_the_page_shows(page, example_files, tmp_path):
  for name in os.listdir(example_files):
    (tmp_path / name).write_bytes((example_files / name).read_bytes())
  document = Document.parse(str(page), *PARSERS)
  document.namespace["__workdir__"] = str(tmp_path)
  cwd = os.getcwd()
  os.chdir(tmp_path)  # Python blocks open files by relative path, as a reader's would.
  ran = skipped = 0
  try:
    for example in document:
      try:
        example.evaluate()
        ran += 1
      except unittest.SkipTest:
        skipped += 1
  finally:
    os.chdir(cwd)
  text = page.read_text()
  blocks = len(re.findall(r"^```(?:python|console|bash)\s*$", text, re.M))
  # Every block was seen (a doctest block is one example or more): none escaped parsing.
  assert ran + skipped >= blocks, (page, ran, skipped, blocks)


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_every_block_says_what_it_is_and_every_skip_why(page):
  text = page.read_text()
  for match in re.finditer(r"^```(.*)$", text, re.M):
    language = match.group(1).strip()
    if not language:
      continue  # A closing fence (an untagged opening one fails the count below).
    assert language in LANGUAGES, (page, language)
  opening = re.findall(r"^```(\S*)\s*$", text, re.M)
  untagged = [i for i, lang in enumerate(opening[::2]) if not lang]
  assert not untagged, f"{page}: untagged code block(s): say python, console, bash or text"
  for skip in re.finditer(r"<!--\s*skip:\s*(.*?)-->", text):
    assert re.match(r'next\s+"[^"]{10,}"\s*$', skip.group(1)), (
        f"{page}: a skip needs its reason: <!-- skip: next \"why\" -->, got {skip.group(0)}")


def test_generated_pages_are_current():
  """docs/recipes.md and the README's table are what scripts/make_docs.py writes from the
  run cards and the presets' manifest: rerun it after changing either."""
  assert (REPO / "docs" / "recipes.md").read_text() == catalog.recipes_page()
  readme = (REPO / "README.md").read_text()
  assert readme == catalog.readme_with_table(readme)


def test_readme_is_one_screen_and_ci_runs_its_test_command():
  readme = (REPO / "README.md").read_text()
  assert len(readme.splitlines()) <= 200
  command = "pip install -e '.[serve,onnx,test]' && python -m pytest -q -n 2 --dist loadfile"
  assert command in readme
  assert command in (REPO / ".ci" / "run").read_text().splitlines()


def test_run_cards_point_at_measurements_that_exist():
  """Each recipe's figure names where it was measured: a BENCHMARKS.md section or a shipped
  preset's card that holds it."""
  from zoo import presets, registry
  benchmarks = (REPO / "BENCHMARKS.md").read_text()
  for name in registry.recipe_names():
    where = registry.run_card(name).measured_in
    if where.startswith("preset:"):
      _, preset, version = where.split(":")
      assert version in presets.manifest()["presets"][preset]["versions"], (name, where)
    else:
      assert f"\n## {where}\n" in benchmarks, (name, where)


def test_the_pictures_are_what_the_script_draws(tmp_path):
  """docs/images/ is made by scripts/make_docs_images.py, not by hand: the pictures of the
  shipped models (generated digits, detections) drawn again here match the committed ones.
  (The charts need matplotlib, the docs extra, and the screenshots a browser and a training
  run: those are made by the same script, and checked by eye.)"""
  names = ["cdcgan_digits", "dcgan_digits", "detections", "overview"]
  proc = subprocess.run([sys.executable, str(REPO / "scripts" / "make_docs_images.py"),
                         f"--manual_dir={MNIST_DIR}", f"--output_dir={tmp_path / 'out'}",
                         f"--workdir={tmp_path / 'work'}", f"--only={','.join(names)}"],
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  for name in names:
    drawn = np.asarray(Image.open(tmp_path / "out" / f"{name}.png"), np.float32)
    committed = np.asarray(Image.open(REPO / "docs" / "images" / f"{name}.png"), np.float32)
    assert drawn.shape == committed.shape, name
    assert np.abs(drawn - committed).mean() < 0.5, name  # Equal up to float rounding.
