"""Serves exported models over TensorFlow Serving's REST and gRPC APIs, with a browser demo.

  pip install -e '.[serve]'
  zoo-serve                                  # the shipped models: REST :8501, gRPC :8500
  zoo-serve --model_name=mnist_cnn           # one shipped model (a preset), by name
  zoo-serve --model_base_path=saved_models   # every model in a folder of your own
  zoo-serve --model_name=photos --model_base_path=exports/image_classifier
  zoo-serve --model_config_file=models.config   # TF Serving's config format
  curl localhost:8501/v1/models/mnist_cnn                  # status
  curl localhost:8501/v1/models/mnist_cnn/metadata         # signatures
  curl -d '{"instances": [...]}' localhost:8501/v1/models/mnist_cnn:predict
  curl localhost:8501/monitoring/prometheus/metrics        # Prometheus
  open http://127.0.0.1:8501/                              # draw, generate, detect

Which models: TensorFlow Serving's `--model_config_file` (ModelServerConfig text format,
with version policies and labels) or `--model_name` + `--model_base_path` (one model, its
latest version, as TensorFlow Serving; a preset's name alone, without --model_base_path);
without either, every model folder under `--model_base_path` (`<name>/<version>/
saved_model.pb`) with all its versions, and without that the zoo's shipped models (every
version of every preset, or of those --models names, fetched into the cache, `zoo.presets`). The folders
are polled every --file_system_poll_wait_seconds: a new version is loaded and served, a
removed one unloaded, without a restart. Each SavedModel's own signatures are called: a
client written for TensorFlow Serving works unchanged, over REST or gRPC.
Binds 127.0.0.1 unless --host says otherwise; CORS is off unless --cors_origin names an
origin. Concurrent requests for one signature are batched whatever their protocol
(--enable_batching, on by default here; TensorFlow Serving's default is off). SIGTERM
drains: accepted requests are answered, then the process exits 0. See README.md, "Serving".
"""

from zoo import cli  # First: quiets TensorFlow's start-up.

import asyncio
import gc
import logging
import re
import sys

from absl import flags

from zoo import errors, presets
from zoo.serving import app as serving_app
from zoo.serving import repository as serving_repository

try:  # The `serve` extra: TF Serving's protos, Prometheus, uvicorn.
  from zoo.serving import config as serving_config
  from zoo.serving import metrics as serving_metrics
  from zoo.serving import runner
  _MISSING = None
except ImportError as e:  # main() says which package, and how to install it.
  _MISSING = e.name

_DEFAULTS = serving_app.ServerOptions()
flags.DEFINE_string("model_base_path", None, "Without --model_name: a directory "
                    "of <name>/<version>/ SavedModels, every version of every model served "
                    "(default: the zoo's shipped models, its presets). With --model_name: "
                    "that model's directory of <version>/ folders (TensorFlow Serving's "
                    "meaning; default: the preset of that name).")
flags.DEFINE_string("model_name", None, "Serve one model under this name from "
                    "--model_base_path (its latest version), as TensorFlow Serving does.")
flags.DEFINE_string("model_config_file", None, "TensorFlow Serving's ModelServerConfig in "
                    "text format: model names, base paths, version policies, labels.")
flags.DEFINE_list("models", [], "Serve only these model names (default: all).")
flags.DEFINE_string("host", "127.0.0.1", "Address to bind (0.0.0.0 exposes the server to "
                    "the network).")
flags.DEFINE_integer("port", 8501, "HTTP port (TensorFlow Serving's REST default); 0 picks "
                     "a free one, printed in the 'Serving ... on' line.")
flags.DEFINE_integer("grpc_port", 8500, "gRPC port (TensorFlow Serving's default); 0 turns "
                     "gRPC off, -1 picks a free one, printed in the 'Serving ... on' line.")
flags.DEFINE_float("file_system_poll_wait_seconds", 1.0, "Seconds between polls of the "
                   "model folders for new and removed versions; 0 reads them once, at start.")
flags.DEFINE_float("drain_seconds", 30.0, "On SIGTERM, how long accepted requests may take "
                   "to finish before the process exits, seconds.")
flags.DEFINE_bool("enable_batching", _DEFAULTS.enable_batching, "Gather concurrent "
                  "requests for one signature into one model call.")
flags.DEFINE_integer("max_batch_size", _DEFAULTS.max_batch_size, "Rows per batched model "
                     "call at most.")
flags.DEFINE_integer("batch_timeout_micros", _DEFAULTS.batch_timeout_micros, "Longest a "
                     "request waits for others to join its batch, microseconds.")
flags.DEFINE_integer("max_enqueued_batches", _DEFAULTS.max_enqueued_batches, "Bound of the "
                     "batching queue, in batches; past it requests get 503.")
flags.DEFINE_integer("num_threads", _DEFAULTS.num_threads, "Threads running model calls.")
flags.DEFINE_integer("max_body_bytes", _DEFAULTS.max_body_bytes, "Largest request body, "
                     "bytes (413 above).")
flags.DEFINE_integer("max_request_rows", _DEFAULTS.max_request_rows, "Most examples in one "
                     "request (400 above).")
flags.DEFINE_multi_string("cors_origin", [], "Allow browser pages from this origin (e.g. "
                          "http://localhost:3000) to call the API; repeatable.")
flags.DEFINE_multi_string("version_label", [], "NAME/LABEL=VERSION, e.g. "
                          "mnist_cnn/stable=3: answers /v1/models/NAME/labels/LABEL.")
flags.DEFINE_bool("demo", True, "Serve the browser demo at /.")
flags.DEFINE_bool("access_log", False, "Log every request (uvicorn's access log).")
FLAGS = flags.FLAGS
# The zoo's progress lines (zoo.cli prints them plainly); the root logger's INFO is silent.
log = logging.getLogger("zoo")

_LABEL = re.compile(r"^([^/]+)/([^=]+)=(\d+)$")


def _labels(values):
  labels = {}
  for value in values:
    match = _LABEL.match(value)
    if not match:
      raise errors.UsageError(f"Invalid value for --version_label: {value!r}; expected "
                              "NAME/LABEL=VERSION, e.g. mnist_cnn/stable=3.")
    name, label, version = match.groups()
    labels.setdefault(name, {})[label] = int(version)
  return labels


def _preset_source(name, labels, every: bool):
  """A preset served from the cache: only the versions its manifest lists (each fetched and
  checked), never another folder found there; `every` version, or its newest and those a
  label names."""
  presets.resolve_all(name)
  listed = presets.manifest()["presets"][name]
  versions = sorted(int(v) for v in listed["versions"])
  if not every:
    versions = sorted({listed["latest"], *(v for v in (labels or {}).values() if v in versions)})
  return serving_repository.ModelSource(
      name, presets.model_root(name),
      serving_repository.VersionPolicy("specific", versions=tuple(versions)), dict(labels or {}))


def _sources():
  labels = _labels(FLAGS.version_label)
  if FLAGS.model_config_file:
    if FLAGS.model_name or FLAGS.models or labels:
      raise errors.UsageError("--model_config_file names the models, their versions and "
                              "labels; drop --model_name, --models and --version_label.")
    return serving_config.from_config_file(FLAGS.model_config_file)
  if FLAGS.model_name:
    if FLAGS.models or set(labels) - {FLAGS.model_name}:
      raise errors.UsageError("With --model_name, --models is not used and --version_label "
                              f"can only name {FLAGS.model_name!r}.")
    if FLAGS.model_base_path:
      return [serving_config.single_model(FLAGS.model_name, FLAGS.model_base_path,
                                          labels.get(FLAGS.model_name))]
    return [_preset_source(FLAGS.model_name, labels.get(FLAGS.model_name), every=False)]
  base = FLAGS.model_base_path
  if base is None:  # The shipped models, copied into the cache and checked.
    unknown = sorted(set(labels) - set(FLAGS.models or presets.names()))
    if unknown:
      raise errors.InvalidValueError(f"Invalid value for `version_labels`: models {unknown} "
                                     "are not served.")
    return [_preset_source(name, labels.get(name), every=True)
            for name in FLAGS.models or presets.names()]
  # A folder of models: every version (the shipped models keep older versions beside the
  # newest on purpose, to compare them).
  return serving_repository.sources_under(
      base, only=FLAGS.models or None,
      policy=serving_repository.VersionPolicy("all"), labels=labels)


def main(argv):
  del argv
  if _MISSING:
    sys.exit(f"error: serving needs its extra ({_MISSING} is missing): pip install "
             "'zoo[serve]' (in a clone: pip install -e '.[serve]').")
  options = serving_app.ServerOptions(
      max_body_bytes=FLAGS.max_body_bytes, max_request_rows=FLAGS.max_request_rows,
      enable_batching=FLAGS.enable_batching, max_batch_size=FLAGS.max_batch_size,
      batch_timeout_micros=FLAGS.batch_timeout_micros,
      max_enqueued_batches=FLAGS.max_enqueued_batches, num_threads=FLAGS.num_threads,
      cors_origins=tuple(FLAGS.cors_origin), demo=FLAGS.demo)
  metrics = serving_metrics.Metrics()
  repository = serving_repository.Repository.load(_sources(), on_load=metrics.load)
  # Every request parses JSON into hundreds of small lists, which triggers the garbage
  # collector; its full passes over TensorFlow's millions of long-lived objects took
  # ~100 ms each (the p99 latency). Those objects live as long as the server: freeze them
  # out of collection.
  gc.collect()
  gc.freeze()
  served = ", ".join(f"{s.name}/{s.version}" for s in repository.servables())

  def ready(port, grpc_port):
    # The ports bound, not the ones asked for: with --port=0 or --grpc_port=-1 this line
    # is how a caller (a test, a benchmark, a script) learns where the server listens.
    log.info("%s", runner.ready_message(served, FLAGS.host, port, grpc_port,
                                       options.enable_batching))

  endpoints = runner.Endpoints(
      host=FLAGS.host, port=FLAGS.port, grpc_port=FLAGS.grpc_port,
      poll_wait_s=FLAGS.file_system_poll_wait_seconds, grace_s=FLAGS.drain_seconds,
      access_log=FLAGS.access_log)
  with asyncio.Runner(loop_factory=runner.loop_factory()) as loop:
    loop.run(runner.serve(repository, options, endpoints, metrics, on_ready=ready))
  log.info("Stopped.")


def run() -> None:
  """The `zoo-serve` command (and `zoo serve`)."""
  cli.run(main)


if __name__ == "__main__":
  run()
