"""zoo: Keras 3 / TensorFlow recipes you can train, watch, export and ship.

A recipe is named (`mnist_mlp`, `mnist_cnn`, `dcgan_mnist`, `detector_mnist`, ...);
`zoo.registry` maps the name to a config and a model builder, the config names its task
(`zoo.tasks`: classification, generation, detection), and `zoo.train.train_and_evaluate`
runs it. Layers, bottom up: `zoo.runtime` (model cards and backends apps run files with),
`zoo.artifacts` (writing and checking exported files), `zoo.tasks` (what differs per task,
each with its front and evaluator), and the doors: `zoo.train`, `zoo.evaluate`,
`zoo.export`, `zoo.load`.
"""

from zoo import quiet  # Standard library only: `import zoo` stays free of TensorFlow.

__version__ = "0.3.0"


# `import zoo` stays light (no TensorFlow): the scripts import `zoo.cli` first, which must
# quiet TensorFlow's start-up before anything imports it. So the two doors below import
# their modules (and with them TensorFlow) when first called, not here.


def load(path: str, kind: str = "saved_model"):
  """Loads an exported model as its task's front, to run in this process.

  Args:
    path: a preset's name (`"mnist_cnn"`, the newest version; `"mnist_cnn:3"`), a version
      directory (`exports/mnist_cnn/1`), a model directory (its newest version), or a
      `.tflite` or `.onnx` file.
    kind: for a directory, which file runs: `saved_model` (TensorFlow) or `onnx` (its
      `model.onnx` in ONNX Runtime).

  Returns:
    A `Classifier` (`predict`, `predict_files`, `features`), `Generator` (`generate`,
    `generate_seeds`) or `Detector` (`detect`, `detect_files`), as the model card's task
    says; its `source` names the version and file loaded. Inputs are uint8 pixels
    `[N, H, W, C]`, 0-255, as the dataset stores them.
  """
  quiet.quiet_tensorflow_import()  # The first door to load TensorFlow loads it quietly.
  from zoo import loading  # Deferred: keeps `import zoo` free of TensorFlow (see above).
  return loading.load(path, kind)


def connect(url: str, name: str, **kwargs):
  """A model served by `zoo-serve` or TensorFlow Serving, over REST or gRPC.

  Args:
    url: the server: `http://host:8501` (REST) or `grpc://host:8500` (gRPC).
    name: the model's name on the server.
    **kwargs: `version` or `label` to pin a version, `card` (a model card, its path, or the
      version directory) for the same front `load` returns, `timeout` in seconds; see
      `zoo.serving.client.connect`.

  Returns:
    A `RemoteModel` / `GrpcModel` (`run`, `predict`, `metadata`), or with `card` the task's
    front running on the server.
  """
  quiet.quiet_tensorflow_import()  # The first door to load TensorFlow loads it quietly.
  from zoo.serving import client  # Deferred: keeps `import zoo` light (see above).
  return client.connect(url, name, **kwargs)
