"""Apps' side: load an exported classifier (SavedModel or .tflite) and predict, one API.

  predictor = zoo.load("saved_models/mnist_cnn")          # newest version
  predictor = zoo.load("saved_models/mnist_cnn/2/model_int8.tflite")
  predictor.source                                         # what was loaded: path, version
  out = predictor.predict(images_uint8)                    # [N, H, W, C] as in the dataset
  out["probabilities"], out["classes"], out["labels"]
  predictor.predict_files(["digit.png"])                   # per-file results or errors

Every file is fed what its model card says it takes (`files.<name>.inputs.images`): for
exports of this zoo, uint8 pixels 0-255 as the dataset stores them. TFLite files run in
`ai_edge_litert` with built-in ops only.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Sequence

import numpy as np

CARD = "model_card.json"
log = logging.getLogger("zoo")


class Predictor:
  """Common front of both kinds: input checks, label names, image files."""

  kind = ""

  def __init__(self, version_dir: str, path: str):
    card_path = os.path.join(version_dir, CARD)
    if not os.path.exists(card_path):
      raise FileNotFoundError(f"No {CARD} in {version_dir!r}: not a zoo export.")
    with open(card_path) as f:
      self.card = json.load(f)
    self.path = path
    self.version = self.card.get("version")
    self.image_shape = tuple(self.card["image_shape"])
    self.class_names = list(self.card["labels"])

  @property
  def source(self) -> dict:
    """What was loaded: the model's name and version, the file or directory, its kind."""
    return {"name": self.card.get("name"), "version": self.version, "kind": self.kind,
            "path": self.path}

  def _check(self, images) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8:
      raise ValueError(f"Invalid value for `images`: expected dtype uint8 (pixels 0-255, as "
                       f"stored by the dataset). Received: dtype={images.dtype}")
    if images.ndim != 4 or tuple(images.shape[1:]) != self.image_shape:
      raise ValueError(f"Invalid value for `images`: expected shape [N, "
                       f"{', '.join(map(str, self.image_shape))}]. "
                       f"Received: shape={list(images.shape)}")
    return images

  def predict(self, images) -> dict:
    """uint8 images [N, H, W, C] -> probabilities [N, K] float32, classes [N] int64, labels."""
    probabilities = self._probabilities(self._check(images))
    classes = np.argmax(probabilities, axis=-1).astype(np.int64)
    return {"probabilities": probabilities, "classes": classes,
            "labels": [self.class_names[c] for c in classes]}

  def _probabilities(self, images: np.ndarray) -> np.ndarray:
    raise NotImplementedError

  def predict_files(self, paths: Sequence[str], auto_invert: bool = True) -> list[dict]:
    """Classifies image files (PNG/JPEG/GIF/BMP, any size, gray or RGB).

    Args:
      paths: image files.
      auto_invert: invert a dark-on-light image (a digit written on paper) to the
        dataset's light-on-dark polarity (see `zoo.data.match_dataset_polarity`), as the
        SavedModel's `serve_image_bytes` does. Each result says whether it was inverted.

    Returns one dict per path, in order: `{"file", "class", "label", "probability",
    "inverted"}` or, for a missing, unreadable or non-image file, `{"file", "error"}`; the
    other files are still classified.
    """
    import tensorflow as tf

    from zoo import data
    results, images, where = [], [], []
    for path in paths:
      try:
        with open(path, "rb") as f:
          raw = f.read()
        image, inverted = data.match_dataset_polarity(
            data.decode_image_bytes(tf.constant(raw), self.image_shape), auto_invert)
        images.append(image.numpy())
        where.append(len(results))
        results.append({"file": path, "inverted": bool(inverted)})
      except OSError as e:
        results.append({"file": path, "error": f"cannot read file: {e.strerror or e}"})
      except (tf.errors.InvalidArgumentError, ValueError):
        results.append({"file": path, "error": "not a decodable image (expected PNG, JPEG, "
                                              "GIF or BMP)"})
    if images:
      out = self.predict(np.stack(images))
      for i, row in enumerate(where):
        c = int(out["classes"][i])
        results[row].update({"class": c, "label": out["labels"][i],
                             "probability": float(out["probabilities"][i, c])})
    return results


class SavedModelPredictor(Predictor):
  kind = "saved_model"

  def __init__(self, version_dir: str):
    super().__init__(version_dir, path=version_dir)
    import tensorflow as tf
    self._loaded = tf.saved_model.load(version_dir)
    self._serve = self._loaded.signatures["serving_default"]

  def _probabilities(self, images):
    return self._serve(images=images)["probabilities"].numpy()


class TFLitePredictor(Predictor):
  kind = "tflite"

  def __init__(self, path: str):
    super().__init__(os.path.dirname(os.path.abspath(path)), path=path)
    from ai_edge_litert import interpreter as litert
    # BUILTIN: refuse any model that would need Flex (TensorFlow) ops.
    self._interpreter = litert.Interpreter(
        model_path=path, experimental_op_resolver_type=litert.OpResolverType.BUILTIN)
    name = os.path.basename(path)
    entry = next((f for f in self.card["files"].values() if f.get("path") == name), {})
    # The card's contract for this file; exports older than the contract took float32
    # pixels / 255 in every file but the int8 one.
    self.input_contract = entry.get("inputs", {}).get("images") or {
        "dtype": entry.get("input", {}).get("dtype", "float32"),
        "range": [0, 255] if entry.get("input", {}).get("dtype") == "uint8" else [0, 1]}
    self._batch = None
    self._refresh_details()

  def _refresh_details(self):
    self.input_details = self._interpreter.get_input_details()[0]
    self.output_details = self._interpreter.get_output_details()[0]

  def _probabilities(self, images):
    n = len(images)
    if self._batch != n:
      self._interpreter.resize_tensor_input(self.input_details["index"], [n, *self.image_shape])
      self._interpreter.allocate_tensors()
      self._refresh_details()
      self._batch = n
    low, high = self.input_contract["range"]
    x = images if (low, high) == (0, 255) else images / 255.0 * (high - low) + low
    x = x.astype(self.input_contract["dtype"])
    self._interpreter.set_tensor(self.input_details["index"], x)
    self._interpreter.invoke()
    y = self._interpreter.get_tensor(self.output_details["index"])
    if self.output_details["dtype"] != np.float32:  # Older int8 exports: uint8 output.
      scale, zero = self.output_details["quantization"]
      y = (y.astype(np.float32) - zero) * scale
    return y.astype(np.float32)


def _newest_version(model_dir: str) -> str:
  versions = [int(d) for d in os.listdir(model_dir)
              if d.isdigit() and os.path.isdir(os.path.join(model_dir, d))]
  if not versions:
    raise FileNotFoundError(f"Invalid value for `path`: {model_dir!r} has no version "
                            "directories (1/, 2/, ...).")
  return os.path.join(model_dir, str(max(versions)))


def load(path: str) -> Predictor:
  """Returns a predictor for an exported model.

  Args:
    path: a `.tflite` file, a version directory (`saved_models/mnist_cnn/2`), or a model
      directory (`saved_models/mnist_cnn`, whose newest version is used).

  Returns:
    A predictor; its `source` says which version and which file or directory it loaded.
  """
  if path.endswith(".tflite"):
    if not os.path.isfile(path):
      raise FileNotFoundError(f"Invalid value for `path`: no such file {path!r}.")
    predictor = TFLitePredictor(path)
  elif not os.path.isdir(path):
    raise FileNotFoundError(f"Invalid value for `path`: {path!r} is neither a .tflite file "
                            "nor a directory.")
  else:
    if not os.path.exists(os.path.join(path, "saved_model.pb")):
      path = _newest_version(path)
    predictor = SavedModelPredictor(path)
  log.info("Loaded %s version %s from %s (%s).", predictor.source["name"], predictor.version,
           predictor.path, predictor.kind)
  return predictor
