"""`python -m zoo`, the `zoo` command: the shipped models by name, and every zoo command.

  zoo --list                               # every preset, its task, size and headline figure
  zoo train --model=mnist_cnn ...          # the same as zoo-train --model=mnist_cnn ...
  zoo predict --model=mnist_cnn digit.png  # any command of `zoo.commands.COMMANDS`
"""

from __future__ import annotations

import importlib
import sys
from typing import Optional, Sequence

import zoo
from zoo import commands, errors, presets

USAGE = f"""usage: zoo --list | zoo --version | zoo COMMAND [--flags] (zoo COMMAND --help)

The zoo's shipped models are presets: pass a name (mnist_cnn) or a version (mnist_cnn:3)
wherever a command or zoo.load takes an exported model. Cache: {presets.home()} (ZOO_HOME).

commands: {", ".join(commands.COMMANDS)} (also installed as zoo-<command>)"""


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Runs `zoo ARGS`; returns the exit status (a command exits by itself)."""
  argv = list(sys.argv[1:] if argv is None else argv)
  if not argv or argv[0] in ("-h", "--help", "help"):
    print(USAGE)
    return 0 if argv else 2
  if argv[0] in ("--list", "list"):
    print(presets.table())
    return 0
  if argv[0] == "--version":
    print(zoo.__version__)
    return 0
  if argv[0] not in commands.COMMANDS:
    print(f"error: {argv[0]!r} is not a zoo command; commands: "
          f"{', '.join(commands.COMMANDS)}.{errors.did_you_mean(argv[0], commands.COMMANDS)}",
          file=sys.stderr)
    return 2
  sys.argv = [f"zoo {argv[0]}", *argv[1:]]
  # The command's module defines its absl flags when imported: only the one that runs.
  importlib.import_module(commands.COMMANDS[argv[0]]).run()
  return 0


def run() -> None:
  """The `zoo` command."""
  sys.exit(main())


if __name__ == "__main__":
  run()
