"""`zoo.load`: an exported model as its task's front, for apps.

  classifier = zoo.load("saved_models/mnist_cnn")          # newest version -> a Classifier
  classifier = zoo.load("saved_models/mnist_cnn/3/model_int8.tflite")
  classifier = zoo.load("saved_models/mnist_cnn", kind="onnx")     # its model.onnx
  classifier.source                                         # what was loaded: path, version
  out = classifier.predict(images_uint8)                    # [N, H, W, C] as in the dataset
  out["probabilities"], out["classes"], out["labels"]
  classifier.predict_files(["digit.png"])                   # per-file results or errors

  generator = zoo.load("saved_models/cdcgan_mnist")        # -> a Generator
  generator.generate_seeds([1, 2, 3], labels=[7, 7, 7])    # uint8 [3, 28, 28, 1]

  detector = zoo.load("saved_models/detector_mnist")      # -> a Detector
  out = detector.detect(images_uint8)                      # boxes, scores, classes, num
  detector.detect_files(["canvas.png"])                    # per-file detections or errors

The file is run by a `zoo.runtime` backend (SavedModel; TFLite in LiteRT with built-in ops
only; ONNX in ONNX Runtime's CPU provider), fed what its model card says it takes; the front is the card's task's
(`zoo.tasks.<task>`: `Classifier`, `Generator`, `Detector`).
"""

from __future__ import annotations

import logging
import os

from zoo import errors, rundir, runtime, tasks

log = logging.getLogger("zoo")


def load(path: str, kind: str = "saved_model") -> runtime.Predictor:
  """Returns the task's front for an exported model.

  Args:
    path: a `.tflite` or `.onnx` file, a version directory (`saved_models/mnist_cnn/3`),
      or a model directory (`saved_models/mnist_cnn`, whose newest version is used).
    kind: for a directory, which file runs: `saved_model` (TensorFlow) or `onnx` (its
      `model.onnx` in ONNX Runtime).

  Returns:
    The front of the card's task (`Classifier`, `Generator`, ...); its `source` says which
    version and which file or directory it loaded.
  """
  if os.path.isdir(path) and os.path.exists(rundir.path(path, rundir.CONFIG)):
    raise errors.NotFoundError(
        f"Invalid value for `path`: {path!r} is a training run, not an exported model; "
        f"export it first: python scripts/export.py --model_dir={path}")
  backend, card = runtime.open_model(path, kind)
  try:
    front = tasks.for_card(card).front(backend, card)
  except errors.ZooError:
    raise
  except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
    reason = f"no {e.args[0]!r:.80}" if isinstance(e, KeyError) and e.args else type(e).__name__
    raise errors.InvalidValueError(
        f"Invalid model card in {backend.path!r}: it does not describe a "
        f"{str(card.get('task'))[:40]!r} model ({reason}); damaged? Export it again.") from None
  log.info("Loaded %s version %s from %s (%s).", front.source["name"], front.version,
           front.path, front.kind)
  return front
