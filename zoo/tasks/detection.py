"""Task `detection`: images -> boxes, classes and scores (the RetinaNet-style recipes).

Data: any TFDS detection layout (`zoo.data.detection_input`): images letterboxed to the
model's square input, anchor targets encoded in the pipeline. Compile: `DetectionLoss`
(focal + Huber) with the config's optimizer. Callbacks: COCO mAP of the first
`map_images` validation images in the epoch logs (`map`, `map_50`), and validation images
with ground truth (green) and predicted boxes, names and scores (red) in TensorBoard.
Metrics: COCO mAP@[.5:.95], mAP@.5, mAP@.75 and per-class AP with pycocotools.

Export (decoding and NMS inside every file; boxes come out normalized to the input image,
whatever its size, as the TensorFlow Object Detection API gives them):
  SavedModel  serving_default(images uint8 [N, H, W, C], any H, W) and
              serve_image_bytes(image_bytes string [N], encoded PNG/JPEG, any size) ->
                detection_boxes float32 [N, K, 4] normalized [ymin, xmin, ymax, xmax],
                detection_scores float32 [N, K], detection_classes float32 [N, K]
                (0-based index into labels.txt), num_detections float32 [N]
  TFLite      float32, float16: images uint8 [1, H, W, C] (any H, W; the interpreter
              resizes its input) -> the same four outputs; built-in ops only (NMS is
              TFLite's NON_MAX_SUPPRESSION_V5), no Flex, no custom op to register.
Parity: mAP@.5 of every file on the test split within `MAX_MAP50_GAP` of the Keras model.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from zoo import boxes as zboxes
from zoo import callbacks as zoo_callbacks
from zoo import coco_eval, data, drawing, predictor
from zoo.data import detection_input
from zoo.models import detector
from zoo.tasks.base import Task

# Largest |mAP@.5 difference| of an exported file from the Keras model (the bar).
MAX_MAP50_GAP = 0.01
_NMS_KNOBS = ("max_detections", "score_threshold", "iou_threshold", "pre_nms_top_k")


class Geometry:
  """What the pipeline, evaluation and export need to know about a detector's input."""

  def __init__(self, config, info):
    self.image_size = detector.model_input_size(info.image_shape, config.model_kwargs)
    self.channels = int(info.image_shape[-1])
    self.anchors = detector.anchors_yxyx(info.image_shape, **config.model_kwargs)
    self.class_names = list(info.class_names)


class Detection(Task):
  name = "detection"
  task_kwargs = {
      # Post-processing (the exported files' too).
      "max_detections": 100,       # per image, after NMS
      "score_threshold": 0.05,     # drop (anchor, class) scores below this
      "iou_threshold": 0.5,        # per-class NMS overlap
      "pre_nms_top_k": 1000,       # best (anchor, class) pairs decoded before NMS
      # Data.
      "flip": False,               # random horizontal flips (off for digits)
      # Validation mAP in the epoch logs every N epochs, on the first `map_images` images.
      "map_every_epochs": 1,
      "map_images": 500,
  }
  tflite_variants = ("float32", "float16")
  predictor = predictor.Detector

  def nms_options(self, config) -> dict:
    knobs = self.knobs(config)
    return {k: knobs[k] for k in _NMS_KNOBS}

  def datasets(self, builder, config):
    geometry = Geometry(config, data.dataset_info(builder))
    common = {"image_size": geometry.image_size, "anchors_yxyx": geometry.anchors}
    train = detection_input.make_detection_dataset(
        builder, config.train_split, batch_size=config.batch_size, training=True,
        seed=config.seed, flip=self.knobs(config)["flip"],
        shuffle_buffer_examples=config.shuffle_buffer_examples, **common)
    validation = detection_input.make_detection_dataset(
        builder, config.eval_split, batch_size=config.eval_batch_size, training=False,
        **common)
    return train, validation

  def compile(self, model, config, make_optimizer, jit_compile):
    num_classes = model.output_shape[-1] - 4
    model.compile(optimizer=make_optimizer(), loss=detector.DetectionLoss(num_classes),
                  jit_compile=jit_compile)

  def callbacks(self, config, *, builder, log_dir, info, train_ds, validation_ds):
    knobs = self.knobs(config)
    geometry = Geometry(config, info)
    cbs = []
    if knobs["map_every_epochs"]:
      evaluator = KerasEvaluator(builder, config.eval_split, geometry, self.nms_options(config),
                                 config.eval_batch_size, limit=knobs["map_images"])
      cbs.append(zoo_callbacks.PeriodicMetrics(evaluator, ("map", "map_50"),
                                               knobs["map_every_epochs"]))
    if config.log_images:
      shown = KerasEvaluator(builder, config.eval_split, geometry, self.nms_options(config),
                             config.eval_batch_size, limit=config.log_images)
      cbs.append(zoo_callbacks.SampleGrid(log_dir, shown.drawings, rows=2,
                                          tag="validation_detections"))
    return cbs

  def evaluate(self, model, config, builder, split):
    geometry = Geometry(config, data.dataset_info(builder))
    return KerasEvaluator(builder, split, geometry, self.nms_options(config),
                          config.eval_batch_size)(model)

  def evaluate_predictor(self, predictor, config, builder, split):
    truth = detection_input.ground_truth(builder, split)
    return coco_eval.coco_metrics(truth, predictor_detections(predictor, truth),
                                  predictor.class_names)

  def headline(self, metrics):
    return (f"{metrics['split']} mAP@[.5:.95] {metrics['map']:.4f}, mAP@.5 "
            f"{metrics['map_50']:.4f} ({metrics['num_images']} images)")

  def export(self, model, config, builder, directory, card, *, variants, max_map50_gap=None):
    """See the module docstring. Option: `max_map50_gap` (default `MAX_MAP50_GAP`)."""
    from zoo import export
    info = data.dataset_info(builder)
    geometry = Geometry(config, info)
    nms = self.nms_options(config)
    serve_images, serve_image_bytes = serving_functions(model, geometry, nms)
    c = geometry.channels
    export.write_saved_model(directory, {
        "serving_default": (serve_images,
                            [tf.TensorSpec([None, None, None, c], tf.uint8, name="images")]),
        "serve_image_bytes": (serve_image_bytes,
                              [tf.TensorSpec([None], tf.string, name="image_bytes")]),
    })
    with open(os.path.join(directory, "labels.txt"), "w") as f:
      f.write("\n".join(geometry.class_names) + "\n")
    k = nms["max_detections"]
    outputs = {
        "detection_boxes": {"dtype": "float32", "shape": [-1, k, 4],
                            "description": "normalized [ymin, xmin, ymax, xmax] of the "
                                           "input image; rows past num_detections are 0"},
        "detection_scores": {"dtype": "float32", "shape": [-1, k]},
        "detection_classes": {"dtype": "float32", "shape": [-1, k],
                              "description": "0-based index into labels"},
        "num_detections": {"dtype": "float32", "shape": [-1]},
    }
    pixels = {"dtype": "uint8", "shape": [-1, -1, -1, c], "range": [0, 255],
              "description": f"pixels of any size ({'gray' if c == 1 else 'RGB'}); "
                             f"letterboxed to {geometry.image_size}x{geometry.image_size} "
                             "inside the model"}
    files = {"saved_model": {"path": ".", "signatures": {
        "serving_default": {"inputs": {"images": pixels}, "outputs": outputs},
        "serve_image_bytes": {"inputs": {"image_bytes": {
            "dtype": "string", "shape": [-1], "description": "encoded PNG/JPEG/GIF/BMP, "
                                                             "any size, gray or RGB"}},
            "outputs": outputs}}}}
    tflite_inputs = {"images": {**pixels, "shape": [1, -1, -1, c]}}
    files.update(export.write_tflite_variants(
        serve_images, [tf.TensorSpec([1, None, None, c], tf.uint8, name="images")], directory,
        variants, inputs=tflite_inputs, outputs=outputs))
    card.update({"image_size": geometry.image_size, "channels": c,
                 "labels": geometry.class_names, "num_anchors": int(len(geometry.anchors)),
                 "postprocessing": nms, "box_format": "normalized [ymin, xmin, ymax, xmax]",
                 "files": files})
    export.write_card(directory, card)

    # Metrics and parity: every file scored with pycocotools on the eval split.
    split = config.eval_split
    evaluator = KerasEvaluator(builder, split, geometry, nms, config.eval_batch_size)
    keras_metrics = evaluator(model)
    truth = evaluator.truth  # Read once, for the Keras model and every exported file.
    parity = {}
    front = predictor.Detector(predictor.SavedModelBackend(directory), card)
    parity["saved_model"] = coco_eval.coco_metrics(truth, predictor_detections(front, truth),
                                                   geometry.class_names)
    for variant in variants:
      backend = predictor.TFLiteBackend(os.path.join(directory, files[variant]["path"]))
      export.check_tflite_contract(backend, files[variant], variant)
      parity[variant] = coco_eval.coco_metrics(
          truth, predictor_detections(predictor.Detector(backend, card), truth),
          geometry.class_names)
    gap = MAX_MAP50_GAP if max_map50_gap is None else max_map50_gap
    card["metrics"] = {"split": split, **keras_metrics}
    card["parity"] = {key: {"map": p["map"], "map_50": p["map_50"],
                            "map_50_gap": abs(p["map_50"] - keras_metrics["map_50"])}
                      for key, p in parity.items()}
    card["checks"] = [{"check": f"{key} |mAP@.5 - Keras mAP@.5| <= {gap}",
                       "value": p["map_50_gap"], "passed": p["map_50_gap"] <= gap}
                      for key, p in card["parity"].items()]
    return card


def serving_functions(model, geometry: Geometry, nms: dict):
  """The exported graphs: `serve_images(images uint8 [N, H, W, C])` and
  `serve_image_bytes(image_bytes string [N])`, each returning the Object Detection API's
  four outputs with boxes normalized to the input images."""
  size, channels, anchors = geometry.image_size, geometry.channels, geometry.anchors

  def detect(squares, valid):
    raw = model(data.normalize_images(squares), training=False)
    out = zboxes.postprocess_batch_yxyx(raw, anchors, **nms)
    out["detection_boxes"] = zboxes.unletterbox_yxyx(out["detection_boxes"], valid)
    return out

  def serve_images(images):
    squares, valid = zboxes.letterbox(images, size)
    return detect(squares, valid)

  def serve_image_bytes(image_bytes):
    def one(encoded):
      image = tf.io.decode_image(encoded, channels=channels, expand_animations=False)
      return zboxes.letterbox(image, size)
    squares, valid = tf.map_fn(one, image_bytes, fn_output_signature=(
        tf.TensorSpec([size, size, channels], tf.float32), tf.TensorSpec([2], tf.float32)))
    return detect(squares, valid[:, None, :])

  return serve_images, serve_image_bytes


class KerasEvaluator:
  """COCO metrics of a Keras detector on (the first `limit` images of) a split: a callable
  `evaluator(model) -> dict` (see `zoo.coco_eval.coco_metrics`). The ground truth is read
  once."""

  def __init__(self, builder, split, geometry: Geometry, nms: dict, batch_size: int,
               limit=None):
    self.geometry, self.nms = geometry, nms
    self.split = split
    self.truth = detection_input.ground_truth(builder, split, limit)
    self.images = detection_input.make_eval_images(
        builder, split, image_size=geometry.image_size, batch_size=batch_size, limit=limit)

  def _run(self, model):
    """One traced function per model (traced again only for a new model)."""
    if getattr(self, "_model", None) is not model:
      anchors, nms = self.geometry.anchors, self.nms

      @tf.function(reduce_retracing=True)
      def run(images, valid):
        out = zboxes.postprocess_batch_yxyx(model(images, training=False), anchors, **nms)
        out["detection_boxes"] = zboxes.unletterbox_yxyx(out["detection_boxes"],
                                                         valid[:, None, :])
        return out

      self._model, self._traced = model, run
    return self._traced

  def detections(self, model) -> list[dict]:
    run = self._run(model)
    results = []
    for images, valid in self.images:
      out = {k: v.numpy() for k, v in run(images, valid).items()}
      results.extend(_rows(out))
    return results

  def __call__(self, model) -> dict:
    return coco_eval.coco_metrics(self.truth, self.detections(model),
                                  self.geometry.class_names)

  def drawings(self, model) -> np.ndarray:
    """The images with ground truth and detections drawn, each fitted into one square
    (uint8 RGB `[N, side, side, 3]`, side twice the model's input up to 512 pixels)."""
    side = min(2 * self.geometry.image_size, 512)
    drawn = []
    for truth, det in zip(self.truth, self.detections(model)):
      n = int(det["num"])
      image = truth["image"]
      drawn.append(drawing.fit_square(drawing.draw_detections(
          image, det["boxes_yxyx"][:n], det["classes"][:n], det["scores"][:n],
          self.geometry.class_names, ground_truth_yxyx=truth["boxes_yxyx"],
          scale=max(1, side // max(image.shape[:2]))), side))
    return np.stack(drawn)


def _rows(out: dict) -> list[dict]:
  """Batched Object Detection API outputs -> one detections dict per image."""
  return [{"boxes_yxyx": out["detection_boxes"][i], "scores": out["detection_scores"][i],
           "classes": out["detection_classes"][i], "num": int(out["num_detections"][i])}
          for i in range(len(out["num_detections"]))]


def predictor_detections(front, truth: list[dict], batch_size: int = 100) -> list[dict]:
  """Detections of an exported model (`zoo.predictor.Detector`) for the ground truth's
  images, fed as uint8 pixels (same-size images batched)."""
  results = []
  pending = []

  def flush():
    if pending:
      results.extend(_rows(front.detect(np.stack(pending))))
      pending.clear()

  for item in truth:
    image = item["image"]
    if pending and (image.shape != pending[0].shape or len(pending) == batch_size):
      flush()
    pending.append(image)
  flush()
  return results


TASK = Detection()
