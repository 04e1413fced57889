"""zoo: Keras 3 / TensorFlow recipes you can train, watch, export and ship.

A recipe is named (`mnist_mlp`, `mnist_cnn`, `dcgan_mnist`, `detector_mnist`, ...);
`zoo.registry` maps the name to a config and a model builder, the config names its task
(`zoo.tasks`: classification, generation, detection), and `zoo.train.train_and_evaluate`
runs it. Layers, bottom up: `zoo.runtime` (model cards and backends apps run files with),
`zoo.artifacts` (writing and checking exported files), `zoo.tasks` (what differs per task,
each with its front and evaluator), and the doors: `zoo.train`, `zoo.evaluate`,
`zoo.export`, `zoo.load`.
"""

import sys

from zoo import quiet  # Standard library only: `import zoo` stays free of TensorFlow.

__version__ = "0.3.0"


# `import zoo` stays light (no TensorFlow): the scripts import `zoo.cli` first, which must
# quiet TensorFlow's start-up before anything imports it. So the two doors below import
# their modules (and with them TensorFlow) when first called, not here.


def _quiet_start() -> None:
  """The first door to import TensorFlow imports it without its start-up lines."""
  if "tensorflow" not in sys.modules:
    quiet.quiet_tensorflow_import()


def load(path: str, kind: str = "saved_model"):
  """Loads an exported model (a SavedModel directory, a .tflite or .onnx file, or a
  directory with `kind="onnx"`) as its task's front (`Classifier`, `Generator`,
  `Detector`); see `zoo.loading`."""
  _quiet_start()
  from zoo import loading  # Deferred: keeps `import zoo` free of TensorFlow (see above).
  return loading.load(path, kind)


def connect(url: str, name: str, **kwargs):
  """A model served over TensorFlow Serving's REST (`http://host:8501`) or gRPC
  (`grpc://host:8500`) API, by `scripts/serve.py` or TensorFlow Serving; with `card=` the
  same task front `load` returns. See `zoo.serving.client`."""
  _quiet_start()
  from zoo.serving import client  # Deferred: keeps `import zoo` light (see above).
  return client.connect(url, name, **kwargs)
