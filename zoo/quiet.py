"""TensorFlow imported without its start-up lines (oneDNN, cudart, CPU features).

Used by the command line (`zoo.cli`) and by the apps' doors (`zoo.load`, `zoo.connect`) when
they are the first to import TensorFlow, so a plain `import zoo; zoo.load(...)` prints
nothing but what the zoo says. Standard library only: it must run before TensorFlow loads.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

# Lines TensorFlow writes to the stderr file descriptor while it loads, before its logging
# is initialized (so `TF_CPP_MIN_LOG_LEVEL` does not reach them): the same INFO block once
# per shared library it loads, and on machines without an NVIDIA driver the error of a
# CUDA probe that cannot succeed. They say nothing a user can act on.
_STARTUP_NOISE = (
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called",
    r"^I\d{4} ",  # INFO lines of TensorFlow's C++ logging.
    r"^To enable the following instructions: .* rebuild TensorFlow",
)
_NO_DRIVER_NOISE = r"failed call to cuInit: .*(UNKNOWN ERROR \(303\)|CUDA_ERROR_NO_DEVICE)"


def _is_noise(line: str, no_gpu_driver: bool) -> bool:
  if any(re.search(p, line) for p in _STARTUP_NOISE):
    return True
  return no_gpu_driver and re.search(_NO_DRIVER_NOISE, line) is not None


@contextlib.contextmanager
def _filtered_stderr(no_gpu_driver: bool):
  """Sends file descriptor 2 to a temporary file, then replays every line but the noise."""
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile(mode="w+b") as capture:
    os.dup2(capture.fileno(), 2)
    try:
      yield
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      capture.seek(0)
      for raw in capture:
        line = raw.decode("utf-8", "replace")
        if not _is_noise(line, no_gpu_driver):
          sys.stderr.write(line)
      sys.stderr.flush()


def quiet_tensorflow_import() -> None:
  """Imports TensorFlow and probes its devices with the start-up noise filtered out.

  Real errors still print, and so do Python warnings. `TF_CPP_MIN_LOG_LEVEL` defaults to
  2: no INFO or WARNING lines from TensorFlow's C++ runtime afterwards (its warnings are
  for TensorFlow's developers, e.g. "Local rendezvous is aborting" each time a corrupt
  image fails to decode, which the zoo reports per file itself). Set it to 0 to see
  everything, which also turns this filter off.
  """
  if "tensorflow" in sys.modules:  # Already loaded: its start-up lines are past.
    return
  if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
    import tensorflow  # noqa: F401  pylint: disable=unused-import
    return
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  no_gpu_driver = not os.path.exists("/proc/driver/nvidia")
  with _filtered_stderr(no_gpu_driver):
    import tensorflow as tf
    # The CUDA probe (and its error on machines without a driver) runs on first use.
    tf.config.list_physical_devices("GPU")
