"""Task `classification`: images -> class probabilities (the MNIST MLP and CNN recipes).

Data: `(image float32 [0, 1], label)` batches. Compile: sparse cross-entropy + accuracy.
Callbacks: a confusion matrix and a few input images in TensorBoard. Metrics: accuracy,
loss. Export (every file takes uint8 pixels 0-255 as the dataset stores them; scaling is
inside each graph):
  SavedModel  serving_default(images uint8 [N, H, W, C]) -> probabilities, classes, labels
              serve_image_bytes(image_bytes string [N])   -> the same + inverted
              features(images uint8 [N, H, W, C])         -> features (penultimate layer,
                  float32 [N, D]: embeddings, and the feature space of `zoo.quality`),
                  probabilities
  TFLite      float32, float16, dynamic_int8, int8: images uint8 -> probabilities float32
Parity: top-1 agreement of every file with the Keras model; int8 accuracy drop and size.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

from zoo import callbacks as zoo_callbacks
from zoo import data, predictor
from zoo.tasks.base import Task

# Parity targets (see BENCHMARKS.md): top-1 agreement with the Keras model for the float
# files and the SavedModel; for the int8 files, accuracy within 0.2 points of float.
MIN_AGREEMENT = {"saved_model": 0.999, "float32": 0.999, "float16": 0.999}
MAX_INT8_ACCURACY_DROP = 0.002
MAX_INT8_SIZE_RATIO = 0.30


def make_datasets(builder, config, *, training_only=False):
  """The recipe's training and validation pipelines (the one place their arguments are
  taken from the config)."""
  train = data.make_classification_dataset(
      builder, config.train_split, batch_size=config.batch_size, training=True,
      seed=config.seed, augment=config.augment, max_shift_pixels=config.max_shift_pixels,
      shuffle_buffer_examples=config.shuffle_buffer_examples)
  if training_only:
    return train, None
  return train, data.make_classification_dataset(
      builder, config.eval_split, batch_size=config.eval_batch_size, training=False)


def feature_model(model: keras.Model) -> keras.Model:
  """`model` -> (features, probabilities): features are the input of its `logits` layer."""
  return keras.Model(model.inputs, [model.get_layer("logits").input, model.outputs[0]])


class Classification(Task):
  name = "classification"
  task_kwargs = {}
  tflite_variants = ("float32", "float16", "dynamic_int8", "int8")
  predictor = predictor.Classifier

  def datasets(self, builder, config):
    return make_datasets(builder, config)

  def compile(self, model, config, make_optimizer, jit_compile):
    model.compile(optimizer=make_optimizer(),
                  loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                  jit_compile=jit_compile)

  def callbacks(self, config, *, builder, log_dir, info, train_ds, validation_ds):
    cbs = [zoo_callbacks.ConfusionMatrix(log_dir, validation_ds, info.class_names)]
    if config.log_images:
      images, _ = next(iter(train_ds))
      cbs.append(zoo_callbacks.ImageSamples(log_dir, images[:config.log_images]))
    return cbs

  def evaluate(self, model, config, builder, split):
    from zoo import distribute  # DATA sharding: under multi-worker, evaluate() shards it.
    ds = distribute.shard_inputs(data.make_classification_dataset(
        builder, split, batch_size=config.eval_batch_size, training=False))
    results = model.evaluate(ds, return_dict=True, verbose=0)
    return {"num_examples": data.num_examples(builder, split),
            "accuracy": float(results["accuracy"]), "loss": float(results["loss"])}

  def evaluate_predictor(self, predictor, config, builder, split):
    images, labels = data.split_arrays(builder, split)
    classes = np.concatenate([predictor.predict(images[i:i + 1000])["classes"]
                              for i in range(0, len(images), 1000)])
    return {"num_examples": int(len(labels)), "accuracy": float(np.mean(classes == labels))}

  def headline(self, metrics):
    return f"{metrics['split']} accuracy {metrics['accuracy']:.4f}"

  def export(self, model, config, builder, directory, card, *, variants,
             parity_split=None, calibration_examples=500, min_agreement=None,
             max_int8_accuracy_drop=MAX_INT8_ACCURACY_DROP):
    """See the module docstring. Options: `parity_split` (default: the run's eval split),
    `calibration_examples` (training images calibrating int8), `min_agreement` (per file,
    default `MIN_AGREEMENT`), `max_int8_accuracy_drop`."""
    from zoo import export  # The generic half: conversion, contracts.
    info = data.dataset_info(builder)
    split = parity_split or config.eval_split
    images, labels = data.split_arrays(builder, split)
    reference = model.predict(data.normalize_images(images), batch_size=1000, verbose=0)
    pixels = export.pixel_contract(info.image_shape)
    write_saved_model(model, directory, info.image_shape, info.class_names)
    with open(os.path.join(directory, "labels.txt"), "w") as f:
      f.write("\n".join(info.class_names) + "\n")
    calibration = None
    if "int8" in variants:  # Training pixels (TFDS's stored order is already shuffled).
      calibration, _ = data.split_arrays(builder, config.train_split, calibration_examples)
    files = {"saved_model": {"path": ".", "signatures": _signature_specs(info, pixels)}}
    files.update(export.write_tflite_variants(
        lambda images: {"probabilities": model(data.normalize_images(images), training=False)},
        [tf.TensorSpec([None, *info.image_shape], tf.uint8, name="images")], directory,
        variants, inputs={"images": pixels},
        outputs={"probabilities": {"dtype": "float32", "shape": [-1, info.num_classes]}},
        calibration_images=calibration))
    card.update({
        "image_shape": list(info.image_shape), "labels": list(info.class_names),
        "files": files,
        "metrics": {"split": split, "num_examples": int(len(labels)),
                    "keras_accuracy": float(np.mean(np.argmax(reference, -1) == labels))},
    })
    export.write_card(directory, card)  # Predictors read labels and shapes from it.
    sm = predictor.Classifier(predictor.SavedModelBackend(directory), card)
    parity = {"saved_model": _agreement(reference, sm.predict(images)["probabilities"], labels)}
    for variant in variants:
      backend = predictor.TFLiteBackend(os.path.join(directory, files[variant]["path"]))
      export.check_tflite_contract(backend, files[variant], variant)
      parity[variant] = _agreement(
          reference, predictor.Classifier(backend, card).predict(images)["probabilities"],
          labels)
    card["parity"] = parity
    card["checks"] = _check_parity(card, min_agreement or MIN_AGREEMENT,
                                   max_int8_accuracy_drop)
    return card


def write_saved_model(model: keras.Model, path: str, image_shape, class_names) -> None:
  """Writes the SavedModel with the three signatures of the module docstring to `path`."""
  from zoo import export
  names = list(class_names)
  features = feature_model(model)

  def outputs(probabilities):
    classes = tf.argmax(probabilities, axis=-1)
    return {"probabilities": tf.cast(probabilities, tf.float32), "classes": classes,
            "labels": tf.gather(tf.constant(names), classes)}

  def serve_images(images):
    return outputs(model(data.normalize_images(images), training=False))

  def serve_image_bytes(image_bytes):
    images, inverted = tf.map_fn(
        lambda b: data.match_dataset_polarity(data.decode_image_bytes(b, image_shape)),
        image_bytes, fn_output_signature=(tf.TensorSpec(image_shape, tf.uint8),
                                          tf.TensorSpec([], tf.bool)))
    return {**serve_images(images), "inverted": inverted}

  def serve_features(images):
    feats, probabilities = features(data.normalize_images(images), training=False)
    return {"features": tf.cast(feats, tf.float32),
            "probabilities": tf.cast(probabilities, tf.float32)}

  images_spec = [tf.TensorSpec([None, *image_shape], tf.uint8, name="images")]
  export.write_saved_model(path, {
      "serving_default": (serve_images, images_spec),
      "serve_image_bytes": (serve_image_bytes,
                            [tf.TensorSpec([None], tf.string, name="image_bytes")]),
      "features": (serve_features, images_spec),
  })


def _agreement(reference: np.ndarray, probabilities: np.ndarray, labels: np.ndarray) -> dict:
  return {
      "accuracy": float(np.mean(np.argmax(probabilities, -1) == labels)),
      "top1_agreement": float(np.mean(np.argmax(probabilities, -1) == np.argmax(reference, -1))),
      "max_abs_diff": float(np.max(np.abs(probabilities - reference))),
  }


def _signature_specs(info, pixels) -> dict:
  outputs = {"probabilities": {"dtype": "float32", "shape": [-1, info.num_classes]},
             "classes": {"dtype": "int64", "shape": [-1]},
             "labels": {"dtype": "string", "shape": [-1]}}
  return {
      "serving_default": {"inputs": {"images": pixels}, "outputs": outputs},
      "serve_image_bytes": {
          "inputs": {"image_bytes": {
              "dtype": "string", "shape": [-1],
              "description": "encoded PNG/JPEG/GIF/BMP, any size, gray or RGB; a dark "
                             "digit on light paper is inverted to the dataset's polarity"}},
          "outputs": {**outputs, "inverted": {"dtype": "bool", "shape": [-1]}}},
      "features": {
          "inputs": {"images": pixels},
          "outputs": {"features": {"dtype": "float32", "shape": [-1, -1],
                                   "description": "the penultimate layer (the logits "
                                                  "layer's input), for embeddings and FID"},
                      "probabilities": outputs["probabilities"]}},
  }


def _check_parity(card, min_agreement, max_int8_drop) -> list[dict]:
  parity, files = card["parity"], card["files"]
  float_acc = card["metrics"]["keras_accuracy"]
  checks = []
  for key, minimum in min_agreement.items():
    if key in parity:
      checks.append({"check": f"{key} top-1 agreement >= {minimum}",
                     "value": parity[key]["top1_agreement"],
                     "passed": parity[key]["top1_agreement"] >= minimum})
  if "int8" in parity:
    drop = float_acc - parity["int8"]["accuracy"]
    checks.append({"check": f"int8 accuracy within {max_int8_drop} of float",
                   "value": drop, "passed": drop <= max_int8_drop})
    if "float32" in files:
      ratio = files["int8"]["bytes"] / files["float32"]["bytes"]
      checks.append({"check": f"int8 file <= {MAX_INT8_SIZE_RATIO} x float32 file",
                     "value": ratio, "passed": ratio <= MAX_INT8_SIZE_RATIO})
  return checks


TASK = Classification()
