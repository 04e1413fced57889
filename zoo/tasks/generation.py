"""Task `generation`: latent vectors (and a requested class) -> images (the DCGAN recipes).

Data: training images scaled to [-1, 1]; `(images, labels)` for a conditional model
(`model_kwargs.conditional=True`), images only otherwise. No validation pass: quality is
measured by sampling. Compile: `GAN.compile(d_optimizer, g_optimizer)`, two optimizers
made from the config. Callbacks: a sample grid from fixed latents every epoch (one row
per class for a conditional model) and the quality metrics of `zoo.quality` in the epoch
logs. Metrics: FID in the zoo classifier's feature space, class coverage, mean
confidence, label agreement (conditional).

Export (images come out as uint8 pixels 0-255 like the dataset's):
  SavedModel  serving_default(latent float32 [N, D] [, labels int64 [N]]) -> images uint8
              generate(seed int64 [N] [, labels int64 [N]]) -> images uint8: one image per
                  seed, the same for the same seed (latent = `gan.seed_latents(seed)`)
  TFLite      float32, float16: latent [, labels] -> images uint8, built-in ops only
Parity: every file's quality on the same seeds, and its largest and mean absolute pixel
difference from the Keras generator.
Front: `Generator` (`generate`, `generate_seeds`).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Optional

import numpy as np
import tensorflow as tf

from zoo import callbacks as zoo_callbacks
from zoo import data, errors, quality, runtime
from zoo.models import gan
from zoo.tasks import base

# Largest pixel difference (0-255) from the Keras generator, per file. The SavedModel runs
# the same graph; TFLite and ONNX Runtime kernels round differently (float16 stores float16
# weights).
MAX_PIXEL_DIFF = {"saved_model": 1, "float32": 2, "float16": 24, "onnx": 2}


class Generator(runtime.Predictor):
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
        raise errors.InvalidValueError("Invalid value for `labels`: this generator is "
                                       "unconditional; pass no labels.")
      return {}
    if labels is None:
      raise errors.InvalidValueError(
          "Invalid value for `labels`: this generator is conditional; pass one class index "
          f"(0-{len(self.class_names) - 1}) per image.")
    labels = np.asarray(labels)
    if (labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer)
        or labels.min(initial=0) < 0 or labels.max(initial=0) >= len(self.class_names)):
      raise errors.InvalidValueError(
          f"Invalid value for `labels`: expected {n} integers in "
          f"[0, {len(self.class_names) - 1}]. Received: {labels.tolist()!r}")
    return {"labels": labels.astype(np.int64)}

  def generate(self, latent, labels=None) -> np.ndarray:
    """latent float32 [N, latent_dim] (and labels [N]) -> uint8 images [N, H, W, C]."""
    latent = runtime.check_array("latent", np.asarray(latent, np.float32), np.float32,
                                 (self.latent_dim,))
    return self.backend.run(latent=latent, **self._labels(labels, len(latent)))["images"]

  def generate_seeds(self, seeds, labels=None) -> np.ndarray:
    """One image per int seed, the same image for the same seed everywhere (the latent is
    `zoo.models.gan.seed_latents(seeds)`, as in the SavedModel's `generate` signature)."""
    seeds = np.asarray(seeds, np.int64).reshape(-1)
    if "generate" in self.backend.signatures:
      return self.backend.run("generate", seed=seeds,
                              **self._labels(labels, len(seeds)))["images"]
    return self.generate(gan.seed_latents(seeds, self.latent_dim).numpy(), labels)


_REAL_STATISTICS = {}
# Images generated per call while evaluating, and the least seconds between two progress
# lines (with an ETA): 10,000 samples through a TFLite file take a minute or more.
# Data whose FID the zoo's shipped classifier (`zoo.quality.DEFAULT_FEATURE_MODEL`) measures.
MNIST_DATASETS = ("mnist",)
NO_FEATURE_MODEL = (
    "FID needs a feature classifier trained on this data: train one on the same images "
    "(python scripts/train.py --model=mnist_cnn --dataset=folder:DIR ...), export it "
    "(python scripts/export.py ...) and pass --set=task_kwargs.feature_model=exports/mnist_cnn")

PROGRESS_CHUNK = 1000
PROGRESS_EVERY_S = 5.0

log = logging.getLogger("zoo")


class QualityEvaluator(base.Evaluator):
  """`zoo.quality` of `generate(seeds, labels) -> uint8 images`: FID against a split's real
  images in a zoo classifier's feature space, class coverage, confidence (and requested-
  class agreement when conditional), on samples 0..num_samples-1 (classes in turn).

  Parity (`compare`): the candidate's FID and confidence, and its largest and mean
  absolute pixel difference from the reference's images for the same seeds.

  Without a feature model (data no zoo classifier knows, e.g. a user's folder) the images
  are still generated and compared (parity), and the metrics say why there is no FID.

  Args:
    builder, split: the real images.
    feature_model: an exported zoo classifier of this data (the same image shape, and for a
      conditional generator the same classes) with a `features` signature, or None.
    num_samples: images generated per evaluation.
    num_classes: classes of the data (labels asked of a conditional generator).
    conditional: ask for a class per image.
  """

  def __init__(self, builder, split: str, *, feature_model: Optional[str], num_samples: int,
               num_classes: int, conditional: bool):
    self.seeds = np.arange(num_samples)
    self.labels = self.seeds % num_classes if conditional else None
    self.num_classes = num_classes
    self.classifier = None
    if feature_model is None:
      return
    self.classifier = quality.FeatureClassifier(feature_model)
    info = data.dataset_info(builder)
    card = self.classifier.card
    if (tuple(card.get("image_shape", ())) != tuple(info.image_shape)
        or len(card.get("labels", ())) != info.num_classes):
      raise errors.InvalidValueError(
          f"Invalid value for `task_kwargs.feature_model`: {feature_model!r} classifies "
          f"{len(card.get('labels', ()))} classes of {card.get('image_shape')} images; this "
          f"data has {info.num_classes} classes of {list(info.image_shape)} images. Expected "
          "a zoo classifier trained on the same data (e.g. mnist_cnn on the same folder, "
          "exported).")
    # Read once per process for a (classifier, data, split): every epoch's measurement
    # and the final one compare with the same real statistics.
    key = (self.classifier.source["path"], os.fspath(builder.data_dir), split)
    if key not in _REAL_STATISTICS:
      started = time.perf_counter()
      images, _ = data.split_arrays(builder, split)
      _REAL_STATISTICS[key] = quality.real_statistics(self.classifier, images)
      log.info("Real-image statistics of %s: %d images (%.0f s, once per process).", split,
               len(images), time.perf_counter() - started)
    self.real_stats = _REAL_STATISTICS[key]

  def predictions(self, predict):
    """The images of every seed, generated `PROGRESS_CHUNK` at a time; a progress line with
    an ETA at most every `PROGRESS_EVERY_S` seconds, and one when done."""
    chunks, total = [], len(self.seeds)
    started = last = time.perf_counter()
    for start in range(0, total, PROGRESS_CHUNK):
      stop = min(start + PROGRESS_CHUNK, total)
      chunks.append(predict(self.seeds[start:stop],
                            None if self.labels is None else self.labels[start:stop]))
      now = time.perf_counter()
      if now - last >= PROGRESS_EVERY_S and stop < total:
        last = now
        log.info("Generated %d/%d images (%.0f s, about %.0f s left).", stop, total,
                 now - started, (now - started) * (total - stop) / stop)
    if total > PROGRESS_CHUNK:
      log.info("Generated %d images (%.0f s).", total, time.perf_counter() - started)
    return np.concatenate(chunks)

  def metrics(self, images):
    if self.classifier is None:
      return {"num_samples": int(len(images)), "fid": None, "quality": NO_FEATURE_MODEL}
    return {**quality.generator_quality(images, self.classifier, self.real_stats,
                                        self.labels, self.num_classes),
            "feature_model": self.classifier.describe()}

  def compare(self, reference, candidate):
    diff = np.abs(candidate.predictions.astype(np.int32) - reference.predictions)
    return {"fid": candidate.metrics["fid"],
            "mean_confidence": candidate.metrics.get("mean_confidence"),
            "max_abs_pixel_diff": int(diff.max()), "mean_abs_pixel_diff": float(diff.mean())}


class Generation(base.Task):
  name = "generation"
  task_kwargs = {
      # Exported zoo classifier whose `features` signature is the FID feature space, trained
      # on the same data; None: the zoo's shipped MNIST classifier for `mnist`, and no FID
      # for other data (`feature_model(config)`).
      "feature_model": None,
      # Samples measured after every `quality_every_epochs` epochs (TensorBoard, logs).
      "quality_samples": 2000,
      "quality_every_epochs": 1,
      # Samples measured for metrics.json, scripts/evaluate.py and the model card.
      "eval_samples": 10_000,
  }
  tflite_variants = ("float32", "float16")
  front = Generator
  count_key = "num_samples"
  # A conditional GAN's class embeddings (generator, discriminator): a row per class.
  class_layers = {"label_embedding": 0, "label_projection": 0}
  export_options = {"eval_samples": None}  # None: the run's task_kwargs.eval_samples

  def check_data(self, config, info):
    if config.model_kwargs.get("conditional") and info.num_classes < 2:
      raise errors.InvalidValueError(
          f"Invalid value for `dataset`: {config.dataset} has one class "
          f"({list(info.class_names)}); a conditional generator needs class folders "
          "(DIR/<class>/*.png); an unconditional recipe (dcgan_mnist) takes images alone.")

  def datasets(self, builder, config, epochs=(0,)):
    train = data.make_training_dataset(builder, config, epochs)
    if config.model_kwargs.get("conditional"):
      return train.map(lambda x, y: (x * 2.0 - 1.0, y)), None
    return train.map(lambda x, y: x * 2.0 - 1.0), None

  def compile(self, model, config, make_optimizer, jit_compile, steps_per_execution=1):
    model.compile(d_optimizer=make_optimizer(), g_optimizer=make_optimizer(),
                  jit_compile=jit_compile, steps_per_execution=steps_per_execution)

  def callbacks(self, config, *, builder, log_dir, info, train_ds, validation_ds):
    knobs = self.knobs(config)
    # First: the sample grid and the quality measurement then see this epoch's average.
    cbs = [zoo_callbacks.GeneratorEMA()] if config.model_kwargs.get("ema_momentum") else []
    cbs.append(zoo_callbacks.LearningRates({"d": "d_optimizer", "g": "g_optimizer"}))
    if config.log_images:
      rows = info.num_classes if config.model_kwargs.get("conditional") else 8
      per_row = 10 if config.model_kwargs.get("conditional") else 8
      seeds = np.arange(rows * per_row)
      labels = np.repeat(np.arange(rows), per_row)
      cbs.append(zoo_callbacks.SampleGrid(
          log_dir, lambda model: self.keras_front(model, config, info).generate_seeds(
              seeds, labels if model.conditional else None), rows=rows))
    if self.feature_model(config) is None:
      log.warning("%s: no FID or class statistics during training: %s", config.dataset,
                  NO_FEATURE_MODEL)
    elif knobs["quality_every_epochs"]:
      evaluator = self.evaluator(config, builder, config.eval_split,
                                 eval_samples=knobs["quality_samples"])
      cbs.append(zoo_callbacks.GeneratorQuality(
          lambda model: evaluator(self.predict_fn(self.keras_front(model, config, info))),
          every_epochs=knobs["quality_every_epochs"]))
    return cbs

  def card_fields(self, model, config, info):
    return {"image_shape": list(info.image_shape), "labels": list(info.class_names),
            "latent_dim": model.latent_dim, "conditional": model.conditional}

  def _functions(self, model):
    """`(images(latent[, labels]), generate(seed[, labels]))` over the averaged generator."""
    def images(latent, labels=None):
      inputs = latent if labels is None else [latent, tf.cast(labels, tf.int32)]
      return {"images": gan.to_uint8(model.sampler(inputs, training=False))}

    def generate(seed, labels=None):
      return images(gan.seed_latents(seed, model.latent_dim), labels)
    return images, generate

  def _specs(self, model, info):
    label_spec = ([tf.TensorSpec([None], tf.int64, name="labels")] if model.conditional
                  else [])
    latent_spec = [tf.TensorSpec([None, model.latent_dim], tf.float32, name="latent")]
    inputs = {"latent": {"dtype": "float32", "shape": [-1, model.latent_dim],
                         "description": "standard normal"}}
    if model.conditional:
      inputs["labels"] = {"dtype": "int64", "shape": [-1],
                          "description": f"requested class, 0-{info.num_classes - 1}"}
    outputs = {"images": {"dtype": "uint8", "shape": [-1, *info.image_shape],
                          "range": [0, 255]}}
    return latent_spec + label_spec, label_spec, inputs, outputs

  def signatures(self, model, config, info):
    images, generate = self._functions(model)
    spec, label_spec, inputs, outputs = self._specs(model, info)
    seed_inputs = {"seed": {"dtype": "int64", "shape": [-1],
                            "description": "one image per seed, the same image for the "
                                           "same seed"},
                   **{k: v for k, v in inputs.items() if k == "labels"}}
    return {
        "serving_default": base.Signature(images, spec, inputs, outputs),
        "generate": base.Signature(
            generate, [tf.TensorSpec([None], tf.int64, name="seed")] + label_spec,
            seed_inputs, outputs),
    }

  def tflite_signature(self, model, config, info):
    images, _ = self._functions(model)
    spec, _, inputs, outputs = self._specs(model, info)
    return base.Signature(images, spec, inputs, outputs)

  def feature_model(self, config) -> Optional[str]:
    """The classifier whose features measure FID: the knob, or for the `mnist` dataset the
    zoo's shipped `mnist_cnn` (`zoo.quality.DEFAULT_FEATURE_MODEL`); None for other data."""
    named = self.knobs(config)["feature_model"]
    if named:
      return named
    return quality.DEFAULT_FEATURE_MODEL if config.dataset in MNIST_DATASETS else None

  def evaluator(self, config, builder, split, *, eval_samples=None, **options):
    knobs = self.knobs(config)
    return QualityEvaluator(
        builder, split, feature_model=self.feature_model(config),
        num_samples=eval_samples or knobs["eval_samples"],
        num_classes=data.dataset_info(builder).num_classes,
        conditional=bool(config.model_kwargs.get("conditional")))

  def predict_fn(self, front):
    return front.generate_seeds

  def example_input(self, config, builder):
    return np.array([0]), (np.array([0]) if config.model_kwargs.get("conditional") else None)

  def checks(self, card, **options):
    return [{"check": f"{key} max |pixel diff| <= {MAX_PIXEL_DIFF[key]}", "file": key,
             "value": parity["max_abs_pixel_diff"],
             "passed": parity["max_abs_pixel_diff"] <= MAX_PIXEL_DIFF[key]}
            for key, parity in card["parity"].items()]

  def self_checks(self, front):
    seeds = np.arange(64)
    labels = seeds % len(front.class_names) if front.conditional else None
    by_seed = front.generate_seeds(seeds, labels)
    by_latent = front.generate(gan.seed_latents(seeds, front.latent_dim).numpy(), labels)
    diff = int(np.abs(by_seed.astype(np.int32) - by_latent).max())
    return [{"check": "generate(seed) == serving_default(seed_latents(seed))",
             "file": "saved_model", "value": diff, "passed": diff == 0}]

  def headline(self, metrics):
    if metrics.get("fid") is None:
      return f"{metrics['num_samples']} samples; no FID: {NO_FEATURE_MODEL}"
    text = (f"FID {metrics['fid']:.2f} vs {metrics['split']} ({metrics['num_samples']} "
            f"samples), classes {100 * metrics['coverage_min']:.1f}-"
            f"{100 * metrics['coverage_max']:.1f} %, confidence "
            f"{metrics['mean_confidence']:.3f}")
    if "label_agreement_min" in metrics:
      text += f", requested digit >= {100 * metrics['label_agreement_min']:.1f} %"
    return text


TASK = Generation()
