"""Serves every exported model over TensorFlow Serving's REST API, with a browser demo.

  pip install -e '.[serve]'
  python scripts/serve.py                                  # saved_models/, 127.0.0.1:8501
  curl localhost:8501/v1/models/mnist_cnn                  # status
  curl localhost:8501/v1/models/mnist_cnn/metadata         # signatures
  curl -d '{"instances": [...]}' localhost:8501/v1/models/mnist_cnn:predict
  open http://127.0.0.1:8501/                              # draw, generate, detect

Loads every version of every model under --model_base_path once at start
(`<name>/<version>/saved_model.pb`, TensorFlow Serving's layout) and calls each
SavedModel's own signatures: a client written for TensorFlow Serving works unchanged.
Binds 127.0.0.1 unless --host says otherwise; CORS is off unless --cors_origin names an
origin. Concurrent requests for one signature are batched (--enable_batching, on by
default here; TensorFlow Serving's default is off). See README.md, "Serving".
"""

from zoo import cli  # First: quiets TensorFlow's start-up.

import gc
import logging
import re
import sys

from absl import flags

from zoo import errors
from zoo.serving import app as serving_app
from zoo.serving.repository import Repository

_DEFAULTS = serving_app.ServerOptions()
flags.DEFINE_string("model_base_path", "saved_models", "Directory of <name>/<version>/ "
                    "SavedModels; every version of every model is served.")
flags.DEFINE_list("models", [], "Serve only these model names (default: all).")
flags.DEFINE_string("host", "127.0.0.1", "Address to bind (0.0.0.0 exposes the server to "
                    "the network).")
flags.DEFINE_integer("port", 8501, "HTTP port (TensorFlow Serving's REST default).")
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


def main(argv):
  del argv
  try:
    import uvicorn
  except ImportError:
    sys.exit("error: serving needs its extra: pip install -e '.[serve]'")
  options = serving_app.ServerOptions(
      max_body_bytes=FLAGS.max_body_bytes, max_request_rows=FLAGS.max_request_rows,
      enable_batching=FLAGS.enable_batching, max_batch_size=FLAGS.max_batch_size,
      batch_timeout_micros=FLAGS.batch_timeout_micros,
      max_enqueued_batches=FLAGS.max_enqueued_batches, num_threads=FLAGS.num_threads,
      cors_origins=tuple(FLAGS.cors_origin), demo=FLAGS.demo)
  repository = Repository.load(FLAGS.model_base_path, labels=_labels(FLAGS.version_label),
                               only=FLAGS.models or None)
  # Every request parses JSON into hundreds of small lists, which triggers the garbage
  # collector; its full passes over TensorFlow's millions of long-lived objects took
  # ~100 ms each (the p99 latency). Those objects live as long as the server: freeze them
  # out of collection.
  gc.collect()
  gc.freeze()
  served = ", ".join(f"{s.name}/{s.version}" for s in repository.servables())
  logging.info("Serving %s on http://%s:%d/ (batching %s).", served, FLAGS.host, FLAGS.port,
               "on" if options.enable_batching else "off")
  uvicorn.run(serving_app.make_app(repository, options), host=FLAGS.host, port=FLAGS.port,
              access_log=FLAGS.access_log, log_level="info")


if __name__ == "__main__":
  cli.run(main)
