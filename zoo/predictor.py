"""Apps' side: load an exported model (SavedModel or .tflite) and use it, one API per task.

  predictor = zoo.load("saved_models/mnist_cnn")          # newest version -> a Classifier
  predictor = zoo.load("saved_models/mnist_cnn/3/model_int8.tflite")
  predictor.source                                         # what was loaded: path, version
  out = predictor.predict(images_uint8)                    # [N, H, W, C] as in the dataset
  out["probabilities"], out["classes"], out["labels"]
  predictor.predict_files(["digit.png"])                   # per-file results or errors

  generator = zoo.load("saved_models/cdcgan_mnist")        # -> a Generator
  generator.generate_seeds([1, 2, 3], labels=[7, 7, 7])    # uint8 [3, 28, 28, 1]

  detector = zoo.load("saved_models/detector_mnist")      # -> a Detector
  out = detector.detect(images_uint8)                      # boxes, scores, classes, num
  detector.detect_files(["canvas.png"])                    # per-file detections or errors

A predictor is a task front (`Classifier`, `Generator`, `Detector`; chosen by the model card's `task`
through `zoo.tasks`) over a backend that runs the file (`SavedModelBackend`,
`TFLiteBackend`). Every file is fed what its model card says it takes. TFLite files run
in `ai_edge_litert` with built-in ops only.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Sequence

import numpy as np

from zoo import errors

CARD = "model_card.json"
log = logging.getLogger("zoo")


def read_card(version_dir: str) -> dict:
  """The model card of an exported version directory."""
  card_path = os.path.join(version_dir, CARD)
  if not os.path.exists(card_path):
    raise errors.NotFoundError(f"No {CARD} in {version_dir!r}: not a zoo export.")
  with open(card_path) as f:
    return json.load(f)


class SavedModelBackend:
  """Runs a SavedModel's named signatures; inputs and outputs are numpy arrays by name."""

  kind = "saved_model"

  def __init__(self, version_dir: str):
    import tensorflow as tf
    self.path = version_dir
    self._loaded = tf.saved_model.load(version_dir)
    self.signatures = set(self._loaded.signatures.keys())

  def run(self, signature: str = "serving_default", **inputs) -> dict:
    outputs = self._loaded.signatures[signature](**inputs)
    return {k: v.numpy() for k, v in outputs.items()}


class TFLiteBackend:
  """Runs a .tflite file's signature in LiteRT (built-in ops only), resizing the batch."""

  kind = "tflite"

  def __init__(self, path: str):
    from ai_edge_litert import interpreter as litert
    self.path = path
    # BUILTIN: refuse any model that would need Flex (TensorFlow) ops.
    self._interpreter = litert.Interpreter(
        model_path=path, experimental_op_resolver_type=litert.OpResolverType.BUILTIN)
    self.signatures = set(self._interpreter.get_signature_list())
    self._runners = {}

  def _runner(self, signature):
    if signature not in self._runners:
      self._runners[signature] = self._interpreter.get_signature_runner(signature)
    return self._runners[signature]

  def input_details(self, signature: str = "serving_default") -> dict:
    """Input tensor details by input name (dtype, shape, quantization, ...)."""
    return self._runner(signature).get_input_details()

  def output_details(self, signature: str = "serving_default") -> dict:
    return self._runner(signature).get_output_details()

  def run(self, signature: str = "serving_default", **inputs) -> dict:
    details = self.input_details(signature)
    feed = {k: np.asarray(v).astype(details[k]["dtype"]) for k, v in inputs.items()}
    return dict(self._runner(signature)(**feed))


class Predictor:
  """Common front: the card, the backend, what was loaded."""

  kind = ""

  def __init__(self, backend, card: dict):
    self.backend = backend
    self.card = card
    self.kind = backend.kind
    self.path = backend.path
    self.version = card.get("version")

  @property
  def source(self) -> dict:
    """What was loaded: the model's name and version, the file or directory, its kind."""
    return {"name": self.card.get("name"), "version": self.version, "kind": self.kind,
            "path": self.path}


def _check_array(name, value, dtype, shape_tail) -> np.ndarray:
  value = np.asarray(value)
  if value.dtype != np.dtype(dtype):
    raise errors.InvalidValueError(f"Invalid value for `{name}`: expected dtype {np.dtype(dtype)}. "
                                   f"Received: dtype={value.dtype}")
  if value.ndim != 1 + len(shape_tail) or tuple(value.shape[1:]) != tuple(shape_tail):
    raise errors.InvalidValueError(f"Invalid value for `{name}`: expected shape "
                                   f"[N{''.join(', ' + str(d) for d in shape_tail)}]. "
                                   f"Received: shape={list(value.shape)}")
  return value


class Classifier(Predictor):
  """An image classifier: `predict(images)`, `predict_files(paths)`, `features(images)`."""

  def __init__(self, backend, card):
    super().__init__(backend, card)
    self.image_shape = tuple(card["image_shape"])
    self.class_names = list(card["labels"])

  def _check(self, images) -> np.ndarray:
    if np.asarray(images).dtype != np.uint8:
      raise errors.InvalidValueError(
          f"Invalid value for `images`: expected dtype uint8 (pixels 0-255, as "
          f"stored by the dataset). Received: dtype={np.asarray(images).dtype}")
    return _check_array("images", images, np.uint8, self.image_shape)

  def predict(self, images) -> dict:
    """uint8 images [N, H, W, C] -> probabilities [N, K] float32, classes [N] int64, labels."""
    probabilities = self.backend.run(images=self._check(images))["probabilities"]
    probabilities = probabilities.astype(np.float32)
    classes = np.argmax(probabilities, axis=-1).astype(np.int64)
    return {"probabilities": probabilities, "classes": classes,
            "labels": [self.class_names[c] for c in classes]}

  @property
  def has_features(self) -> bool:
    return "features" in self.backend.signatures

  def features(self, images) -> dict:
    """uint8 images -> `features` (the penultimate layer, float32 [N, D], usable as
    embeddings) and `probabilities`, from the SavedModel's `features` signature."""
    if not self.has_features:
      raise errors.InvalidValueError(
          f"{self.path!r} has no `features` signature (exports from this zoo "
          "version have it in the SavedModel).")
    return self.backend.run("features", images=self._check(images))

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

    from zoo.data import images as image_ops
    results, images, where = [], [], []
    for path in paths:
      try:
        with open(path, "rb") as f:
          raw = f.read()
        image, inverted = image_ops.match_dataset_polarity(
            image_ops.decode_image_bytes(tf.constant(raw), self.image_shape), auto_invert)
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


class Generator(Predictor):
  """An image generator: `generate(latent, labels)` and `generate_seeds(seeds, labels)`."""

  def __init__(self, backend, card):
    super().__init__(backend, card)
    self.image_shape = tuple(card["image_shape"])
    self.latent_dim = int(card["latent_dim"])
    self.class_names = list(card.get("labels") or [])
    self.conditional = bool(card.get("conditional"))

  def _labels(self, labels, n) -> dict:
    if not self.conditional:
      if labels is not None:
        raise errors.InvalidValueError(
            "Invalid value for `labels`: this generator is unconditional; "
            "pass no labels.")
      return {}
    if labels is None:
      raise errors.InvalidValueError(
          f"Invalid value for `labels`: this generator is conditional; pass one "
          f"class index (0-{len(self.class_names) - 1}) per image.")
    labels = np.asarray(labels)
    if (labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer)
        or labels.min(initial=0) < 0 or labels.max(initial=0) >= len(self.class_names)):
      raise errors.InvalidValueError(
          f"Invalid value for `labels`: expected {n} integers in "
          f"[0, {len(self.class_names) - 1}]. Received: {labels.tolist()!r}")
    return {"labels": labels.astype(np.int64)}

  def generate(self, latent, labels=None) -> np.ndarray:
    """latent float32 [N, latent_dim] (and labels [N]) -> uint8 images [N, H, W, C]."""
    latent = _check_array("latent", np.asarray(latent, np.float32), np.float32,
                          (self.latent_dim,))
    return self.backend.run(latent=latent, **self._labels(labels, len(latent)))["images"]

  def generate_seeds(self, seeds, labels=None) -> np.ndarray:
    """One image per int seed, the same image for the same seed everywhere (the latent is
    `zoo.models.gan.seed_latents(seeds)`, as in the SavedModel's `generate` signature)."""
    seeds = np.asarray(seeds, np.int64).reshape(-1)
    if "generate" in self.backend.signatures:
      return self.backend.run("generate", seed=seeds,
                              **self._labels(labels, len(seeds)))["images"]
    from zoo.models import gan
    return self.generate(gan.seed_latents(seeds, self.latent_dim).numpy(), labels)


class Detector(Predictor):
  """An object detector: `detect(images)` and `detect_files(paths)`; decoding and NMS are
  inside the exported file, so what comes out is final."""

  OUTPUTS = ("detection_boxes", "detection_scores", "detection_classes", "num_detections")

  def __init__(self, backend, card):
    super().__init__(backend, card)
    self.class_names = list(card["labels"])
    self.channels = int(card["channels"])
    self.image_size = int(card["image_size"])

  def detect(self, images) -> dict:
    """uint8 images [N, H, W, C] (any H, W) -> the Object Detection API's outputs:
    `detection_boxes [N, K, 4]` (normalized [ymin, xmin, ymax, xmax] of the image),
    `detection_scores [N, K]`, `detection_classes [N, K]` (float class index),
    `num_detections [N]`. TFLite files take one image per call: they are run per image."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != self.channels:
      raise errors.InvalidValueError(f"Invalid value for `images`: expected uint8 [N, H, W, "
                                     f"{self.channels}]. Received: dtype={images.dtype}, "
                                     f"shape={list(images.shape)}")
    if self.kind == "tflite":
      rows = [self.backend.run(images=image[None]) for image in images]
      return {k: np.concatenate([r[k] for r in rows]) for k in self.OUTPUTS}
    out = self.backend.run(images=images)
    return {k: out[k] for k in self.OUTPUTS}

  def detect_files(self, paths: Sequence[str], min_score: float = 0.3) -> list[dict]:
    """Detects objects in image files (PNG/JPEG/GIF/BMP, any size, gray or RGB).

    Returns one dict per path, in order: `{"file", "width", "height", "detections":
    [{"label", "class", "score", "box_yxyx" (normalized), "box_xyxy_pixels"}]}` with the
    detections scoring at least `min_score`, or `{"file", "error"}` for a missing,
    unreadable or non-image file (the other files are still processed)."""
    import tensorflow as tf
    results = []
    for path in paths:
      try:
        with open(path, "rb") as f:
          raw = f.read()
        image = tf.io.decode_image(raw, channels=self.channels,
                                   expand_animations=False).numpy()
      except OSError as e:
        results.append({"file": path, "error": f"cannot read file: {e.strerror or e}"})
        continue
      except (tf.errors.InvalidArgumentError, ValueError):
        results.append({"file": path, "error": "not a decodable image (expected PNG, JPEG, "
                                              "GIF or BMP)"})
        continue
      out = self.detect(image[None])
      h, w = image.shape[:2]
      found = []
      for i in range(int(out["num_detections"][0])):
        score = float(out["detection_scores"][0, i])
        if score < min_score:
          continue
        y0, x0, y1, x1 = (float(v) for v in out["detection_boxes"][0, i])
        c = int(out["detection_classes"][0, i])
        found.append({"label": self.class_names[c], "class": c, "score": score,
                      "box_yxyx": [y0, x0, y1, x1],
                      "box_xyxy_pixels": [x0 * w, y0 * h, x1 * w, y1 * h]})
      results.append({"file": path, "width": int(w), "height": int(h), "detections": found})
    return results


def _newest_version(model_dir: str) -> str:
  versions = [int(d) for d in os.listdir(model_dir)
              if d.isdigit() and os.path.isdir(os.path.join(model_dir, d))]
  if not versions:
    raise errors.NotFoundError(f"Invalid value for `path`: {model_dir!r} has no version "
                               "directories (1/, 2/, ...).")
  return os.path.join(model_dir, str(max(versions)))


def load(path: str) -> Predictor:
  """Returns the task's predictor for an exported model.

  Args:
    path: a `.tflite` file, a version directory (`saved_models/mnist_cnn/3`), or a model
      directory (`saved_models/mnist_cnn`, whose newest version is used).

  Returns:
    The front of the card's task (`Classifier`, `Generator`, ...); its `source` says which
    version and which file or directory it loaded.
  """
  from zoo import tasks
  if path.endswith(".tflite"):
    if not os.path.isfile(path):
      raise errors.NotFoundError(f"Invalid value for `path`: no such file {path!r}.")
    card = read_card(os.path.dirname(os.path.abspath(path)))
    backend = TFLiteBackend(path)
  elif not os.path.isdir(path):
    raise errors.NotFoundError(f"Invalid value for `path`: {path!r} is neither a .tflite file "
                               "nor a directory.")
  else:
    if not os.path.exists(os.path.join(path, "saved_model.pb")):
      path = _newest_version(path)
    card = read_card(path)
    backend = SavedModelBackend(path)
  predictor = tasks.for_card(card).predictor(backend, card)
  log.info("Loaded %s version %s from %s (%s).", predictor.source["name"], predictor.version,
           predictor.path, predictor.kind)
  return predictor

