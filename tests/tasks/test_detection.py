"""The detection task end to end on real MNIST canvases (a tiny detector): train, kill and
resume, TensorBoard, evaluate, export (SavedModel + TFLite with NMS inside), load, predict."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import zoo
from tests import recipes
from tests.data import coco_folders
from tests.conftest import REPO
from zoo import data, errors, evaluate, export, registry, rundir, runtime, train
from zoo.data import detection_input
from zoo.models import detector
from zoo.tasks import detection


@pytest.fixture(scope="module")
def detector_run(real_mnist_detection_data_dir, tmp_path_factory):
  """A tiny detector trained for 3 epochs on 256 canvases, killed once and resumed."""
  model_dir = str(tmp_path_factory.mktemp("detector") / "run")
  # Score threshold 0: an undertrained detector still returns 100 boxes per image, so
  # parity compares real outputs rather than empty lists.
  config = recipes.detector_tiny().replace(
      task_kwargs={"map_images": 32, "score_threshold": 0.0})
  kwargs = dict(data_dir=real_mnist_detection_data_dir)
  with pytest.raises(train.TrainingInterrupted, match=r"Stopped at epoch 2/3 \(1 completed"):
    train.train_and_evaluate(config, model_dir, extra_callbacks=[recipes.Interrupt(1)], **kwargs)
  metrics = train.train_and_evaluate(config, model_dir, **kwargs)
  return {"dir": model_dir, "metrics": metrics, "config": config, "kwargs": kwargs}


def test_a_few_steps_reduce_the_loss(real_mnist_detection_data_dir):
  builder = data.prepare_builder("mnist_detection", data_dir=real_mnist_detection_data_dir)
  kwargs = recipes.detector_tiny().model_kwargs
  anchors = detector.anchors_yxyx((128, 128, 1), **kwargs)
  ds = detection_input.make_detection_dataset(builder, "train[:32]", image_size=128,
                                              anchors_yxyx=anchors, batch_size=32,
                                              training=True)
  keras.utils.set_random_seed(0)
  model = detector.retinanet(input_shape=(128, 128, 1), num_classes=10, **kwargs)
  model.compile(keras.optimizers.Adam(3e-3), loss=detector.DetectionLoss(10))
  batch = next(iter(ds))
  history = model.fit(*batch, epochs=15, verbose=0).history["loss"]
  assert history[-1] < 0.7 * history[0]


def test_run_metrics_resume_and_tensorboard(detector_run):
  m = detector_run["metrics"]
  assert m["task"] == "detection" and m["epochs_run_this_invocation"] == 2
  assert m["num_images"] == 64 and m["num_objects"] > 64
  assert 0.0 <= m["map"] <= m["map_50"] <= 1.0
  assert set(m["per_class_ap"]) == {str(d) for d in range(10)}
  from tensorboard.backend.event_processing import plugin_event_accumulator
  log_dir = os.path.join(detector_run["dir"], rundir.TENSORBOARD)
  images = plugin_event_accumulator.EventAccumulator(
      os.path.join(log_dir, "validation_detections"))
  images.Reload()
  shown = images.Tensors("validation_detections")
  assert [e.step for e in shown] == [0, 1, 2]  # One picture per epoch, also after resume.
  scalars = plugin_event_accumulator.EventAccumulator(os.path.join(log_dir, "train"))
  scalars.Reload()
  assert "epoch_loss" in scalars.Tags()["tensors"]
  # mAP is measured on validation images: it is logged beside the validation loss.
  validation = plugin_event_accumulator.EventAccumulator(os.path.join(log_dir, "validation"))
  validation.Reload()
  assert {"epoch_loss", "epoch_map", "epoch_map_50"} <= set(validation.Tags()["tensors"])
  assert "epoch_map" not in scalars.Tags()["tensors"]


def test_evaluate_run_matches_training_metrics(detector_run):
  again = evaluate.evaluate_run(detector_run["dir"], **detector_run["kwargs"])
  assert again["map_50"] == pytest.approx(detector_run["metrics"]["map_50"], abs=1e-6)
  assert os.path.exists(rundir.eval_path(detector_run["dir"], "test[:64]"))


def test_evaluating_one_model_again_with_other_nms_knobs_uses_those_knobs(detector_run):
  """The serving functions are cached per model: a second evaluation of the same Keras
  model with another `max_detections` must not reuse the first one's NMS."""
  config, task = detector_run["config"], detection.TASK
  builder = data.prepare_builder(config.dataset, **detector_run["kwargs"])
  model = keras.saving.load_model(os.path.join(detector_run["dir"], rundir.CHECKPOINT))
  split = "test[:16]"
  many = task.evaluate(model, config, builder, split)
  one = task.evaluate(model, config.replace(task_kwargs={**config.task_kwargs,
                                                         "max_detections": 1}),
                      builder, split)
  assert one["map_50"] < many["map_50"]  # One box an image cannot find ~2 digits a canvas.
  assert task.evaluate(model, config, builder, split) == many  # And back.
  assert task.inference_model(model, config, None).nms["max_detections"] == 100


@pytest.fixture(scope="module")
def exported(detector_run, tmp_path_factory):
  root = tmp_path_factory.mktemp("exports")
  path = export.export_run(detector_run["dir"], export_dir=str(root),
                           **detector_run["kwargs"])
  return {"path": path, "card": runtime.read_card(path)}


def test_export_may_change_inference_knobs_only(detector_run, tmp_path):
  with pytest.raises(errors.InvalidValueError, match=r"\['class_agnostic'\] are not knobs "
                     r".*Did you mean 'class_agnostic_nms'\?"):
    export.export_run(detector_run["dir"], export_dir=str(tmp_path),
                      task_kwargs={"class_agnostic": True}, **detector_run["kwargs"])
  result = subprocess.run(
      [sys.executable, str(REPO / "scripts" / "export.py"), f"--model_dir={detector_run['dir']}",
       f"--export_dir={tmp_path}", "--set=train_epochs=3"],
      capture_output=True, text=True, cwd=REPO, timeout=300)
  assert result.returncode == 2 and "an export can only change task knobs" in result.stderr
  assert not os.listdir(tmp_path)


def test_export_card_files_and_parity(exported):
  card, path = exported["card"], exported["path"]
  assert card["task"] == "detection" and card["labels"] == [str(d) for d in range(10)]
  keys = {"saved_model", "float32", "float16", "int8", "onnx"}
  assert set(card["files"]) == keys and set(card["parity"]) == keys
  # One mAP@.5 check per file; the int8 file's mAP@[.5:.95] too.
  assert all(c["passed"] for c in card["checks"]) and len(card["checks"]) == 6
  assert any(c["check"] == "int8 |mAP - Keras mAP| <= 0.03" for c in card["checks"])
  assert card["metrics"]["num_images"] == 64
  for key in ("saved_model", "float32", "onnx"):
    assert card["parity"][key]["map_50_gap"] <= 1e-3
  assert sorted(os.listdir(path)) == sorted(
      ["assets", "fingerprint.pb", "labels.txt", "model_card.json", "model_float16.tflite",
       "model_float32.tflite", "model_int8.tflite", "model.onnx", "saved_model.pb",
       "variables"])
  table = export.parity_table(card)
  assert "map 50 gap" in table and "PASS" in table


def _canvases(data_dir, n=4):
  builder = data.prepare_builder("mnist_detection", data_dir=data_dir)
  return detection_input.ground_truth(builder, "test", limit=n)


def test_tflite_has_nms_inside_with_builtin_ops_and_agrees(detector_run, exported):
  truth = _canvases(detector_run["kwargs"]["data_dir"])
  images = np.stack([t["image"] for t in truth])
  saved = zoo.load(exported["path"])
  tflite = zoo.load(os.path.join(exported["path"], "model_float32.tflite"))
  # The TFLite backend runs LiteRT's BUILTIN op resolver: loading at all means no Flex
  # and no custom op. Its outputs are final boxes, as the SavedModel's.
  assert isinstance(saved, detection.Detector) and tflite.kind == "tflite"
  a, b = saved.detect(images), tflite.detect(images)
  for out in (a, b):
    assert out["detection_boxes"].shape == (4, 100, 4)
    assert set(out) == set(detection.Detector.OUTPUTS)
  np.testing.assert_array_equal(a["num_detections"], b["num_detections"])
  np.testing.assert_allclose(np.sort(a["detection_scores"], -1),
                             np.sort(b["detection_scores"], -1), atol=1e-4)
  # Any size in: a 100x60 image gives boxes normalized to that image.
  odd = np.zeros((1, 60, 100, 1), np.uint8)
  for p in (saved, tflite):
    boxes = p.detect(odd)["detection_boxes"]
    assert boxes.shape == (1, 100, 4) and boxes.min() >= 0 and boxes.max() <= 1


def _tflite_ops(path):
  """(op name, input types, output types) of every op of a TFLite file, all subgraphs."""
  from tensorflow.lite.python import schema_py_generated as schema
  from tensorflow.lite.tools import flatbuffer_utils
  model = flatbuffer_utils.read_model(path)
  names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
  types = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
  ops = []
  for graph in model.subgraphs:
    for op in graph.operators:
      code = model.operatorCodes[op.opcodeIndex]
      ops.append((names[max(code.builtinCode, code.deprecatedBuiltinCode)],
                  [types[graph.tensors[i].type] for i in op.inputs if i >= 0],
                  [types[graph.tensors[i].type] for i in op.outputs if i >= 0]))
  return ops


def test_int8_file_has_an_int8_network_and_float_postprocessing(detector_run, exported):
  ops = _tflite_ops(os.path.join(exported["path"], "model_int8.tflite"))
  kinds = [name for name, _, _ in ops]
  assert "WHILE" not in kinds  # One graph, no loop.
  convs = [outs for name, _, outs in ops if name == "CONV_2D"]
  assert convs and all(outs == ["INT8"] for outs in convs)  # Backbone, FPN and heads.
  # Box deltas and class logits leave the int8 network each with its own scale.
  assert kinds.count("QUANTIZE") == 1 and kinds.count("DEQUANTIZE") == 2
  # Decoding and NMS see only float tensors.
  postprocessing = {"NON_MAX_SUPPRESSION_V5", "TOPK_V2", "EXP", "LOGISTIC", "GATHER"}
  assert postprocessing <= set(kinds)
  for name, ins, outs in ops:
    if name in postprocessing:
      assert "INT8" not in ins + outs, name
  int8 = zoo.load(os.path.join(exported["path"], "model_int8.tflite"))
  images = np.stack([t["image"] for t in _canvases(detector_run["kwargs"]["data_dir"], 2)])
  out = int8.detect(images)  # uint8 pixels in, final float boxes out
  assert out["detection_boxes"].dtype == np.float32 and out["detection_boxes"].shape == (2, 100, 4)


def test_image_bytes_signature_matches_pixels(detector_run, exported):
  import tensorflow as tf
  truth = _canvases(detector_run["kwargs"]["data_dir"], 2)
  saved = zoo.load(exported["path"])
  encoded = np.array([tf.io.encode_png(t["image"]).numpy() for t in truth])
  by_bytes = saved.backend.run("serve_image_bytes", image_bytes=encoded)
  by_pixels = saved.detect(np.stack([t["image"] for t in truth]))
  np.testing.assert_allclose(by_bytes["detection_scores"], by_pixels["detection_scores"],
                             atol=1e-6)


def test_predict_script_draws_boxes_and_writes_json(detector_run, exported, tmp_path):
  from PIL import Image
  truth = _canvases(detector_run["kwargs"]["data_dir"], 1)
  png = tmp_path / "canvas.png"
  Image.fromarray(truth[0]["image"][..., 0]).save(png)
  bogus = tmp_path / "notes.png"
  bogus.write_text("not an image")
  out_dir = tmp_path / "out"
  result = subprocess.run(
      [sys.executable, str(REPO / "scripts" / "predict.py"), f"--model={exported['path']}",
       f"--output_dir={out_dir}", "--min_score=0.0", str(png), str(bogus)],
      capture_output=True, text=True, cwd=REPO, timeout=300)
  assert result.returncode == 1, result.stderr  # One file failed; the other was processed.
  report = json.loads(result.stdout)
  ok, bad = report["results"]
  assert "not a decodable image" in bad["error"]
  assert ok["width"] == ok["height"] == 128 and len(ok["detections"]) == 100
  first = ok["detections"][0]
  assert set(first) == {"label", "class", "score", "box_yxyx", "box_xyxy_pixels"}
  drawn = np.asarray(Image.open(ok["written"]["png"]))
  assert drawn.shape == (256, 256, 3) and drawn.std() > 0
  assert json.load(open(ok["written"]["json"]))["file"] == str(png)


def test_boxes_come_back_as_a_photo_is_shown_and_a_bomb_is_one_files_error(
    detector_run, exported, tmp_path):
  """A canvas stored turned a quarter (EXIF Orientation 6, as phones store photos) is
  detected as it is shown: the stored pixels turned upright, boxes in shown coordinates;
  a PNG bomb beside it is that file's error, in `detect_files` and through the export's
  `serve_image_bytes`."""
  import tensorflow as tf
  from PIL import Image
  from tests.data.test_hostile_images import png_bomb
  from zoo import runtime as zoo_runtime
  canvas = _canvases(detector_run["kwargs"]["data_dir"], 1)[0]["image"][:, 16:, 0]  # 128x112
  exif = Image.Exif()
  exif[0x0112] = 6  # Shown turned 90 degrees clockwise from how it is stored.
  sideways = tmp_path / "sideways.jpg"
  Image.fromarray(np.rot90(canvas)).save(sideways, quality=100, exif=exif.tobytes())
  bomb = tmp_path / "bomb.png"
  bomb.write_bytes(png_bomb(16000, 16000))
  saved = zoo.load(exported["path"])
  found, bad = saved.detect_files([str(sideways), str(bomb)], min_score=0.0)
  assert (found["width"], found["height"]) == (112, 128)  # As shown, not as stored (128x112).
  stored = tf.io.decode_jpeg(sideways.read_bytes()).numpy()
  want = saved.detect(np.rot90(stored, k=-1)[None])  # The stored pixels turned by hand.
  assert len(found["detections"]) == int(want["num_detections"][0]) > 0
  np.testing.assert_allclose([d["box_yxyx"] for d in found["detections"]],
                             want["detection_boxes"][0, :len(found["detections"])], atol=1e-6)
  assert bad["error"].startswith("image of 16000x16000 pixels (width x height, from its "
                                 "header) is over the budget")
  with pytest.raises(tf.errors.InvalidArgumentError) as refused:
    saved.backend.run("serve_image_bytes",
                      image_bytes=np.array([bomb.read_bytes()], dtype=object))
  assert zoo_runtime.budget_line(refused.value) == bad["error"]


def test_evaluate_export_scores_the_file_with_pycocotools(detector_run, exported):
  path = os.path.join(exported["path"], "model_float16.tflite")
  metrics = evaluate.evaluate_export(path, **detector_run["kwargs"])
  assert metrics["task"] == "detection" and metrics["num_images"] == 64
  assert abs(metrics["map_50"] - exported["card"]["parity"]["float16"]["map_50"]) < 1e-9



def _train_cli(*argv, timeout=600):
  return subprocess.run([sys.executable, str(REPO / "scripts" / "train.py"), *argv],
                        capture_output=True, text=True, cwd=REPO, timeout=timeout)


_PHOTO_TINY = ["--set=model_kwargs.image_size=64", "--set=model_kwargs.fpn_width=8",
               "--set=model_kwargs.head_width=8", "--set=model_kwargs.head_depth=1",
               "--batch_size=4", "--set=eval_batch_size=4"]


def test_one_command_trains_the_photo_recipe_on_a_users_coco_folder(tmp_path):
  root = coco_folders.write(str(tmp_path / "photos"))
  run = tmp_path / "run"
  result = _train_cli("--model=retinanet_mobilenet", f"--dataset=coco:{root}",
                      f"--model_dir={run}", "--epochs=1", f"--data_dir={tmp_path / 'tfds'}",
                      *_PHOTO_TINY)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "valid mAP@[.5:.95]" in result.stdout
  card = json.loads((run / "run_card.json").read_text())
  assert card["dataset"]["class_names"] == ["square", "bar"]
  metrics = json.loads((run / "metrics.json").read_text())
  assert metrics["num_images"] == 8 and set(metrics["per_class_ap"]) == {"square", "bar"}


def test_bad_folder_and_offline_weights_fail_in_one_line(tmp_path):
  root = coco_folders.write(str(tmp_path / "photos"))
  os.remove(os.path.join(root, "valid", "valid_3.jpg"))
  result = _train_cli("--model=retinanet_mobilenet", f"--dataset=coco:{root}",
                      f"--model_dir={tmp_path / 'run'}", f"--data_dir={tmp_path / 'tfds'}",
                      *_PHOTO_TINY)
  assert result.returncode == 1 and "Traceback" not in result.stderr
  assert "valid/_annotations.coco.json: image id 3 names file 'valid_3.jpg'" in result.stderr
  good = coco_folders.write(str(tmp_path / "good"))
  env_home = tmp_path / "keras_home"
  result = subprocess.run(
      [sys.executable, str(REPO / "scripts" / "train.py"), "--model=retinanet_mobilenet",
       f"--dataset=coco:{good}", f"--model_dir={tmp_path / 'run2'}",
       f"--data_dir={tmp_path / 'tfds'}", "--set=model_kwargs.backbone_weights=imagenet",
       *_PHOTO_TINY], capture_output=True, text=True, cwd=REPO, timeout=300,
      env={**os.environ, "KERAS_HOME": str(env_home)})
  assert result.returncode == 1 and "Traceback" not in result.stderr
  assert "never downloads" in result.stderr


def test_detector_trains_under_mirrored_strategy(real_mnist_detection_data_dir, tmp_path):
  """Two replicas (two logical CPUs, see conftest): the loss is a Keras Loss averaged over
  the global batch, the mAP callback and the final evaluation read mirrored weights."""
  config = recipes.detector_tiny().replace(strategy="mirrored", train_epochs=1,
                                           train_split="train[:64]", eval_split="test[:32]")
  metrics = train.train_and_evaluate(config, str(tmp_path / "run"),
                                     data_dir=real_mnist_detection_data_dir)
  card = json.loads((tmp_path / "run" / "run_card.json").read_text())
  assert card["num_replicas"] == 2 and card["strategy"] == "MirroredStrategy"
  assert metrics["num_images"] == 32 and 0 <= metrics["map_50"] <= 1


@pytest.mark.parametrize("fraction, photo_side, size", [
    (0.0664, 640, 512),   # pears: 32 px / 0.0664 = 482 -> 512
    (0.587, 500, 320),    # raccoons: any box is larger than the anchors; the floor
    (0.01, 640, 640),     # tiny boxes: never above the photos' own size
    (0.15, 118, 128),     # photos smaller than the floor stay their size
])
def test_auto_input_size_makes_the_median_box_as_large_as_the_smallest_anchor(
    fraction, photo_side, size):
  kwargs = {"min_level": 3, "max_level": 5, "anchor_size_in_strides": 4.0}
  assert detector.smallest_anchor(kwargs) == 32
  assert detector.input_size_for(fraction, photo_side, kwargs) == size


def test_auto_input_size_is_chosen_once_recorded_and_used_by_evaluation(tmp_path):
  """`image_size="auto"` on a COCO folder of ~70x120 photos with 20 px objects: the run
  trains at the size the rule gives, its run card says so and why, and evaluating the run
  (which rebuilds the anchors from its config) reads that size."""
  root = coco_folders.write(str(tmp_path / "photos"))
  builder = data.builder_for(recipes.detector_tiny().replace(dataset=f"coco:{root}"),
                             data_dir=str(tmp_path / "tfds"))
  stats = detection_input.box_statistics(builder, "train")
  assert stats["images"] == 8 and stats["boxes"] == 16 and 100 <= stats["photo_side"] < 140
  assert 0.1 < stats["box_side_fraction"] < 0.2
  tiny = recipes.detector_tiny()  # The small backbone: its smallest anchor is 16 px.
  config = tiny.replace(dataset=f"coco:{root}", train_split="train", eval_split="valid",
                        train_epochs=1, batch_size=4, eval_batch_size=4, log_images=0,
                        model_kwargs={**tiny.model_kwargs, "image_size": "auto"},
                        task_kwargs={"map_images": 4})
  run = tmp_path / "run"
  train.train_and_evaluate(config, str(run), data_dir=str(tmp_path / "tfds"), verbose=0)
  card = rundir.read_json(str(run), rundir.RUN_CARD)
  assert card["config"]["model_kwargs"]["image_size"] == "auto"  # As given...
  assert card["resolved"]["model_kwargs"] == {"image_size": 128}  # ...and as derived.
  # 16 px / ~0.15 of the side wants ~112 px; the floor, 320, is more than the photos' own
  # ~118 px, so their size rounded up: 128.
  assert card["resolved"]["why"]["smallest_anchor_px"] == 16
  loaded, model = rundir.load_run(str(run))
  assert loaded.model_kwargs["image_size"] == 128 and model.input_shape == (None, 128, 128, 3)
  metrics = evaluate.evaluate_run(str(run), data_dir=str(tmp_path / "tfds"))
  assert 0 <= metrics["map_50"] <= 1 and metrics["num_images"] == 8
  with pytest.raises(errors.InvalidValueError, match=r"'auto' is chosen from the training "
                                                     r"boxes when a run starts"):
    detector.retinanet(input_shape=(None, None, 3), num_classes=2, image_size="auto")
