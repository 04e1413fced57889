"""Quiet TFDS preparation, shared by every dataset the zoo prepares from local files."""

from __future__ import annotations

import contextlib
import io

import tensorflow_datasets as tfds


@contextlib.contextmanager
def quiet_tfds():
  """TFDS reports reading local files as a download ("Downloading and preparing dataset
  Unknown size", MiB/s bars). Nothing is downloaded where this is used: its report is
  dropped."""
  tfds.display_progress_bar(False)
  try:
    with contextlib.redirect_stdout(io.StringIO()):
      yield
  finally:
    tfds.display_progress_bar(True)
