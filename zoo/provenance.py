"""What produced a run or an exported model: library versions, git commit, machine."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import subprocess

_PACKAGES = ("tensorflow", "keras", "tensorflow-datasets", "numpy", "absl-py", "zoo")


def package_versions() -> dict[str, str]:
  versions = {"python": platform.python_version()}
  for name in _PACKAGES:
    try:
      versions[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      versions[name] = "not installed"
  return versions


def git_commit() -> str:
  """The commit of the zoo checkout this code runs from, `+dirty` if modified; or 'unknown'."""
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  try:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                            text=True, timeout=10, check=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                           cwd=repo, capture_output=True, text=True, timeout=10).stdout.strip()
    return commit + ("+dirty" if dirty else "")
  except (OSError, subprocess.SubprocessError):
    return "unknown"


def describe() -> dict:
  """A provenance record: versions, commit, machine and UTC time."""
  return {
      "versions": package_versions(),
      "git_commit": git_commit(),
      "machine": {"platform": platform.platform(), "processor": platform.machine(),
                  "cpu_count": os.cpu_count()},
      "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
  }


def write_json(path: str, obj) -> None:
  """Writes a record as JSON atomically: a crash never leaves a truncated file."""
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=2, sort_keys=True)
  os.replace(tmp, path)
