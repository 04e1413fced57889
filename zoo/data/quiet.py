"""Quiet TFDS preparation, shared by every dataset the zoo prepares from local files: its
report dropped, and where the data goes said in the user's own terms."""

from __future__ import annotations

import contextlib
import io
import os

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


def shown_path(path: str) -> str:
  """`path` as the "Preparing ... into ..." lines show it: under the home folder as `~/...`
  (TFDS's default data_dir, `~/tensorflow_datasets`, is how users and the docs name it)."""
  path = os.fspath(path)
  home = os.path.expanduser("~")
  if home not in ("", "/", "~") and (path == home or path.startswith(home + os.sep)):
    return "~" + path[len(home):]
  return path
