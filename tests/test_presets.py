"""The shipped models by name (`zoo.presets`): the manifest, the cache, checksums, the three
sources (package data, the checkout, a download URL served here on loopback) and the one
line each failure prints. `zoo.load` by name is checked at the end; the installed package
in tests/test_installed.py.
"""

import functools
import http.server
import logging
import os
import re
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

import zoo
from tests.conftest import REPO
from zoo import errors, presets

SMALL = "mnist_cnn:2"  # The smallest shipped version (0.7 MB): cheap to copy.


@pytest.fixture
def home(tmp_path, monkeypatch):
  """An empty cache, and the checkout's saved_models/ as the only source."""
  monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
  monkeypatch.delenv(presets.URL_VARIABLE, raising=False)
  monkeypatch.setattr(presets, "PACKAGED", str(tmp_path / "no-package-data"))
  monkeypatch.setattr(presets, "CHECKOUT", str(REPO / "saved_models"))
  return tmp_path / "home"


def _one_line(error) -> str:
  message = str(error)
  assert "\n" not in message, message
  return message


def test_the_committed_manifest_lists_exactly_what_ships():
  assert presets.build_manifest(str(REPO / "saved_models")) == presets.manifest(), (
      "zoo/presets.json is out of date: run python scripts/make_presets.py")
  listed = presets.manifest()["presets"]
  assert sorted(listed) == sorted(os.listdir(REPO / "saved_models"))
  for name, preset in listed.items():
    assert str(preset["latest"]) == max(preset["versions"], key=int)
    for version in preset["versions"].values():
      assert {"saved_model.pb", "model_card.json"} <= set(version["files"])
      assert version["headline"] and version["task"] in {"classification", "generation",
                                                         "detection"}


def test_home_follows_zoo_home_then_xdg(monkeypatch, tmp_path):
  monkeypatch.setenv("ZOO_HOME", str(tmp_path / "z"))
  assert presets.home() == str(tmp_path / "z")
  monkeypatch.delenv("ZOO_HOME")
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
  assert presets.home() == str(tmp_path / "xdg" / "zoo")


def test_resolve_copies_a_version_into_the_cache_once_and_checks_it(home):
  path = presets.resolve(SMALL)
  assert path == str(home / "presets" / "mnist_cnn" / "2")
  files = presets.entry(SMALL)[2]["files"]
  assert sorted(files) == sorted(
      os.path.relpath(os.path.join(d, f), path).replace(os.sep, "/")
      for d, _, fs in os.walk(path) for f in fs)
  stamp = os.stat(os.path.join(path, "saved_model.pb")).st_mtime_ns
  assert presets.resolve(SMALL) == path  # Cached: not copied again.
  assert os.stat(os.path.join(path, "saved_model.pb")).st_mtime_ns == stamp
  assert [p for p in os.listdir(home / "presets" / "mnist_cnn") if p.startswith(".")] == []


def test_a_damaged_cached_file_is_fetched_again_with_a_warning(home, caplog):
  path = presets.resolve(SMALL)
  with open(os.path.join(path, "model_float32.tflite"), "r+b") as f:
    f.write(b"\0\0\0\0")
  with caplog.at_level(logging.WARNING, logger="zoo"):
    assert presets.resolve(SMALL) == path
  assert re.search(r"Cached preset mnist_cnn:2 .* is damaged \(model_float32\.tflite has "
                   r"sha256 \w+\.\.\., expected \w+\.\.\.\); fetching it again", caplog.text)
  assert presets.sha256(os.path.join(path, "model_float32.tflite")) == (
      presets.entry(SMALL)[2]["files"]["model_float32.tflite"]["sha256"])


def test_a_corrupted_source_is_named_in_one_line_and_nothing_is_cached(home, tmp_path,
                                                                         monkeypatch):
  source = tmp_path / "source"
  shutil.copytree(REPO / "saved_models" / "mnist_cnn" / "2", source / "mnist_cnn" / "2")
  labels = source / "mnist_cnn" / "2" / "labels.txt"
  labels.write_text("x" + labels.read_text()[1:])  # Same size, another sha256.
  monkeypatch.setattr(presets, "CHECKOUT", str(source))
  with pytest.raises(errors.NotFoundError) as raised:
    presets.resolve(SMALL)
  assert re.fullmatch(r"Preset mnist_cnn:2 could not be fetched \(tried: labels\.txt from "
                      r".*source has sha256 \w+\.\.\., expected \w+\.\.\. \(corrupted\)\); "
                      r"set ZOO_PRESETS_URL .*\.", _one_line(raised.value))
  assert os.listdir(home / "presets" / "mnist_cnn") == []  # No half version, no temp folder.


def test_unknown_names_and_versions_each_get_one_line(home):
  with pytest.raises(errors.NotFoundError) as raised:
    presets.resolve("mnist_cn")
  assert re.fullmatch(r"Invalid value for preset: 'mnist_cn' is not a file, a directory or a "
                      r"preset of this zoo; presets: cdcgan_mnist, .*mnist_mlp\. Did you mean "
                      r"'mnist_cnn'\?", _one_line(raised.value))
  with pytest.raises(errors.NotFoundError) as raised:
    presets.resolve("mnist_cnn:9")
  assert _one_line(raised.value) == ("Invalid value for preset: 'mnist_cnn:9'; mnist_cnn has "
                                     "versions 2, 3, 4 (newest 4).")
  with pytest.raises(errors.InvalidValueError, match="expected NAME or NAME:VERSION"):
    presets.resolve("MNIST CNN")


def test_a_version_no_source_has_says_where_it_looked(home, tmp_path, monkeypatch):
  monkeypatch.setattr(presets, "CHECKOUT", str(tmp_path / "no-checkout"))
  with pytest.raises(errors.NotFoundError) as raised:
    presets.resolve(SMALL)
  assert _one_line(raised.value) == ("Preset mnist_cnn:2 could not be fetched (tried: no "
                                     "source); set ZOO_PRESETS_URL to a base URL holding "
                                     "<name>/<version>/<file>.")


@pytest.fixture
def http_source(tmp_path):
  """A local HTTP server (loopback) over a folder holding `mnist_cnn/2/`; yields
  `(base_url, folder)`."""
  folder = tmp_path / "served"
  shutil.copytree(REPO / "saved_models" / "mnist_cnn" / "2", folder / "mnist_cnn" / "2")
  handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
  handler.log_message = lambda *args: None
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  yield f"http://127.0.0.1:{server.server_address[1]}/", folder
  server.shutdown()
  server.server_close()


def test_download_source_over_http(home, tmp_path, monkeypatch, http_source):
  url, folder = http_source
  monkeypatch.setattr(presets, "CHECKOUT", str(tmp_path / "no-checkout"))
  monkeypatch.setenv(presets.URL_VARIABLE, url)
  path = presets.resolve(SMALL)
  assert presets.sha256(os.path.join(path, "variables", "variables.index")) == (
      presets.entry(SMALL)[2]["files"]["variables/variables.index"]["sha256"])
  # A file the server changes is refused, and the cached copy is still the good one.
  shutil.rmtree(path)
  served = folder / "mnist_cnn" / "2" / "model_int8.tflite"
  served.write_bytes(b"\0" * served.stat().st_size)  # Same size, another sha256.
  with pytest.raises(errors.NotFoundError) as raised:
    presets.resolve(SMALL)
  assert re.search(r"model_int8\.tflite from http://127\.0\.0\.1:\d+ has sha256 .*\(corrupted\)",
                   _one_line(raised.value))
  assert not os.path.exists(path)
  # A file the server does not have: its HTTP status.
  (folder / "mnist_cnn" / "2" / "model_int8.tflite").unlink()
  with pytest.raises(errors.NotFoundError, match=r"model_int8\.tflite: HTTP 404"):
    presets.resolve(SMALL)


def test_an_unreachable_download_source_fails_fast(home, tmp_path, monkeypatch):
  import socket
  with socket.socket() as s:  # A loopback port with nothing listening: refused at once.
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  monkeypatch.setattr(presets, "CHECKOUT", str(tmp_path / "no-checkout"))
  monkeypatch.setenv(presets.URL_VARIABLE, f"http://127.0.0.1:{port}")
  with pytest.raises(errors.NotFoundError) as raised:
    presets.resolve(SMALL)
  assert re.search(r"http://127\.0\.0\.1:\d+/mnist_cnn/2/\S+: .*refused.* \(offline\?\)",
                   _one_line(raised.value))


def test_package_data_comes_before_the_checkout(home, tmp_path, monkeypatch):
  packaged = tmp_path / "_shipped"
  shutil.copytree(REPO / "saved_models" / "mnist_cnn" / "2", packaged / "mnist_cnn" / "2")
  monkeypatch.setattr(presets, "PACKAGED", str(packaged))
  monkeypatch.setattr(presets, "CHECKOUT", str(tmp_path / "no-checkout"))
  assert presets.sources() == [str(packaged)]
  assert os.path.isdir(presets.resolve(SMALL))


def test_zoo_list_and_unknown_commands():
  env = dict(os.environ)
  proc = subprocess.run([sys.executable, "-m", "zoo", "--list"], capture_output=True,
                        text=True, timeout=60, cwd="/", env=env)
  assert proc.returncode == 0, proc.stderr
  lines = proc.stdout.splitlines()
  assert lines[0].split() == ["preset", "task", "size", "headline"]
  for name, preset in presets.manifest()["presets"].items():
    latest = preset["versions"][str(preset["latest"])]
    assert any(line.startswith(f"{name}:{preset['latest']} = {name} ")
               and line.endswith(latest["headline"]) for line in lines), (name, proc.stdout)
  listing = subprocess.run(  # Listing imports no TensorFlow: it answers at once.
      [sys.executable, "-c", "import sys; from zoo import __main__ as m; m.main(['--list']); "
       "print('tensorflow' in sys.modules)"], capture_output=True, text=True, timeout=60)
  assert listing.stdout.splitlines()[-1] == "False", listing.stderr
  proc = subprocess.run([sys.executable, "-m", "zoo", "trian"], capture_output=True,
                        text=True, timeout=60, env=env)
  assert proc.returncode == 2
  assert re.fullmatch(r"error: 'trian' is not a zoo command; commands: train, .*\. Did you "
                      r"mean 'train'\?\n", proc.stderr), proc.stderr


def test_zoo_load_by_name_and_version(home):
  newest = zoo.load("mnist_cnn")
  assert newest.source["version"] == presets.manifest()["presets"]["mnist_cnn"]["latest"]
  assert newest.source["path"].startswith(str(home))
  older = zoo.load(SMALL)
  assert older.source["version"] == 2
  digits = np.zeros((2, 28, 28, 1), np.uint8)
  assert older.predict(digits)["probabilities"].shape == (2, 10)
  with pytest.raises(errors.NotFoundError, match="Did you mean 'mnist_cnn'"):
    zoo.load("mnist_cn")


class _Hostile(http.server.BaseHTTPRequestHandler):
  """A download source that misbehaves as `mode` says (set by each test)."""
  mode = "endless"

  def log_message(self, *args):
    pass

  def do_GET(self):
    import time
    if self.mode == "reason":  # A reason phrase carrying a terminal escape.
      self.send_response(500, "Oops\x1b[2J\x1b[31m wiped")
      self.end_headers()
      return
    self.send_response(200)
    if self.mode == "broken":
      self.send_header("Content-Length", "100000")
      self.end_headers()
      self.wfile.write(b"\0" * 10)  # Then the connection closes.
      return
    self.end_headers()
    try:
      if self.mode == "endless":
        while True:
          self.wfile.write(b"\0" * 65536)
      while True:  # "trickle": a byte every 0.2 s, forever.
        self.wfile.write(b"\0")
        self.wfile.flush()
        time.sleep(0.2)
    except OSError:
      pass  # The client gave up: what it should do.


@pytest.fixture
def hostile_source(home, tmp_path, monkeypatch):
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
  server.daemon_threads = True
  threading.Thread(target=server.serve_forever, daemon=True).start()
  monkeypatch.setattr(presets, "CHECKOUT", str(tmp_path / "no-checkout"))
  monkeypatch.setenv(presets.URL_VARIABLE, f"http://127.0.0.1:{server.server_address[1]}")
  yield
  server.shutdown()
  server.server_close()


@pytest.mark.parametrize("mode, message", [
    ("endless", r"from http://127\.0\.0\.1:\d+ is longer than the manifest's [\d,]+ bytes"),
    ("trickle", r"from http://127\.0\.0\.1:\d+ took over 1 s \(at least"),
    ("reason", r": HTTP 500 Oops\?\[2J\?\[31m wiped"),
    ("broken", r"from http://127\.0\.0\.1:\d+ ended after 10 of the manifest's"),
])
def test_a_hostile_download_source_is_one_line_in_bounded_bytes_and_time(
    hostile_source, home, monkeypatch, mode, message):
  import time
  monkeypatch.setattr(_Hostile, "mode", mode)
  monkeypatch.setattr(presets, "DOWNLOAD_DEADLINE_S", 1)
  monkeypatch.setattr(presets, "MIN_RATE_BYTES_S", 10**12)
  monkeypatch.setattr(presets, "DOWNLOAD_TIMEOUT_S", 5)
  start = time.monotonic()
  with pytest.raises(errors.NotFoundError) as raised:
    presets.resolve(SMALL)
  assert time.monotonic() - start < 10
  line = _one_line(raised.value)
  assert re.search(message, line), line
  assert line.isprintable()
  root = presets.model_root("mnist_cnn")
  assert os.listdir(root) == []  # Nothing half-written stays.


def test_a_partial_folder_left_by_a_killed_fetch_is_cleaned(home):
  root = presets.model_root("mnist_cnn")
  stale, live = os.path.join(root, ".tmp-2-stale"), os.path.join(root, ".tmp-2-live")
  for folder in (stale, live):
    os.makedirs(os.path.join(folder, "variables"))
    open(os.path.join(folder, "variables", "part"), "wb").close()
  old = os.path.getmtime(stale) - presets.STALE_TMP_S - 60
  for path in (os.path.join(stale, "variables", "part"), os.path.join(stale, "variables"),
               stale):
    os.utime(path, (old, old))
  presets.resolve(SMALL)
  assert not os.path.exists(stale) and os.path.isdir(live)


def test_the_server_serves_only_the_versions_the_manifest_lists(home):
  from zoo.commands import serve
  from zoo.serving import repository
  presets.resolve_all("mnist_cnn")
  planted = os.path.join(presets.model_root("mnist_cnn"), "99")
  shutil.copytree(os.path.join(presets.model_root("mnist_cnn"), "2"), planted)
  listed = sorted(int(v) for v in presets.manifest()["presets"]["mnist_cnn"]["versions"])
  every = serve._preset_source("mnist_cnn", {}, every=True)
  newest = serve._preset_source("mnist_cnn", {"old": 2}, every=False)
  found = sorted(repository._version_folders(presets.model_root("mnist_cnn")))
  assert 99 in found
  assert sorted(every.policy.select(found)) == listed
  assert sorted(newest.policy.select(found)) == sorted({2, max(listed)})
