"""Task `detection`: images -> boxes, classes and scores (the RetinaNet-style recipes).

Data: any TFDS detection layout (`zoo.data.detection_input`): images letterboxed to the
model's square input, anchor targets encoded in the pipeline. Compile: `DetectionLoss`
(focal + Huber) with the config's optimizer. Callbacks: COCO mAP of the first
`map_images` validation images in the epoch logs (`val_map`, `val_map_50`: TensorBoard's
validation run), and validation images with ground truth (green) and predicted boxes,
names and scores (red) in TensorBoard.
Metrics: COCO mAP@[.5:.95], mAP@.5, mAP@.75 and per-class AP with pycocotools.

One inference model (`InferenceModel`: letterbox, the trained network, decoding, NMS,
boxes back to the input image) serves evaluation, TensorBoard, every exported file and
so every front; its anchor geometry is built once and travels with it.

Export (decoding and NMS inside every file; boxes come out normalized to the input image,
whatever its size, as the TensorFlow Object Detection API gives them):
  SavedModel  serving_default(images uint8 [N, H, W, C], any H, W) and
              serve_image_bytes(image_bytes string [N], encoded PNG/JPEG, any size) ->
                detection_boxes float32 [N, K, 4] normalized [ymin, xmin, ymax, xmax],
                detection_scores float32 [N, K], detection_classes float32 [N, K]
                (0-based index into labels.txt), num_detections float32 [N]
  TFLite      float32, float16, int8: images uint8 [1, H, W, C] (any H, W; the interpreter
              resizes its input) -> the same four outputs; built-in ops only (NMS is
              TFLite's NON_MAX_SUPPRESSION_V5), no Flex, no custom op to register.
              int8: the network (backbone, FPN, heads) in int8, calibrated on
              `calibration_examples` training images; letterbox, decoding and NMS in float.
Parity: mAP of every file on the test split, mAP@.5 within `MAX_MAP50_GAP` of the Keras
model's (int8: mAP@.5 within `MAX_INT8_MAP50_GAP`, mAP within `MAX_INT8_MAP_GAP`).
Front: `Detector` (`detect`, `detect_files`).
"""

from __future__ import annotations

import copy
import weakref
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from zoo import boxes as zboxes
from zoo import callbacks as zoo_callbacks
from zoo import coco_eval, data, drawing, errors, runtime
from zoo.data import detection_input, images as images_lib
from zoo.models import detector
from zoo.tasks import base

# Largest |mAP@.5 difference| of an exported file from the Keras model (the bar).
MAX_MAP50_GAP = 0.01
# The int8 file's bars (network in int8, decoding and NMS in float): mAP@.5 and
# mAP@[.5:.95] within these of the Keras model's.
MAX_INT8_MAP50_GAP = 0.02
MAX_INT8_MAP_GAP = 0.03
_NMS_KNOBS = ("max_detections", "score_threshold", "iou_threshold", "pre_nms_top_k",
              "class_agnostic_nms")
OUTPUTS = ("detection_boxes", "detection_scores", "detection_classes", "num_detections")


class Detector(runtime.Predictor):
  """An object detector: `detect(images)` and `detect_files(paths)`; decoding and NMS are
  inside the exported file, so what comes out is final."""

  OUTPUTS = OUTPUTS

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
      raise errors.InvalidValueError(
          f"Invalid value for `images`: expected uint8 [N, H, W, {self.channels}]. "
          f"Received: dtype={images.dtype}, shape={list(images.shape)}")
    if self.kind == "tflite":
      rows = [self.backend.run(images=image[None]) for image in images]
      return {k: np.concatenate([r[k] for r in rows]) for k in self.OUTPUTS}
    out = self.backend.run(images=images)
    return {k: out[k] for k in self.OUTPUTS}

  def detect_files(self, paths: Sequence[str], min_score: float = 0.3) -> list[dict]:
    """Detects objects in image files (PNG/JPEG/GIF/BMP/WebP, any size up to
    `zoo.data.images.MAX_IMAGE_PIXELS`, gray or RGB; a JPEG turned by its EXIF orientation,
    so boxes are in the coordinates the photo is shown in).

    Returns one dict per path, in order: `{"file", "width", "height", "detections":
    [{"label", "class", "score", "box_yxyx" (normalized), "box_xyxy_pixels"}]}` with the
    detections scoring at least `min_score`, or `{"file", "error"}` for a missing,
    unreadable, over-budget or non-image file (the other files are still processed)."""
    return [result for result, _ in self._detect_each(paths, min_score)]

  def _detect_each(self, paths, min_score):
    """`(result, decoded image or None)` per path, one file decoded at a time."""
    def decode(raw):
      return images_lib.decode_image(tf.constant(raw), self.channels).numpy()

    for path, image in runtime.read_image_files(paths, decode):
      if isinstance(image, dict):
        yield image, None
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
      yield {"file": path, "width": int(w), "height": int(h), "detections": found}, image

  def run_files(self, paths, options):
    """`detect_files`, and each file's boxes drawn (on the pixels already decoded) into
    `options["output_dir"]`."""
    results = []
    for result, image in self._detect_each(paths, options.get("min_score", 0.3)):
      if image is not None:
        result["written"] = drawing.save_detections(
            result, image, self.class_names, options.get("output_dir", "predictions"))
      results.append(result)
    return results


class InferenceModel:
  """A trained detector as apps get it: uint8 images of any size in, final detections out.

  Letterboxes to the network's square input, runs it, decodes its box deltas against its
  anchors, runs NMS and maps the boxes back to the input image (as keras-io's RetinaNet
  builds its inference model around the trained one). Built once per trained model; the
  anchor geometry is computed here and nowhere else after training.

  Args:
    model: the trained network (raw outputs `[B, A, 4 + C]`).
    config: its `TrainConfig` (anchor knobs in `model_kwargs`, NMS knobs in `task_kwargs`).
    info: the dataset's `zoo.data.DatasetInfo`.
  """

  def __init__(self, model, config, info):
    self.model = model
    self.heads = detector.heads_model(model)  # Box deltas and class logits apart.
    self.image_size = detector.model_input_size(info.image_shape, config.model_kwargs)
    self.channels = int(info.image_shape[-1])
    self.anchors = detector.anchors_yxyx(info.image_shape, **config.model_kwargs)
    self.class_names = list(info.class_names)
    self.nms = {k: TASK.knobs(config)[k] for k in _NMS_KNOBS}

  def detect_squares(self, squares, valid):
    """Letterboxed float images `[B, S, S, C]` in [0, 1] and their `valid` fractions
    `[B, 1, 2]` -> the Object Detection API's outputs."""
    deltas, logits = self.heads(squares, training=False)
    out = zboxes.postprocess_batch_yxyx(deltas, logits, self.anchors, **self.nms)
    out["detection_boxes"] = zboxes.unletterbox_yxyx(out["detection_boxes"], valid)
    return out

  def serve_images(self, images):
    """uint8 images `[N, H, W, C]` (one size per call) -> the four outputs."""
    squares, valid = zboxes.letterbox(images, self.image_size)
    return self.detect_squares(data.normalize_images(squares), valid)

  def serve_image_bytes(self, image_bytes):
    """Encoded images `[N]` (each its own size) -> the four outputs."""
    size, channels = self.image_size, self.channels

    def one(encoded):
      return zboxes.letterbox(images_lib.decode_image(encoded, channels), size)
    # One image decoded at a time: a request's memory is one full-size image at most.
    squares, valid = tf.map_fn(one, image_bytes, parallel_iterations=1, fn_output_signature=(
        tf.TensorSpec([size, size, channels], tf.float32), tf.TensorSpec([2], tf.float32)))
    return self.detect_squares(data.normalize_images(squares), valid[:, None, :])


class DetectionEvaluator(base.Evaluator):
  """COCO metrics (pycocotools) of `detect(uint8 images [N, H, W, C]) -> the Object
  Detection API's outputs` on (the first `limit` images of) a split, fed as the images
  are stored (same-size neighbours batched). The ground truth is read once.

  Parity (`compare`): the candidate's mAP and mAP@.5, and its mAP@.5 gap to the reference.
  """

  def __init__(self, builder, split: str, class_names, *, limit: Optional[int] = None,
               batch_size: int = 100):
    self.split = split
    self.class_names = list(class_names)
    self.truth = detection_input.ground_truth(builder, split, limit)
    self.batch_size = batch_size

  def predictions(self, predict):
    results, pending = [], []

    def flush():
      if pending:
        out = predict(np.stack(pending))
        results.extend(
            {"boxes_yxyx": out["detection_boxes"][i], "scores": out["detection_scores"][i],
             "classes": out["detection_classes"][i], "num": int(out["num_detections"][i])}
            for i in range(len(pending)))
        pending.clear()

    for item in self.truth:
      image = item["image"]
      if pending and (image.shape != pending[0].shape or len(pending) == self.batch_size):
        flush()
      pending.append(image)
    flush()
    return results

  def metrics(self, detections):
    return coco_eval.coco_metrics(self.truth, detections, self.class_names)

  def compare(self, reference, candidate):
    return {"map": candidate.metrics["map"], "map_50": candidate.metrics["map_50"],
            "map_gap": abs(candidate.metrics["map"] - reference.metrics["map"]),
            "map_50_gap": abs(candidate.metrics["map_50"] - reference.metrics["map_50"])}

  def drawings(self, detections) -> np.ndarray:
    """The images with ground truth and `detections` drawn, each fitted into one square
    (uint8 RGB `[N, side, side, 3]`, side twice the largest image side up to 512)."""
    side = min(2 * max(max(t["image"].shape[:2]) for t in self.truth), 512)
    drawn = []
    for truth, det in zip(self.truth, detections):
      n = int(det["num"])
      image = truth["image"]
      drawn.append(drawing.fit_square(drawing.draw_detections(
          image, det["boxes_yxyx"][:n], det["classes"][:n], det["scores"][:n],
          self.class_names, ground_truth_yxyx=truth["boxes_yxyx"],
          scale=max(1, side // max(image.shape[:2]))), side))
    return np.stack(drawn)


class Detection(base.Task):
  name = "detection"
  task_kwargs = {
      # Post-processing (the exported files' too).
      "max_detections": 100,       # per image, after NMS
      "score_threshold": 0.05,     # drop (anchor, class) scores below this
      "iou_threshold": 0.5,        # per-class NMS overlap
      "pre_nms_top_k": 1000,       # best (anchor, class) pairs decoded before NMS
      # Suppress overlapping boxes across classes (classes that exclude each other, as
      # digits); per-class NMS otherwise (photos: a person on a bicycle keeps both).
      "class_agnostic_nms": False,
      # Data.
      "flip": False,               # random horizontal flips (off for digits)
      # Validation mAP in the epoch logs every N epochs, on the first `map_images` images.
      "map_every_epochs": 1,
      "map_images": 500,
  }
  tflite_variants = ("float32", "float16", "int8")
  front = Detector
  count_key = "num_images"
  writes_labels = True
  # The class subnet's last conv: channels anchor by anchor, each a run of the classes.
  class_layers = {"class_out": -1}
  export_options = {
      "calibration_examples": 300,  # training images calibrating the int8 variant
      "max_map50_gap": MAX_MAP50_GAP,
      "max_int8_map50_gap": MAX_INT8_MAP50_GAP,
      "max_int8_map_gap": MAX_INT8_MAP_GAP,
  }

  def data_derived(self, config, builder) -> dict:
    """`image_size="auto"`: the input side at which the training boxes' median is as large
    as the smallest anchor (`zoo.models.detector.input_size_for`)."""
    if config.model_kwargs.get("image_size") != detector.AUTO:
      return {}
    stats = detection_input.box_statistics(builder, config.train_split)
    size = detector.input_size_for(stats["box_side_fraction"], stats["photo_side"],
                                   config.model_kwargs)
    return {"model_kwargs": {"image_size": size},
            "why": {**stats, "smallest_anchor_px": detector.smallest_anchor(config.model_kwargs),
                    "rule": "image_size=auto: the smallest multiple of the coarsest stride "
                            "at which the median training box is as large as the smallest "
                            f"anchor, from {detector.MIN_AUTO_SIZE} to the photos' median "
                            "longer side"}}

  def __init__(self):
    super().__init__()
    self._inference_models = weakref.WeakKeyDictionary()

  def datasets(self, builder, config, epochs=(0,)):
    info = data.dataset_info(builder)
    common = {"image_size": detector.model_input_size(info.image_shape, config.model_kwargs),
              "anchors_yxyx": detector.anchors_yxyx(info.image_shape, **config.model_kwargs)}
    train = detection_input.make_detection_dataset(
        builder, config.train_split, batch_size=config.batch_size, training=True,
        seed=config.seed, flip=self.knobs(config)["flip"],
        shuffle_buffer_examples=config.shuffle_buffer_examples, epochs=epochs, **common)
    validation = detection_input.make_detection_dataset(
        builder, config.eval_split, batch_size=config.eval_batch_size, training=False,
        **common)
    return train, validation

  def compile(self, model, config, make_optimizer, jit_compile, steps_per_execution=1):
    num_classes = model.output_shape[-1] - 4
    model.compile(optimizer=make_optimizer(), loss=detector.DetectionLoss(num_classes),
                  jit_compile=jit_compile, steps_per_execution=steps_per_execution)

  def callbacks(self, config, *, builder, log_dir, info, train_ds, validation_ds):
    knobs = self.knobs(config)

    def detect(model):
      return self.predict_fn(self.keras_front(model, config, info))

    cbs = []
    if knobs["map_every_epochs"]:
      evaluator = DetectionEvaluator(builder, config.eval_split, info.class_names,
                                     limit=knobs["map_images"],
                                     batch_size=config.eval_batch_size)
      # `val_` names: measured on validation images, so Keras's TensorBoard callback
      # writes them to the validation run (as `epoch_map`), beside the validation loss.
      cbs.append(zoo_callbacks.PeriodicMetrics(
          lambda model: {f"val_{k}": v for k, v in evaluator(detect(model)).items()},
          ("val_map", "val_map_50"), knobs["map_every_epochs"]))
    if config.log_images:
      shown = DetectionEvaluator(builder, config.eval_split, info.class_names,
                                 limit=config.log_images)
      cbs.append(zoo_callbacks.SampleGrid(
          log_dir, lambda model: shown.drawings(shown.predictions(detect(model))), rows=2,
          tag="validation_detections"))
    return cbs

  def backbone_layers_to_level(self, model, level):
    return detector.backbone_layers_to_level(model, level)

  def inference_model(self, model, config, info) -> InferenceModel:
    """The one `InferenceModel` of a trained model and config (built on first use; built
    anew when the config changes, e.g. its NMS knobs)."""
    cached = self._inference_models.get(model)
    if cached is None or cached[0] != config:
      cached = self._inference_models[model] = (copy.deepcopy(config),
                                                InferenceModel(model, config, info))
    return cached[1]

  def card_fields(self, model, config, info):
    inference = self.inference_model(model, config, info)
    return {"image_size": inference.image_size, "channels": inference.channels,
            "labels": inference.class_names, "num_anchors": int(len(inference.anchors)),
            "postprocessing": inference.nms,
            "box_format": "normalized [ymin, xmin, ymax, xmax]"}

  def _contract(self, inference):
    k, c = inference.nms["max_detections"], inference.channels
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
                             f"letterboxed to {inference.image_size}x{inference.image_size} "
                             "inside the model"}
    return pixels, outputs

  def signatures(self, model, config, info):
    inference = self.inference_model(model, config, info)
    pixels, outputs = self._contract(inference)
    c = inference.channels
    return {
        "serving_default": base.Signature(
            inference.serve_images,
            [tf.TensorSpec([None, None, None, c], tf.uint8, name="images")],
            {"images": pixels}, outputs),
        "serve_image_bytes": base.Signature(
            inference.serve_image_bytes,
            [tf.TensorSpec([None], tf.string, name="image_bytes")],
            {"image_bytes": {"dtype": "string", "shape": [-1],
                             "description": "encoded PNG/JPEG/GIF/BMP, any size, gray or "
                                            "RGB"}}, outputs),
    }

  def tflite_signature(self, model, config, info):
    inference = self.inference_model(model, config, info)
    pixels, outputs = self._contract(inference)
    c = inference.channels
    return base.Signature(inference.serve_images,
                          [tf.TensorSpec([1, None, None, c], tf.uint8, name="images")],
                          {"images": {**pixels, "shape": [1, -1, -1, c]}}, outputs)

  def calibration_images(self, config, builder, *, calibration_examples, **options):
    # Training images as stored (any sizes: the TFLite input is [1, H, W, C]).
    return [t["image"] for t in detection_input.ground_truth(
        builder, config.train_split, limit=calibration_examples)]

  def int8_scope(self, model, config, info):
    # The network (as inference runs it: `detector.heads_model`); pre- and post-processing
    # stay float.
    return self.inference_model(model, config, info).heads.name

  def evaluator(self, config, builder, split, **options):
    return DetectionEvaluator(builder, split, data.dataset_info(builder).class_names,
                              batch_size=config.eval_batch_size)

  def predict_fn(self, front):
    return front.detect

  def example_input(self, config, builder):
    return (detection_input.ground_truth(builder, config.eval_split, limit=1)[0]["image"][None],)

  def checks(self, card, *, max_map50_gap, max_int8_map50_gap, max_int8_map_gap,
             **options):
    checks = []
    for key, p in card["parity"].items():
      bars = ({"map_50_gap": max_int8_map50_gap, "map_gap": max_int8_map_gap}
              if key == "int8" else {"map_50_gap": max_map50_gap})
      for gap_key, bar in bars.items():
        metric = "mAP@.5" if gap_key == "map_50_gap" else "mAP"
        checks.append({"check": f"{key} |{metric} - Keras {metric}| <= {bar}", "file": key,
                       "value": p[gap_key], "passed": p[gap_key] <= bar})
    return checks

  def headline(self, metrics):
    return (f"{metrics['split']} mAP@[.5:.95] {metrics['map']:.4f}, mAP@.5 "
            f"{metrics['map_50']:.4f} ({metrics['num_images']} images)")


TASK = Detection()
