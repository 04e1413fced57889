"""Task `classification`: images -> class probabilities (the MNIST MLP and CNN recipes).

Data: `(image float32 [0, 1], label)` batches. Compile: sparse cross-entropy + accuracy.
Callbacks: a confusion matrix and a few input images in TensorBoard. Metrics: accuracy,
loss. Export (every file takes uint8 pixels 0-255 as the dataset stores them; scaling is
inside each graph):
  SavedModel  serving_default(images uint8 [N, H, W, C]) -> probabilities, classes, labels
              serve_image_bytes(image_bytes string [N])   -> the same + inverted,
                  centered, low_confidence (photo preprocessing: `photo_preprocessing`)
              features(images uint8 [N, H, W, C])         -> features (penultimate layer,
                  float32 [N, D]: embeddings, and the feature space of `zoo.quality`),
                  probabilities
  TFLite      float32, float16, dynamic_int8, int8: images uint8 -> probabilities float32
Parity: accuracy of every file, its top-1 agreement with the Keras model and the largest
probability difference; int8 accuracy drop and size.
Front: `Classifier` (`predict`, `predict_files`, `features`).
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from zoo import artifacts, callbacks as zoo_callbacks, data, errors, runtime
from zoo.data import image_folder, images as images_lib
from zoo.tasks import base

# Parity targets (see BENCHMARKS.md): top-1 agreement with the Keras model for the float
# files, the SavedModel and the ONNX file; for the int8 files, accuracy within 0.2 points of
# float. Each is a rate; the checks allow the count of changed or lost answers a file exactly
# on target shows 95 % of the time (`artifacts.allowed_count`).
MIN_AGREEMENT = {"saved_model": 0.999, "float32": 0.999, "float16": 0.999, "onnx": 0.999}
MAX_INT8_ACCURACY_DROP = 0.002
# An int8 file holds a quarter of the weight bytes plus a part per op (quantization scales,
# graph): 0.28 of float32 for mnist_cnn, 0.30 for the same net on a 3-class folder, 0.39 for
# image_classifier's MobileNetV2 (about 150 small ops); a float16 file is 0.5.
MAX_INT8_SIZE_RATIO = 0.45

# Datasets whose images are digits made the MNIST way (`zoo.data.images.center_digit`):
# a classifier of one reads photos with `photo_preprocessing="mnist_digit"` by default.
MNIST_STYLE_DATASETS = ("mnist",)


def photo_preprocessing(knobs: dict, config) -> str:
  """The `photo_preprocessing` a run's exports use: the knob, or by default `mnist_digit`
  for `MNIST_STYLE_DATASETS`, the folder's own `folder_resize` for a `folder:DIR` dataset
  (a photo is prepared as the training images were) and `resize` for every other dataset."""
  if knobs["photo_preprocessing"]:
    return knobs["photo_preprocessing"]
  if config.dataset in MNIST_STYLE_DATASETS:
    return "mnist_digit"
  if image_folder.is_image_folder(config.dataset):
    return config.folder_resize
  return "resize"


class Classifier(runtime.Predictor):
  """An image classifier: `predict(images)`, `predict_files(paths)`, `features(images)`."""

  def __init__(self, backend, card):
    super().__init__(backend, card)
    self.image_shape = tuple(card["image_shape"])
    self.class_names = list(card["labels"])
    # Cards written before these fields: photos resized whole, no low-confidence flag.
    self.photo_preprocessing = card.get("photo_preprocessing", "resize")
    self.low_confidence_below = float(card.get("low_confidence_below", 0.0))

  def _check(self, images) -> np.ndarray:
    if np.asarray(images).dtype != np.uint8:
      raise errors.InvalidValueError(
          "Invalid value for `images`: expected dtype uint8 (pixels 0-255, as stored by the "
          f"dataset). Received: dtype={np.asarray(images).dtype}")
    return runtime.check_array("images", images, np.uint8, self.image_shape)

  def check_top_k(self, top_k, what: str = "`top_k`") -> int:
    """`top_k` as an int from 1 to the number of classes, or one clear error naming `what`."""
    count = len(self.class_names)
    if (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer))
        or not 1 <= top_k <= count):
      raise errors.InvalidValueError(
          f"Invalid value for {what}: expected a whole number from 1 to {count} (this "
          f"model's classes). Received: {top_k!r}")
    return int(top_k)

  def default_top_k(self) -> int:
    """What `zoo-predict` lists without `--top_k`: 5 classes, or every one if fewer."""
    return min(5, len(self.class_names))

  def predict(self, images, top_k: int | None = None) -> dict:
    """uint8 images [N, H, W, C] (pixels 0-255 as the dataset stores them) -> `probabilities`
    float32 [N, K], `classes` int64 [N] (index into `class_names`), `labels` (N class names)
    and, with `top_k`, the `top_k` likeliest classes of each image, likeliest first (ties in
    class order): `top_k_classes` int64 [N, top_k], `top_k_probabilities` float32
    [N, top_k], `top_k_labels` (N lists of names)."""
    if top_k is not None:
      top_k = self.check_top_k(top_k)
    probabilities = self.backend.run(images=self._check(images))["probabilities"]
    probabilities = probabilities.astype(np.float32)
    classes = np.argmax(probabilities, axis=-1).astype(np.int64)
    out = {"probabilities": probabilities, "classes": classes,
           "labels": [self.class_names[c] for c in classes]}
    if top_k is not None:
      ranked = np.argsort(-probabilities, axis=-1, kind="stable")[:, :top_k].astype(np.int64)
      out.update(top_k_classes=ranked,
                 top_k_probabilities=np.take_along_axis(probabilities, ranked, axis=-1),
                 top_k_labels=[[self.class_names[c] for c in row] for row in ranked])
    return out

  @property
  def has_features(self) -> bool:
    return "features" in self.backend.signatures

  def features(self, images) -> dict:
    """uint8 images -> `features` (the penultimate layer, float32 [N, D], usable as
    embeddings) and `probabilities`, from the SavedModel's `features` signature."""
    if not self.has_features:
      raise errors.InvalidValueError(
          f"{self.path!r} has no `features` signature (exports from this zoo version have "
          "it in the SavedModel).")
    return self.backend.run("features", images=self._check(images))

  def predict_files(self, paths: Sequence[str], auto_invert: bool = True,
                    center_digits: bool = True, top_k: int = 1) -> list[dict]:
    """Classifies image files (PNG/JPEG/GIF/BMP, any size, gray or RGB), prepared as the
    SavedModel's `serve_image_bytes` prepares them (`zoo.data.images.prepare_image_bytes`
    with the card's `photo_preprocessing`).

    Args:
      paths: image files.
      auto_invert: invert a dark-on-light image (a digit written on paper) to the
        dataset's light-on-dark polarity (see `zoo.data.match_dataset_polarity`).
      center_digits: for a model whose card says `photo_preprocessing: mnist_digit`, crop
        each file to its ink and centre it as MNIST's digits are
        (`zoo.data.images.center_digit`); False resizes the whole file instead.
      top_k: how many of the likeliest classes each result lists (1 to the number of
        classes).

    Returns one dict per path, in order: `{"file", "class", "label", "probability",
    "top_k", "low_confidence", "inverted", "centered", "preprocessing"}` (`top_k`: a list
    of `{"class", "label", "probability"}`, likeliest first, the first being the answer;
    `low_confidence`: the probability is below the card's `low_confidence_below`) or, for a
    missing, unreadable or non-image file, `{"file", "error"}`; the other files are still
    classified.
    """
    top_k = self.check_top_k(top_k)
    preprocessing = self.photo_preprocessing
    if preprocessing == "mnist_digit" and not center_digits:
      preprocessing = "resize"

    def decode(raw):
      image, inverted, centered = images_lib.prepare_image_bytes(
          tf.constant(raw), self.image_shape, preprocessing, auto_invert)
      return image.numpy(), bool(inverted), bool(centered)

    results, images, where = [], [], []
    for path, decoded in runtime.read_image_files(paths, decode):
      if isinstance(decoded, dict):
        results.append(decoded)
        continue
      images.append(decoded[0])
      where.append(len(results))
      results.append({"file": path, "inverted": decoded[1], "centered": decoded[2],
                      "preprocessing": preprocessing})
    if images:
      out = self.predict(np.stack(images), top_k=top_k)
      for i, row in enumerate(where):
        c = int(out["classes"][i])
        probability = float(out["probabilities"][i, c])
        ranked = [{"class": int(k), "label": label, "probability": float(p)}
                  for k, label, p in zip(out["top_k_classes"][i], out["top_k_labels"][i],
                                         out["top_k_probabilities"][i])]
        results[row].update({"class": c, "label": out["labels"][i], "probability": probability,
                             "top_k": ranked,
                             "low_confidence": probability < self.low_confidence_below})
    return results

  def run_files(self, paths, options):
    top_k = options.get("top_k")
    return self.predict_files(paths, auto_invert=options.get("auto_invert", True),
                              center_digits=options.get("center_digits", True),
                              top_k=self.default_top_k() if top_k is None else top_k)


def feature_model(model: keras.Model) -> keras.Model:
  """`model` -> (features, probabilities): features are the input of its `logits` layer."""
  return keras.Model(model.inputs, [model.get_layer("logits").input, model.outputs[0]])


class ClassificationEvaluator(base.Evaluator):
  """Accuracy and cross-entropy of `predict(uint8 images [N, H, W, C]) -> probabilities`
  on a split, read in stored order in batches of `batch_size`.

  Parity (`compare`): the candidate's accuracy, its top-1 agreement with the reference
  and the largest absolute probability difference.
  """

  def __init__(self, builder, split: str, batch_size: int = 1000):
    self.split = split
    self.dataset = builder.as_dataset(split=split, as_supervised=True,
                                      shuffle_files=False).batch(batch_size)

  def predictions(self, predict):
    probabilities, labels = [], []
    for images, batch_labels in tfds.as_numpy(self.dataset):
      probabilities.append(np.asarray(predict(images), np.float32))
      labels.append(batch_labels)
    return {"probabilities": np.concatenate(probabilities), "labels": np.concatenate(labels)}

  def metrics(self, predictions):
    p, labels = predictions["probabilities"].astype(np.float64), predictions["labels"]
    # Keras's sparse cross-entropy on probabilities: renormalized, clipped to [1e-7, 1 - 1e-7].
    p = np.clip(p / p.sum(axis=-1, keepdims=True), 1e-7, 1 - 1e-7)
    return {"num_examples": int(len(labels)),
            "accuracy": float(np.mean(np.argmax(p, -1) == labels)),
            "loss": float(np.mean(-np.log(p[np.arange(len(labels)), labels])))}

  def compare(self, reference, candidate):
    ref, out = reference.predictions["probabilities"], candidate.predictions["probabilities"]
    return {"accuracy": candidate.metrics["accuracy"],
            "top1_agreement": float(np.mean(np.argmax(out, -1) == np.argmax(ref, -1))),
            "max_abs_diff": float(np.max(np.abs(out - ref)))}


class Classification(base.Task):
  name = "classification"
  task_kwargs = {
      # How the SavedModel's serve_image_bytes and predict_files prepare a photo: None
      # (MNIST-style datasets: mnist_digit; others: resize), "mnist_digit" (crop to the ink,
      # fit in 20x20, centre of mass at the centre) or "resize" (the whole image).
      "photo_preprocessing": None,
      # Answers whose top probability is below this say `low_confidence: true`.
      "low_confidence_below": 0.8,
      # Photo augmentation with `augment` (`zoo.data.random_flip_and_color`): mirror half
      # the training images left-right; shift brightness and scale contrast by up to this.
      "flip": False,
      "color_jitter": 0.0,
      # With `augment`: random resized crops (`zoo.data.random_resized_crop`) of at least
      # this fraction of the image's area (1.0: none).
      "crop_scale": 1.0,
      # The export's int8 check: accuracy within this of float (None: 0.002, the export
      # option `max_int8_accuracy_drop` wins). A recipe whose int8 file loses more after
      # post-training quantization (MobileNetV2's depthwise layers) says so here.
      "max_int8_accuracy_drop": None,
  }
  tflite_variants = ("float32", "float16", "dynamic_int8", "int8")
  front = Classifier
  writes_labels = True
  class_layers = {"logits": -1}  # Dense (features, classes): kernel and bias, last axis.
  export_options = {
      "calibration_examples": 500,  # training images calibrating the int8 variant
      "min_agreement": None,  # per file; None: MIN_AGREEMENT
      "max_int8_accuracy_drop": None,  # None: the run's knob, else MAX_INT8_ACCURACY_DROP
  }

  def knobs(self, config) -> dict:
    knobs = super().knobs(config)
    choices = (None, *images_lib.PHOTO_PREPROCESSING)
    if knobs["photo_preprocessing"] not in choices:
      raise errors.InvalidValueError(
          f"Invalid value for `task_kwargs.photo_preprocessing`: expected one of {choices}."
          f" Received: {knobs['photo_preprocessing']!r}")
    if not 0.0 <= float(knobs["low_confidence_below"]) <= 1.0:
      raise errors.InvalidValueError(
          "Invalid value for `task_kwargs.low_confidence_below`: expected a probability in "
          f"[0, 1]. Received: {knobs['low_confidence_below']!r}")
    if not 0.0 <= float(knobs["color_jitter"]) < 1.0:
      raise errors.InvalidValueError(
          "Invalid value for `task_kwargs.color_jitter`: expected 0 <= color_jitter < 1. "
          f"Received: {knobs['color_jitter']!r}")
    if not 0.0 < float(knobs["crop_scale"]) <= 1.0:
      raise errors.InvalidValueError(
          "Invalid value for `task_kwargs.crop_scale`: expected 0 < crop_scale <= 1 (the "
          f"smallest crop's share of the image; 1: no crop). Received: {knobs['crop_scale']!r}")
    return knobs

  def check_data(self, config, info):
    if info.num_classes < 2:
      raise errors.InvalidValueError(
          f"Invalid value for `dataset`: {config.dataset} has one class "
          f"({list(info.class_names)}); a classifier needs at least two: one folder per "
          "class (DIR/<class>/*.jpg).")

  def datasets(self, builder, config, epochs=(0,)):
    knobs = self.knobs(config)
    train = data.make_training_dataset(builder, config, epochs, flip=bool(knobs["flip"]),
                                       color_jitter=float(knobs["color_jitter"]),
                                       crop_scale=float(knobs["crop_scale"]))
    return train, data.make_classification_dataset(
        builder, config.eval_split, batch_size=config.eval_batch_size, training=False)

  def compile(self, model, config, make_optimizer, jit_compile, steps_per_execution=1):
    model.compile(optimizer=make_optimizer(),
                  loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                  jit_compile=jit_compile, steps_per_execution=steps_per_execution)

  def callbacks(self, config, *, builder, log_dir, info, train_ds, validation_ds):
    cbs = [zoo_callbacks.ConfusionMatrix(log_dir, validation_ds, info.class_names)]
    if config.log_images:
      cbs.append(zoo_callbacks.ImageSamples(log_dir, data.sample_training_images(builder, config)))
    return cbs

  def card_fields(self, model, config, info):
    knobs = self.knobs(config)
    return {"image_shape": list(info.image_shape), "labels": list(info.class_names),
            "photo_preprocessing": photo_preprocessing(knobs, config),
            "low_confidence_below": float(knobs["low_confidence_below"])}

  def signatures(self, model, config, info):
    image_shape, names = info.image_shape, list(info.class_names)
    features = feature_model(model)
    fields = self.card_fields(model, config, info)
    preprocessing, threshold = fields["photo_preprocessing"], fields["low_confidence_below"]

    def outputs(probabilities):
      classes = tf.argmax(probabilities, axis=-1)
      return {"probabilities": tf.cast(probabilities, tf.float32), "classes": classes,
              "labels": tf.gather(tf.constant(names), classes)}

    def serve_images(images):
      return outputs(model(data.normalize_images(images), training=False))

    def serve_image_bytes(image_bytes):
      # One image decoded at a time: a request's memory is one full-size image at most.
      images, inverted, centered = tf.map_fn(
          lambda b: images_lib.prepare_image_bytes(b, image_shape, preprocessing),
          image_bytes, parallel_iterations=1, fn_output_signature=(tf.TensorSpec(image_shape, tf.uint8),
                                            tf.TensorSpec([], tf.bool),
                                            tf.TensorSpec([], tf.bool)))
      out = serve_images(images)
      low = tf.reduce_max(out["probabilities"], axis=-1) < threshold
      return {**out, "inverted": inverted, "centered": centered, "low_confidence": low}

    def serve_features(images):
      feats, probabilities = features(data.normalize_images(images), training=False)
      return {"features": tf.cast(feats, tf.float32),
              "probabilities": tf.cast(probabilities, tf.float32)}

    pixels = artifacts.pixel_contract(image_shape)
    images_spec = [tf.TensorSpec([None, *image_shape], tf.uint8, name="images")]
    probabilities = {"dtype": "float32", "shape": [-1, info.num_classes]}
    out = {"probabilities": probabilities, "classes": {"dtype": "int64", "shape": [-1]},
           "labels": {"dtype": "string", "shape": [-1]}}
    bytes_in = {"image_bytes": {
        "dtype": "string", "shape": [-1],
        "description": "encoded PNG/JPEG/GIF/BMP, any size, gray or RGB; a dark digit on "
                       "light paper is inverted to the dataset's polarity"
                       + ("; a digit anywhere on the page is cropped to its ink and centred "
                          "as MNIST's are" if preprocessing == "mnist_digit" else "")}}
    features_out = {"features": {"dtype": "float32", "shape": [-1, -1],
                                 "description": "the penultimate layer (the logits layer's "
                                                "input), for embeddings and FID"},
                    "probabilities": probabilities}
    return {
        "serving_default": base.Signature(serve_images, images_spec, {"images": pixels}, out),
        "serve_image_bytes": base.Signature(
            serve_image_bytes, [tf.TensorSpec([None], tf.string, name="image_bytes")],
            bytes_in, {**out, "inverted": {"dtype": "bool", "shape": [-1]},
                       "centered": {"dtype": "bool", "shape": [-1]},
                       "low_confidence": {
                           "dtype": "bool", "shape": [-1],
                           "description": f"the top probability is below {threshold}"}}),
        "features": base.Signature(serve_features, images_spec, {"images": pixels},
                                   features_out),
    }

  def tflite_signature(self, model, config, info):
    return base.Signature(
        lambda images: {"probabilities": model(data.normalize_images(images), training=False)},
        [tf.TensorSpec([None, *info.image_shape], tf.uint8, name="images")],
        {"images": artifacts.pixel_contract(info.image_shape)},
        {"probabilities": {"dtype": "float32", "shape": [-1, info.num_classes]}})

  def calibration_images(self, config, builder, *, calibration_examples, **options):
    # Training pixels (TFDS's stored order is already shuffled).
    return data.split_arrays(builder, config.train_split, calibration_examples)[0]

  def evaluator(self, config, builder, split, **options):
    return ClassificationEvaluator(builder, split, config.eval_batch_size)

  def predict_fn(self, front):
    return lambda images: front.predict(images)["probabilities"]

  def example_input(self, config, builder):
    return (data.split_arrays(builder, config.eval_split, 1)[0],)

  def card_metrics(self, metrics):
    return {"num_examples": metrics["num_examples"], "keras_accuracy": metrics["accuracy"]}

  def checks(self, card, *, min_agreement, max_int8_accuracy_drop, **options):
    # Counted in answers with a binomial allowance (`artifacts.allowed_count`): on a
    # user's 600-image validation split a fixed 0.2-point bound is one image.
    parity, files = card["parity"], card["files"]
    n = card["metrics"]["num_examples"]
    checks = []
    for key, minimum in (min_agreement or MIN_AGREEMENT).items():
      if key in parity:
        changed = round((1.0 - parity[key]["top1_agreement"]) * n)
        allowed = artifacts.allowed_count(n, round(1.0 - minimum, 12))
        checks.append({"check": f"{key} top-1 agreement >= {minimum} (at most {allowed} of "
                                f"{n} answers changed)", "file": key,
                       "value": changed, "passed": changed <= allowed})
    if max_int8_accuracy_drop is None:
      knobs = {**card.get("training", {}).get("config", {}).get("task_kwargs", {}),
               **card.get("task_kwargs_at_export", {})}
      max_int8_accuracy_drop = knobs.get("max_int8_accuracy_drop") or MAX_INT8_ACCURACY_DROP
    if "int8" in parity:
      # Net answers lost; none when the int8 file scores higher than float.
      lost = max(0, round((card["metrics"]["keras_accuracy"] - parity["int8"]["accuracy"]) * n))
      allowed = artifacts.allowed_count(n, max_int8_accuracy_drop)
      checks.append({"check": f"int8 accuracy within {max_int8_accuracy_drop:.4g} of float "
                              f"(at most {allowed} of {n} answers lost)", "file": "int8",
                     "value": lost, "passed": lost <= allowed})
      if "float32" in files:
        ratio = files["int8"]["bytes"] / files["float32"]["bytes"]
        checks.append({"check": f"int8 file <= {MAX_INT8_SIZE_RATIO} x float32 file",
                       "file": "int8", "value": ratio, "passed": ratio <= MAX_INT8_SIZE_RATIO})
    return checks

  def headline(self, metrics):
    return f"{metrics['split']} accuracy {metrics['accuracy']:.4f}"

  def format_value(self, key, value):
    if isinstance(value, float) and (key == "accuracy" or key.endswith("agreement")):
      return f"{100 * value:.2f} %"
    return super().format_value(key, value)


TASK = Classification()
