"""What every `scripts/*.py` shares: a quiet start, readable logs, one-line errors.

Import this module first in a script, before anything that imports TensorFlow: importing
it imports TensorFlow with its start-up lines filtered (see `quiet_tensorflow_import`).
Library code never imports it: the apps' doors (`zoo.load`, `zoo.connect`) quiet
TensorFlow's import through `zoo.quiet` themselves.

  from zoo import cli  # First: quiets TensorFlow's start-up.
  ...
  if __name__ == "__main__":
    cli.run(main)
"""

from __future__ import annotations

import atexit
import gc
import logging
import os
import re
import subprocess
import sys

from absl import app
from absl import flags as absl_flags
from absl import logging as absl_logging

from zoo import errors
from zoo.quiet import quiet_tensorflow_import

# Lines native code (the TFLite converter and LiteRT, TensorFlow's C++ graph code) writes
# straight to file descriptor 2 while the zoo works, past any Python logging setting. Each
# is a report of normal operation, not something a user can act on.
_RUNTIME_NOISE = re.compile("|".join((
    r"^fully_quantize: \d+, inference_type: \d+",  # TFLite's int8 calibrator, per file.
    r"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU",  # LiteRT, per interpreter.
    r"NodeDef mentions attribute Truncate which is not in the op definition",
)))


# The filter runs in a process of its own: a thread would stall whenever native code holds
# the GIL (a full pipe could then block that code), and would die with this process, losing
# what was written just before a SIGKILL (the multi-worker watchdog's message).
_FILTER = r"""
import os, re, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the script's; keep forwarding.
noise = re.compile(sys.argv[1])
for raw in os.fdopen(0, "rb"):
  if not noise.search(raw.decode("utf-8", "replace")):
    os.write(2, raw)
"""


def _filter_native_stderr() -> None:
  """From now on, file descriptor 2 (this process's and its children's) goes through a
  pipe to a small filter process that drops the `_RUNTIME_NOISE` lines and forwards every
  other line at once to the real stderr. At exit (after a traceback is printed, too) the
  pipe is closed and the filter drains it, so no line is lost."""
  sys.stderr.flush()
  original = os.dup(2)
  read_end, write_end = os.pipe()
  filter_process = subprocess.Popen([sys.executable, "-c", _FILTER, _RUNTIME_NOISE.pattern],
                                    stdin=read_end, stderr=original)
  os.close(read_end)
  os.dup2(write_end, 2)
  os.close(write_end)

  def drain():
    sys.stderr.flush()
    os.dup2(original, 2)  # Closes this process's write end: the filter sees EOF.
    try:
      filter_process.wait(timeout=2)
    except subprocess.TimeoutExpired:  # A child still holds the pipe; it goes on alone.
      pass

  atexit.register(drain)


class _DropTfdsNoise(logging.Filter):
  """TFDS warns that a dataset folder it is about to prepare has no metadata yet, and says
  it uses a 'custom data configuration' for every COCO folder (which it always does)."""

  def filter(self, record):
    message = record.getMessage()
    return ("has no dataset_info.json" not in message
            and "Using custom data configuration" not in message)


def _configure_logging() -> None:
  """absl's INFO lines (TFDS's "Constructing tf.data.Dataset ...") only with -v 0; the zoo's
  own progress lines (`logging.getLogger("zoo")`) always, plainly."""
  if not absl_flags.FLAGS["verbosity"].present:
    absl_logging.set_verbosity(absl_logging.WARNING)
    absl_logging.get_absl_handler().addFilter(_DropTfdsNoise())
  logger = logging.getLogger("zoo")
  if not logger.handlers:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def no_arguments(argv) -> None:
  """Scripts that take only flags: a stray word is a usage error (one line, exit 2)."""
  if len(argv) > 1:
    raise errors.UsageError(f"Unexpected arguments: {argv[1:]} (every option is a --flag; "
                            "see --help).")


_HELP_FLAGS = ("-?", "-h", "--help", "--helpshort", "--helpfull", "--helpxml")


def _parse_flags(argv):
  """absl's flag parsing with its errors in the zoo's form: one line (a missing required
  flag, an unknown flag with absl's closest names, a value of the wrong type), exit status 2,
  instead of absl's "FATAL Flags parsing error" and a second line about --helpshort."""
  try:
    return absl_flags.FLAGS(argv)
  except SystemExit as e:
    # absl exits with status 1 after printing the help it was asked for: no failure.
    if e.code == 1 and any(a.split("=")[0] in _HELP_FLAGS for a in argv[1:]):
      sys.exit(0)
    raise
  except absl_flags.Error as e:
    message = " ".join(str(e).split())
    # absl names the unset flags first ("flag --model=None: ..."); the rest says it again.
    message = re.sub(r"^flags? (\S+=None(, )?)+: ", "", message)
    message = message.replace("must have a value other than None", "must be given")
    message = re.sub(r"Did you mean: (.+?) \?",
                     lambda m: "Did you mean --" + " or --".join(m.group(1).split(", ")) + "?",
                     message)
    print(f"error: {message.rstrip('.')} (see --help).", file=sys.stderr)
    sys.exit(2)


def run(main) -> None:
  """`absl.app.run(main)` with the zoo's logging and its one-line errors.

  A `zoo.errors.ZooError` (a mistake in what the user gave: a flag value, a file, a
  dataset) prints as `error: <message>`, exit status 2 for a `UsageError` and 1 otherwise;
  so do absl's flag-parsing errors, with status 2 (`_parse_flags`). Ctrl-C exits with
  status 130 and the message of the `KeyboardInterrupt`. Every other exception is a bug and
  keeps its traceback.
  """

  # absl's --help prints the docstring and key flags of the program it was started as
  # (`sys.argv[0]`): a console script's module has no docstring and defines no flag, and
  # `scripts/*.py` only import their command. Both show the command module's.
  command = sys.modules.get(main.__module__)
  if command is not None and command.__doc__:
    sys.modules["__main__"].__doc__ = command.__doc__
  for flag in absl_flags.FLAGS.get_key_flags_for_module(main.__module__):
    absl_flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)

  def _main(argv):
    _configure_logging()
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") != "0":  # 0: the user asked to see everything.
      _filter_native_stderr()
    try:
      status = main(argv)
      # Python's last garbage collection, as it exits, walks every object TensorFlow and
      # Keras made: 0.7 s of every command on a 2-core CPU. Frozen objects are skipped;
      # the memory goes back to the system all the same. Only after a command that ended
      # well: its files and event writers are closed, while an interrupted one may still
      # hold writers that only their finalizers flush.
      gc.freeze()
      return status
    except KeyboardInterrupt as e:
      print(f"\n{str(e) or 'interrupted'}", file=sys.stderr)
      sys.exit(130)  # 128 + SIGINT, as shells report it.
    except errors.ZooError as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2 if isinstance(e, errors.UsageError) else 1)

  app.run(_main, flags_parser=_parse_flags)


try:
  quiet_tensorflow_import()
except KeyboardInterrupt:
  sys.exit(130)  # Ctrl-C while TensorFlow loads: nothing started, nothing to say.
