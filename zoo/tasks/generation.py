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
Parity: max and mean absolute pixel difference of every file from the Keras generator.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from zoo import callbacks as zoo_callbacks
from zoo import data, predictor, quality
from zoo.models import gan
from zoo.tasks.base import Task

# Largest pixel difference (0-255) from the Keras generator, per file. The SavedModel runs
# the same graph; TFLite kernels round differently (float16 stores float16 weights).
MAX_PIXEL_DIFF = {"saved_model": 1, "float32": 2, "float16": 24}
# Sample indices of the parity latents, far from the quality samples (0, 1, ...).
_PARITY_SEED_OFFSET = 10_000_000


class Generation(Task):
  name = "generation"
  task_kwargs = {
      # Exported zoo classifier whose `features` signature is the FID feature space.
      "feature_model": quality.DEFAULT_FEATURE_MODEL,
      # Samples measured after every `quality_every_epochs` epochs (TensorBoard, logs).
      "quality_samples": 2000,
      "quality_every_epochs": 1,
      # Samples measured for metrics.json, scripts/evaluate.py and the model card.
      "eval_samples": 10_000,
  }
  tflite_variants = ("float32", "float16")
  predictor = predictor.Generator

  def datasets(self, builder, config):
    from zoo.tasks import classification
    train, _ = classification.make_datasets(builder, config, training_only=True)
    if config.model_kwargs.get("conditional"):
      return train.map(lambda x, y: (x * 2.0 - 1.0, y)), None
    return train.map(lambda x, y: x * 2.0 - 1.0), None

  def compile(self, model, config, make_optimizer, jit_compile):
    model.compile(d_optimizer=make_optimizer(), g_optimizer=make_optimizer(),
                  jit_compile=jit_compile)

  def callbacks(self, config, *, builder, log_dir, info, train_ds, validation_ds):
    knobs = self.knobs(config)
    # First: the sample grid and the quality measurement then see this epoch's average.
    cbs = [zoo_callbacks.GeneratorEMA()] if config.model_kwargs.get("ema_momentum") else []
    if config.log_images:
      rows = info.num_classes if config.model_kwargs.get("conditional") else 8
      per_row = 10 if config.model_kwargs.get("conditional") else 8
      seeds = np.arange(rows * per_row)
      labels = np.repeat(np.arange(rows), per_row)
      cbs.append(zoo_callbacks.SampleGrid(
          log_dir, lambda model: sample(model, seeds, labels), rows=rows))
    if knobs["quality_every_epochs"]:
      meter = QualityMeter(knobs["feature_model"])
      meter.set_real(builder, config.eval_split)
      cbs.append(zoo_callbacks.GeneratorQuality(
          lambda model: meter.measure(lambda s, y: sample(model, s, y),
                                      knobs["quality_samples"], model.conditional,
                                      info.num_classes),
          every_epochs=knobs["quality_every_epochs"]))
    return cbs

  def evaluate(self, model, config, builder, split):
    knobs = self.knobs(config)
    meter = QualityMeter(knobs["feature_model"])
    meter.set_real(builder, split)
    return meter.measure(lambda seeds, labels: sample(model, seeds, labels),
                         knobs["eval_samples"], model.conditional,
                         data.dataset_info(builder).num_classes)

  def evaluate_predictor(self, predictor, config, builder, split):
    meter = QualityMeter(self.knobs(config)["feature_model"])
    meter.set_real(builder, split)
    return meter.measure(lambda s, y: predictor.generate_seeds(s, y),
                         self.knobs(config)["eval_samples"], predictor.conditional,
                         len(predictor.class_names))

  def headline(self, metrics):
    text = (f"FID {metrics['fid']:.2f} vs {metrics['split']} ({metrics['num_samples']} "
            f"samples), classes {100 * metrics['coverage_min']:.1f}-"
            f"{100 * metrics['coverage_max']:.1f} %, confidence "
            f"{metrics['mean_confidence']:.3f}")
    if "label_agreement_min" in metrics:
      text += f", requested digit >= {100 * metrics['label_agreement_min']:.1f} %"
    return text

  def export(self, model, config, builder, directory, card, *, variants, eval_samples=None):
    """See the module docstring. Option: `eval_samples` measured for the card's metrics
    (default: the run's `task_kwargs.eval_samples`)."""
    from zoo import export
    info = data.dataset_info(builder)
    conditional, latent_dim = model.conditional, model.latent_dim
    generator = model.sampler
    label_spec = [tf.TensorSpec([None], tf.int64, name="labels")] if conditional else []

    def images(latent, *labels):
      inputs = [latent, tf.cast(labels[0], tf.int32)] if conditional else latent
      return {"images": gan.to_uint8(generator(inputs, training=False))}

    def generate(seed, *labels):
      return images(gan.seed_latents(seed, latent_dim), *labels)

    latent_spec = [tf.TensorSpec([None, latent_dim], tf.float32, name="latent")]
    export.write_saved_model(directory, {
        "serving_default": (images, latent_spec + label_spec),
        "generate": (generate, [tf.TensorSpec([None], tf.int64, name="seed")] + label_spec),
    })
    out_spec = {"images": {"dtype": "uint8", "shape": [-1, *info.image_shape], "range": [0, 255]}}
    in_spec = {"latent": {"dtype": "float32", "shape": [-1, latent_dim],
                          "description": "standard normal"}}
    if conditional:
      in_spec["labels"] = {"dtype": "int64", "shape": [-1],
                           "description": f"requested class, 0-{info.num_classes - 1}"}
    files = {"saved_model": {"path": ".", "signatures": {
        "serving_default": {"inputs": in_spec, "outputs": out_spec},
        "generate": {"inputs": {"seed": {"dtype": "int64", "shape": [-1],
                                         "description": "one image per seed, the same "
                                                        "image for the same seed"},
                                **{k: v for k, v in in_spec.items() if k == "labels"}},
                     "outputs": out_spec}}}}
    files.update(export.write_tflite_variants(images, latent_spec + label_spec, directory,
                                              variants, inputs=in_spec, outputs=out_spec))
    card.update({"image_shape": list(info.image_shape), "labels": list(info.class_names),
                 "latent_dim": latent_dim, "conditional": conditional, "files": files})
    export.write_card(directory, card)

    # Parity: every file against the Keras generator on the same latents.
    seeds = _PARITY_SEED_OFFSET + np.arange(256)
    labels = seeds % info.num_classes if conditional else None
    latent = gan.seed_latents(seeds, latent_dim).numpy()
    reference = sample(model, seeds, labels).astype(np.int32)
    saved = predictor.Generator(predictor.SavedModelBackend(directory), card)
    outputs = {"saved_model": saved.generate(latent, labels),
               "saved_model_generate": saved.generate_seeds(seeds, labels)}
    for variant in variants:
      backend = predictor.TFLiteBackend(os.path.join(directory, files[variant]["path"]))
      export.check_tflite_contract(backend, files[variant], variant)
      outputs[variant] = predictor.Generator(backend, card).generate(latent, labels)
    parity = {}
    for key, out in outputs.items():
      diff = np.abs(out.astype(np.int32) - reference)
      parity[key] = {"max_abs_pixel_diff": int(diff.max()),
                     "mean_abs_pixel_diff": float(diff.mean())}
    card["parity"] = {k: v for k, v in parity.items() if k != "saved_model_generate"}
    card["checks"] = [
        {"check": f"{key} max |pixel diff| <= {MAX_PIXEL_DIFF[key]}",
         "value": card["parity"][key]["max_abs_pixel_diff"],
         "passed": card["parity"][key]["max_abs_pixel_diff"] <= MAX_PIXEL_DIFF[key]}
        for key in card["parity"]]
    card["checks"].append({"check": "generate(seed) == serving_default(seed_latents(seed))",
                           "value": parity["saved_model_generate"]["max_abs_pixel_diff"],
                           "passed": parity["saved_model_generate"]["max_abs_pixel_diff"]
                           == parity["saved_model"]["max_abs_pixel_diff"] == 0})

    # Quality of the exported SavedModel itself (its `generate` signature).
    knobs = self.knobs(config)
    meter = QualityMeter(knobs["feature_model"])
    meter.set_real(builder, config.eval_split)
    card["metrics"] = {"split": config.eval_split, **meter.measure(
        lambda s, y: saved.generate_seeds(s, y), eval_samples or knobs["eval_samples"],
        conditional, info.num_classes)}
    return card


def sample(model, seeds, labels=None, batch_size: int = 1000) -> np.ndarray:
  """uint8 images [N, H, W, C] from a `GAN` for int `seeds` (and requested `labels`)."""
  seeds = np.asarray(seeds)
  out = []
  for start in range(0, len(seeds), batch_size):
    latent = gan.seed_latents(seeds[start:start + batch_size], model.latent_dim)
    inputs = latent
    if model.conditional:
      inputs = [latent, tf.constant(np.asarray(labels[start:start + batch_size]), tf.int32)]
    out.append(gan.to_uint8(model.sampler(inputs, training=False)).numpy())
  return np.concatenate(out)


class QualityMeter:
  """`zoo.quality` for one generator: the feature classifier and the real images' statistics
  are loaded once; `measure` samples `n` images (classes in turn when conditional)."""

  def __init__(self, feature_model: str):
    self.classifier = quality.FeatureClassifier(feature_model)
    self._real = {}

  def set_real(self, builder, split):
    key = (os.fspath(builder.data_dir), split)
    if key not in self._real:
      images, _ = data.split_arrays(builder, split)
      self._real[key] = quality.real_statistics(self.classifier, images)
    self.real_stats = self._real[key]

  def measure(self, generate, n, conditional, num_classes) -> dict:
    seeds = np.arange(n)
    labels = seeds % num_classes if conditional else None
    result = quality.generator_quality(generate(seeds, labels), self.classifier,
                                       self.real_stats, labels, num_classes)
    return {**result, "feature_model": self.classifier.describe()}


TASK = Generation()
