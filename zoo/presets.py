"""The zoo's shipped models by name: presets, fetched into one cache folder and verified.

  path = presets.resolve("mnist_cnn")      # its newest version: ZOO_HOME/presets/mnist_cnn/4
  path = presets.resolve("mnist_cnn:3")    # a version
  presets.model_root("mnist_cnn")          # ZOO_HOME/presets/mnist_cnn (a server's base path)
  presets.names()                          # every preset, as the manifest lists them

A preset is one exported version (`<name>/<version>/` in TensorFlow Serving's layout, as in
the repository's `saved_models/`) and the manifest `zoo/presets.json` says what it holds:
every file with its size and sha256, the task, and the headline figure of its model card
(`scripts/make_presets.py` writes it from `saved_models/`; a test checks it is current).

Resolving a name copies the version into the cache, `ZOO_HOME/presets/<name>/<version>/`
(`ZOO_HOME` defaults to `$XDG_CACHE_HOME/zoo`, else `~/.cache/zoo`): each file is streamed
from the first source that has it, its sha256 checked, and the version renamed into place
only when every file matched, so a cache never holds half a version. A cached version is
checked again, file by file, each time it is resolved: a file changed since (a disk error,
an edit) is fetched again, with a warning. Sources, in order:
  1. the files packaged in the wheel (`zoo/_shipped/`, copied there by `setup.py`);
  2. the checkout's `saved_models/` beside the package (a clone, an editable install);
  3. `ZOO_PRESETS_URL`, a base URL (`https://...`, `http://...`, `file:///...`) under which
     `<name>/<version>/<file>` is fetched: for versions a wheel leaves out.
No step needs the network unless the first two lack the version and `ZOO_PRESETS_URL` is set.

This module is on the apps' floor: no TensorFlow, no Keras.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from typing import Optional

from zoo import errors

log = logging.getLogger("zoo")

_PACKAGE = os.path.dirname(os.path.abspath(__file__))
MANIFEST = os.path.join(_PACKAGE, "presets.json")
PACKAGED = os.path.join(_PACKAGE, "_shipped")
CHECKOUT = os.path.join(os.path.dirname(_PACKAGE), "saved_models")
URL_VARIABLE = "ZOO_PRESETS_URL"
# How long one download may wait for the server before it is given up (seconds) ...
DOWNLOAD_TIMEOUT_S = 30
# ... and how long one file may take in all: this many seconds, plus one for every
# MIN_RATE_BYTES_S bytes the manifest gives it (a server trickling bytes is given up).
DOWNLOAD_DEADLINE_S = 60
MIN_RATE_BYTES_S = 100_000
# A `.tmp-*` folder beside the versions untouched this long is left from a killed fetch
# and removed (a live fetch writes at least every DOWNLOAD_TIMEOUT_S seconds).
STALE_TMP_S = 3600
_SPEC = re.compile(r"^([a-z][a-z0-9_]*)(?::(\d+))?$")
_CHUNK = 1 << 20


def home() -> str:
  """The zoo's cache folder: `ZOO_HOME`, else `$XDG_CACHE_HOME/zoo`, else `~/.cache/zoo`."""
  if os.environ.get("ZOO_HOME"):
    return os.path.abspath(os.path.expanduser(os.environ["ZOO_HOME"]))
  cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(cache, "zoo")


def manifest() -> dict:
  """The manifest: `{"presets": {name: {"task", "latest", "versions": {version: {...}}}}}`."""
  with open(MANIFEST) as f:
    return json.load(f)


def names() -> list[str]:
  """Every preset's name, sorted."""
  return sorted(manifest()["presets"])


def looks_like_spec(value: str) -> bool:
  """`value` has a preset's form (`name` or `name:version`) and is no existing path."""
  return bool(_SPEC.match(value)) and not os.path.exists(value)


def parse(spec: str) -> tuple[str, Optional[int]]:
  """`"mnist_cnn:3"` -> `("mnist_cnn", 3)`; `"mnist_cnn"` -> `("mnist_cnn", None)`."""
  match = _SPEC.match(spec)
  if not match:
    raise errors.InvalidValueError(
        f"Invalid value for preset: {spec!r}; expected NAME or NAME:VERSION, e.g. "
        "'mnist_cnn' or 'mnist_cnn:3'.")
  return match.group(1), int(match.group(2)) if match.group(2) else None


def entry(spec: str) -> tuple[str, int, dict]:
  """`(name, version, the manifest's entry of that version)`; the newest without a version.

  Raises:
    zoo.errors.NotFoundError: no such preset, or no such version of it.
  """
  name, version = parse(spec)
  presets = manifest()["presets"]
  if name not in presets:
    raise errors.NotFoundError(
        f"Invalid value for preset: {spec!r} is not a file, a directory or a preset of this "
        f"zoo; presets: {', '.join(sorted(presets))}." + errors.did_you_mean(name, presets))
  preset = presets[name]
  version = preset["latest"] if version is None else version
  if str(version) not in preset["versions"]:
    raise errors.NotFoundError(
        f"Invalid value for preset: {spec!r}; {name} has versions "
        f"{', '.join(sorted(preset['versions'], key=int))} (newest {preset['latest']}).")
  return name, version, preset["versions"][str(version)]


def model_root(name: str) -> str:
  """The cache folder of a preset's versions (`ZOO_HOME/presets/<name>`)."""
  return os.path.join(home(), "presets", name)


def sha256(path: str) -> str:
  """The hex sha256 of a file, read in 1 MiB chunks."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(_CHUNK), b""):
      digest.update(chunk)
  return digest.hexdigest()


def _problems(directory: str, files: dict) -> list[str]:
  """What differs between `directory` and the manifest's `files` (empty: all match)."""
  problems = []
  for relative, expected in files.items():
    path = os.path.join(directory, relative)
    if not os.path.isfile(path):
      problems.append(f"{relative} is missing")
    elif os.path.getsize(path) != expected["bytes"]:
      problems.append(f"{relative} has {os.path.getsize(path)} bytes, expected "
                      f"{expected['bytes']}")
    elif sha256(path) != expected["sha256"]:
      problems.append(f"{relative} has sha256 {sha256(path)[:12]}..., expected "
                      f"{expected['sha256'][:12]}...")
  return problems


def sources() -> list[str]:
  """Where versions are fetched from, in order (see the module docstring)."""
  found = [d for d in (PACKAGED, CHECKOUT) if os.path.isdir(d)]
  if os.environ.get(URL_VARIABLE):
    found.append(os.environ[URL_VARIABLE].rstrip("/"))
  return found


def _is_url(source: str) -> bool:
  return re.match(r"^[a-z][a-z0-9+.-]*://", source) is not None


def _clean(text, limit: int = 120) -> str:
  """A server's or library's text made safe to print on one line: control characters
  (a reason phrase can carry terminal escapes) replaced, at most `limit` characters."""
  text = "".join(c if c.isprintable() else "?" for c in str(text))
  return text if len(text) <= limit else text[:limit] + "..."


def _open(source: str, name: str, version: int, relative: str):
  """A readable binary stream of one file of a version at `source`."""
  if not _is_url(source):
    return open(os.path.join(source, name, str(version), relative), "rb")
  url = f"{source}/{name}/{version}/{urllib.request.pathname2url(relative)}"
  try:
    return urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S)
  except urllib.error.HTTPError as e:
    raise OSError(f"{_clean(url)}: HTTP {e.code} {_clean(e.reason, 60)}") from None
  except (urllib.error.URLError, TimeoutError) as e:
    raise OSError(f"{_clean(url)}: {_clean(getattr(e, 'reason', e), 80)} (offline?)") from None
  except (http.client.HTTPException, OSError, ValueError) as e:
    raise OSError(f"{_clean(url)}: {type(e).__name__} {_clean(e, 80)}") from None


def _copy_from(source: str, name: str, version: int, files: dict, directory: str) -> None:
  """Streams every file of the version from `source` into `directory`, checking each: never
  more than the manifest's byte count, never longer than the file's deadline."""
  for relative, expected in files.items():
    path = os.path.join(directory, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    digest, size = hashlib.sha256(), 0
    allowed_s = DOWNLOAD_DEADLINE_S + expected["bytes"] / MIN_RATE_BYTES_S
    deadline = time.monotonic() + allowed_s
    try:
      with _open(source, name, version, relative) as stream, open(path, "wb") as out:
        # read1: what has arrived (at most a chunk), so the deadline is checked between
        # the server's sends, not after a whole chunk a trickle would take hours to fill.
        read = getattr(stream, "read1", stream.read)
        while True:
          chunk = read(min(_CHUNK, expected["bytes"] + 1 - size))
          if not chunk:
            break
          size += len(chunk)
          if size > expected["bytes"]:
            raise OSError(f"{relative} from {_clean(source)} is longer than the manifest's "
                          f"{expected['bytes']:,} bytes")
          if time.monotonic() > deadline:
            raise OSError(f"{relative} from {_clean(source)} took over {allowed_s:.0f} s "
                          f"(at least {MIN_RATE_BYTES_S:,} bytes/s expected)")
          digest.update(chunk)
          out.write(chunk)
    except (http.client.HTTPException, ValueError) as e:  # A broken response, mid-file.
      raise OSError(f"{relative} from {_clean(source)}: {type(e).__name__}") from None
    except TimeoutError:
      raise OSError(f"{relative} from {_clean(source)}: no data for {DOWNLOAD_TIMEOUT_S} s "
                    "(offline?)") from None
    if size < expected["bytes"]:
      raise OSError(f"{relative} from {_clean(source)} ended after {size:,} of the "
                    f"manifest's {expected['bytes']:,} bytes")
    if digest.hexdigest() != expected["sha256"]:
      raise OSError(f"{relative} from {_clean(source)} has sha256 {digest.hexdigest()[:12]}..., "
                    f"expected {expected['sha256'][:12]}... (corrupted)")


def _remove_stale(parent: str) -> None:
  """Removes `.tmp-*` folders in `parent` left by a fetch that was killed."""
  now = time.time()
  for entry_ in os.scandir(parent):
    if not (entry_.name.startswith(".tmp-") and entry_.is_dir(follow_symlinks=False)):
      continue
    try:
      newest = max([entry_.stat(follow_symlinks=False).st_mtime] + [
          os.lstat(os.path.join(folder, f)).st_mtime
          for folder, _, files in os.walk(entry_.path) for f in files])
    except OSError:
      continue
    if now - newest > STALE_TMP_S:
      shutil.rmtree(entry_.path, ignore_errors=True)


def _fetch(name: str, version: int, files: dict, target: str) -> None:
  """Fills `target` (absent) with the version from the first source that has it whole."""
  parent = os.path.dirname(target)
  os.makedirs(parent, exist_ok=True)
  _remove_stale(parent)
  tried = []
  for source in sources():
    tmp = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=parent)
    try:
      _copy_from(source, name, version, files, tmp)
      os.chmod(tmp, 0o755)  # mkdtemp makes it owner-only; a server may run as another user.
      try:
        os.rename(tmp, target)  # Atomic: the version appears whole or not at all.
      except OSError:  # Another process put it there first; theirs is checked below.
        shutil.rmtree(tmp, ignore_errors=True)
      return
    except OSError as e:
      shutil.rmtree(tmp, ignore_errors=True)
      # Ours (no errno) name the file and the source; a system error gets the source.
      tried.append(str(e) if _is_url(source) or not e.errno
                   else f"{source}: {os.strerror(e.errno)}")
    except BaseException:
      shutil.rmtree(tmp, ignore_errors=True)
      raise
  hint = ("" if os.environ.get(URL_VARIABLE) else
          f"; set {URL_VARIABLE} to a base URL holding <name>/<version>/<file>")
  raise errors.NotFoundError(
      f"Preset {name}:{version} could not be fetched (tried: {'; '.join(tried) or 'no source'})"
      f"{hint}.")


def resolve(spec: str) -> str:
  """The verified cache folder of a preset version, fetched first if needed.

  Args:
    spec: `name` (its newest version) or `name:version`.

  Returns:
    `ZOO_HOME/presets/<name>/<version>`, every file of which matches the manifest.

  Raises:
    zoo.errors.NotFoundError: an unknown preset or version, or no source has it whole (the
      message names each source and what was wrong: missing, offline, a sha256 mismatch).
  """
  name, version, listed = entry(spec)
  target = os.path.join(model_root(name), str(version))
  if os.path.isdir(target):
    problems = _problems(target, listed["files"])
    if not problems:
      return target
    log.warning("Cached preset %s:%d in %s is damaged (%s); fetching it again.", name,
                version, target, problems[0])
    shutil.rmtree(target)
  _fetch(name, version, listed["files"], target)
  problems = _problems(target, listed["files"])
  if problems:  # Only if another process wrote a bad copy at the same moment.
    raise errors.NotFoundError(f"Preset {name}:{version} in {target} is damaged: "
                               f"{problems[0]}; delete the folder and try again.")
  return target


def resolve_all(name: str) -> str:
  """Every version of a preset fetched into the cache; returns `model_root(name)`."""
  entry(name)
  for version in manifest()["presets"][name]["versions"]:
    resolve(f"{name}:{version}")
  return model_root(name)


# --- Writing the manifest (scripts/make_presets.py) --------------------------------------

def _task(card: dict) -> str:
  # Cards written before the task seam say `image_classification` (`zoo.tasks` reads both).
  return {"image_classification": "classification"}.get(card["task"], card["task"])


# The headline of a version's card, by task: what `python -m zoo --list` shows.
def _headline(card: dict) -> str:
  metrics, task = card["metrics"], _task(card)
  dataset = card.get("training", {}).get("config", {}).get("dataset", "")
  if task == "classification":
    return (f"{dataset} {metrics['split']} accuracy {100 * metrics['keras_accuracy']:.2f} % "
            f"({metrics['num_examples']} images)")
  if task == "generation":
    text = (f"FID {metrics['fid']:.2f} ({metrics['num_samples']} samples vs {dataset} "
            f"{metrics['split']})")
    if "label_agreement_min" in metrics:
      text += f", requested digit >= {100 * metrics['label_agreement_min']:.1f} %"
    return text
  if task == "detection":
    return (f"{dataset} {metrics['split']} mAP@[.5:.95] {metrics['map']:.3f}, mAP@.5 "
            f"{metrics['map_50']:.3f} ({metrics['num_images']} images)")
  return ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, float))


def build_manifest(saved_models: str) -> dict:
  """The manifest of every `<name>/<version>/` under `saved_models` (what ships)."""
  presets = {}
  for name in sorted(os.listdir(saved_models)):
    root = os.path.join(saved_models, name)
    versions = sorted((int(v) for v in os.listdir(root) if v.isdigit()), reverse=True)
    if not versions:
      continue
    listed = {}
    for version in versions:
      directory = os.path.join(root, str(version))
      with open(os.path.join(directory, "model_card.json")) as f:
        card = json.load(f)
      files = {}
      for folder, _, filenames in sorted(os.walk(directory)):
        for filename in sorted(filenames):
          path = os.path.join(folder, filename)
          files[os.path.relpath(path, directory).replace(os.sep, "/")] = {
              "bytes": os.path.getsize(path), "sha256": sha256(path)}
      listed[str(version)] = {"task": _task(card), "headline": _headline(card),
                              "bytes": sum(f["bytes"] for f in files.values()),
                              "files": files}
    presets[name] = {"latest": versions[0], "versions": listed}
  return {"format": 1, "presets": presets}


def write_manifest(saved_models: str, path: str = MANIFEST) -> dict:
  """Writes `build_manifest(saved_models)` to `path` (the package's manifest)."""
  built = build_manifest(saved_models)
  with open(path, "w") as f:
    json.dump(built, f, indent=1, sort_keys=True)
    f.write("\n")
  return built


def table() -> str:
  """Every preset version as the lines `python -m zoo --list` prints: a name alone loads
  the newest version, `name:version` an older one."""
  rows = [("preset", "task", "size", "headline")]
  for name, preset in sorted(manifest()["presets"].items()):
    for version in sorted(preset["versions"], key=int, reverse=True):
      listed = preset["versions"][version]
      label = f"{name}:{version}" + (f" = {name}" if int(version) == preset["latest"] else "")
      rows.append((label, listed["task"], f"{listed['bytes'] / 1e6:.1f} MB", listed["headline"]))
  widths = [max(len(r[i]) for r in rows) for i in range(3)]
  return "\n".join("  ".join([*(c.ljust(w) for c, w in zip(r[:3], widths)), r[3]]).rstrip()
                   for r in rows)
