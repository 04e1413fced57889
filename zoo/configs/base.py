"""The training config shared by every recipe, and its command-line overrides.

A recipe is a `TrainConfig` with the recipe's own defaults (see `zoo/configs/*.py`).
Field names carry their units (`train_epochs`, `warmup_epochs`, `batch_size` in examples).
"""

from __future__ import annotations

import ast
import dataclasses
import json
import typing
from typing import Any

from zoo import errors

# How a picture's aspect is matched to a model's input (`zoo.data.images.fit_image`), and
# the values of `folder_resize`: one of those, or `mnist_digit` (each picture cropped to its
# digit and centred as MNIST's are, `zoo.data.images.center_digit`). Spelled here, where
# checking a config does not import TensorFlow, and imported by `zoo.data`.
RESIZE_MODES = ("pad", "crop", "stretch")
FOLDER_RESIZE = (*RESIZE_MODES, "mnist_digit")


@dataclasses.dataclass(frozen=True)
class RunCard:
  """What a recipe reached when it was last measured: the one source of the figures the
  README and the docs' recipes page show (`scripts/make_docs.py` writes them from here).

  Attributes:
    command: the command that trains it, as a user types it.
    quality: the headline figure, with the data it was measured on.
    train_time: training wall time, and the hardware (2 CPU cores unless said).
    measured_in: where the figure was measured, with command, machine, date and commit:
      a `BENCHMARKS.md` section title, or `preset:NAME:VERSION` (that shipped model's card).
  """
  command: str
  quality: str
  train_time: str
  measured_in: str


# Fields added after runs and exports were written without them, each with the value that
# reproduces those (a config.json without `ema_warmup` ran Keras's fixed-momentum average;
# one without `min_train_steps` trained exactly its `train_epochs`).
LEGACY_VALUES = {"ema_warmup": False, "min_train_steps": 0}
# The photo backbones a config.json named in `model_kwargs.backbone` (or, for
# image_classifier, as its `model`) before `backbone` was a field.
_BACKBONES_BEFORE_THE_FIELD = ("mobilenet_v2", "efficientnet_lite0")


def _before_backbone_field(d: dict) -> dict:
  """A config.json written before the `backbone` field, in today's terms: the same network
  (the same weights, layer by layer), so its run resumes under today's recipe."""
  if "backbone" in d:
    return d
  d, kwargs = dict(d), dict(d.get("model_kwargs") or {})
  if kwargs.get("backbone") in _BACKBONES_BEFORE_THE_FIELD:
    d["backbone"] = kwargs.pop("backbone")
  elif d.get("model") == "efficientnet_lite0" and "weights" in kwargs and kwargs["weights"] is None:
    del kwargs["weights"]  # Its ImageNet weights came through init_from, as they do now.
    d["model"], d["backbone"] = "photo_classifier", "efficientnet_lite0"
  else:
    return d
  d["model_kwargs"] = kwargs
  return d


@dataclasses.dataclass
class TrainConfig:
  """Everything that decides what a training run computes.

  Paths (model_dir, data_dir, manual_dir) are not part of it: they say where, not what.

  Attributes:
    model: name of the model builder in `zoo.models.MODELS`.
    task: what the model does, a name in `zoo.tasks.TASKS` (`classification`,
      `generation`, `detection`): it decides the data, losses, callbacks, metrics, export
      and the front apps get.
    recipe: name of the recipe this config came from (set by `zoo.registry.get_config`).
    backbone: the photo recipes' network (`zoo.models.backbones`: `efficientnet_lite0`,
      `efficientnet_lite1`, `efficientnet_lite2`, `mobilenet_v2`), given to the model
      builder; `init_from=imagenet` loads its ImageNet weights. Empty for models that have
      none (the MNIST recipes).
    dataset: tensorflow-datasets name (`mnist`, `fashion_mnist`, ...), `folder:DIR` (a
      folder of labelled images, `zoo.data.image_folder`) or `coco:DIR` (COCO-format
      detection data, `zoo.data.coco_folder`).
    folder_image_shape: `(height, width, channels)` in pixels that a `folder:DIR` dataset's
      images are prepared at: the recipe's input (MNIST recipes 28x28x1). TFDS datasets
      keep their own shape.
    folder_resize: how a folder image is fitted to `folder_image_shape`: `pad` (aspect
      kept, black borders), `crop` (aspect kept, centre cut), `stretch`, or `mnist_digit`
      (cropped to its ink and centred as MNIST's digits are: photos of one digit or
      character). A classifier's exports prepare photos the same way.
    folder_validation_fraction: share of each class of a folder without a valid/ (or val/)
      split held out as its `valid` split (stratified, fixed seed).
    train_split: TFDS split (slicing allowed, e.g. `train[:90%]`) used for training.
    eval_split: TFDS split used for validation after every epoch and for the final
      metrics in `metrics.json`.
    batch_size: global batch size in examples per step, summed over all replicas.
    eval_batch_size: global batch size in examples for evaluation.
    train_epochs: number of passes over `train_split` (at least; see `min_train_steps`).
    min_train_steps: the fewest optimizer steps a run trains: when `train_epochs` would
      give fewer (a small folder), the run trains `ceil(min_train_steps / steps an
      epoch)` epochs instead, says so in one line and records it in the run card's
      `train_epochs`; the schedule (warm-up, decay) stretches with it. 0: exactly
      `train_epochs`. `--epochs=N` on the command line sets it to 0 (N epochs, as asked).
    optimizer: `adam`, `adamw` or `sgd` (SGD uses Nesterov momentum 0.9). A task with
      several networks (a GAN) gets one such optimizer per network.
    beta_1: Adam/AdamW decay rate of the first-moment estimates (DCGAN: 0.5).
    learning_rate: peak learning rate.
    lr_schedule: `constant` or `cosine` (linear warmup, then cosine decay to 0 at the
      end of the last epoch).
    warmup_epochs: length of the linear warmup, in epochs (fractions allowed), capped at
      `max_warmup_fraction` of the run (see `zoo.train.warmup_epochs`).
    max_warmup_fraction: the warmup never takes more than this share of `train_epochs`,
      so a run shortened with `--epochs=1` still spends most of its steps decaying.
    weight_decay: decoupled weight decay (AdamW / SGD), per step, times the learning rate.
    ema_momentum: keep an exponential moving average of the weights (Polyak averaging)
      with this momentum per step, and validate, checkpoint and export the averaged
      weights; 0 turns it off. 0.99 averages over roughly the last 100 steps.
    ema_warmup: the average's momentum at step n is `min(ema_momentum, (1 + n) / (10 + n))`
      (TensorFlow's `ExponentialMovingAverage(num_updates=)`), so a run of a few hundred
      steps ends averaging its last steps, not its first weights (`zoo.schedules`). Off in
      configs written before it existed, which resume as they ran.
    augment: random translations of training images by up to `max_shift_pixels`.
    max_shift_pixels: largest translation, in pixels, along each axis.
    shuffle_buffer_examples: shuffle buffer size in examples (>= split size = full shuffle).
    seed: seed for weights, shuffling and augmentation.
    deterministic: TensorFlow op determinism: the same command gives bit-identical weights
      and metrics (measured cost in BENCHMARKS.md). Off by default: without it runs with
      the same seed differ by float rounding in multi-threaded kernels.
    jit_compile: compile train/eval steps with XLA.
    steps_per_execution: training steps per call from Python into TensorFlow (Keras
      `compile(steps_per_execution=...)`): above 1 it saves Keras's per-step Python and
      synchronisation (~2 ms a step here), which matters for nets whose steps take a few
      milliseconds; the weights are the same. Per-batch callbacks and the progress bar then
      see every k-th step, and Ctrl-C waits for the running group. 1 under `mirrored` and
      `multi_worker_mirrored` (see `zoo.distribute.steps_per_execution`).
    mixed_precision: `float32`, `float16`, `bfloat16` or `auto` (see `zoo.precision`).
    strategy: `default`, `one_device`, `mirrored`, `multi_worker_mirrored`, `tpu` or
      `auto` (see `zoo.distribute`).
    log_images: how many training images to write to TensorBoard (0 = none).
    init_from: where the first weights come from (`zoo.finetune`): `none` (random),
      `imagenet` (the `backbone`'s ImageNet weights, the photo recipes' default), a
      preset's name (`mnist_cnn`, `mnist_cnn:4`), an exported model directory, or a run
      directory. Weights whose path and shape match are loaded, the others start anew;
      a head's classes are carried by name (`zoo.finetune`). A resumed run continues
      from its own checkpoint.
    freeze_epochs: epochs at the start of the run during which the layers loaded from
      `init_from` are frozen, but the head's class layers, so only the head and the new
      layers train (0: none frozen; nothing is frozen with init_from `none`). With it,
      the loaded BatchNorm layers stay in inference mode for the whole run.
    unfrozen_learning_rate_scale: after `freeze_epochs`, the learning rate (and its
      schedule) times this: fine-tuning the loaded layers at a lower rate.
    freeze_backbone_to_level: a fine-tuning run's loaded backbone layers up to and
      including its stride-`2**level` map stay frozen for the whole run (0: none; the
      detectors read levels 3-5). Detectron2's `FREEZE_AT`, torchvision's
      `trainable_backbone_layers`: the backward pass through the early, high-resolution
      stages is much of a step at a large input (pears at 512 px on a 2-core CPU: 3.15 s a
      step with levels up to 3 frozen, 4.35 s with none; BENCHMARKS.md). With it, or `freeze_epochs`, the loaded
      BatchNorm layers stay in inference mode for the whole run.
    model_kwargs: the builder's own knobs (widths, dropout, ...).
    task_kwargs: the task's own knobs (see `task_kwargs` of `zoo/tasks/<task>.py`).
  """

  model: str
  task: str = "classification"
  recipe: str = ""
  backbone: str = ""
  dataset: str = "mnist"
  folder_image_shape: tuple[int, int, int] = (28, 28, 1)
  folder_resize: str = "pad"
  folder_validation_fraction: float = 0.2
  train_split: str = "train"
  eval_split: str = "test"
  batch_size: int = 128
  eval_batch_size: int = 1000
  train_epochs: int = 10
  min_train_steps: int = 0
  optimizer: str = "adam"
  learning_rate: float = 1e-3
  beta_1: float = 0.9
  lr_schedule: str = "constant"
  warmup_epochs: float = 0.0
  max_warmup_fraction: float = 0.1
  weight_decay: float = 0.0
  ema_momentum: float = 0.0
  ema_warmup: bool = True
  augment: bool = False
  max_shift_pixels: int = 2
  shuffle_buffer_examples: int = 60_000
  seed: int = 0
  deterministic: bool = False
  jit_compile: bool = True
  steps_per_execution: int = 1
  mixed_precision: str = "float32"
  strategy: str = "default"
  log_images: int = 8
  init_from: str = "none"
  freeze_epochs: int = 0
  unfrozen_learning_rate_scale: float = 0.1
  freeze_backbone_to_level: int = 0
  model_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
  task_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)

  def validate(self) -> "TrainConfig":
    """Checks every field; raises ValueError naming the field, the expectation and the value."""
    _positive_int(self, "batch_size")
    _positive_int(self, "eval_batch_size")
    if not isinstance(self.train_epochs, int) or self.train_epochs < 0:
      raise errors.InvalidValueError(
                        "Invalid value for `train_epochs`: expected an integer >= 0. "
                        f"Received: train_epochs={self.train_epochs!r}")
    if (isinstance(self.min_train_steps, bool) or not isinstance(self.min_train_steps, int)
        or self.min_train_steps < 0):
      raise errors.InvalidValueError(
          "Invalid value for `min_train_steps`: expected an integer >= 0 (0: exactly "
          f"train_epochs). Received: min_train_steps={self.min_train_steps!r}")
    if not self.learning_rate > 0:
      raise errors.InvalidValueError("Invalid value for `learning_rate`: expected a number > 0. "
                                     f"Received: learning_rate={self.learning_rate!r}")
    if not 0 <= self.beta_1 < 1:
      raise errors.InvalidValueError("Invalid value for `beta_1`: expected 0 <= beta_1 < 1. "
                                     f"Received: beta_1={self.beta_1!r}")
    if not isinstance(self.backbone, str):
      raise errors.InvalidValueError("Invalid value for `backbone`: expected a backbone's "
                                     f"name. Received: backbone={self.backbone!r}")
    if self.backbone and "backbone" in self.model_kwargs:
      raise errors.InvalidValueError(
          "Invalid config: `backbone` and `model_kwargs.backbone` are both set "
          f"({self.backbone!r}, {self.model_kwargs['backbone']!r}); set `backbone` alone.")
    _one_of(self, "optimizer", ("adam", "adamw", "sgd"))
    _one_of(self, "lr_schedule", ("constant", "cosine"))
    from zoo import distribute, precision  # TensorFlow-importing; the dataclass is not.
    _one_of(self, "mixed_precision", precision.POLICIES)
    _one_of(self, "strategy", distribute.STRATEGIES)
    if not self.warmup_epochs >= 0:
      raise errors.InvalidValueError("Invalid value for `warmup_epochs`: expected a number >= 0. "
                                     f"Received: warmup_epochs={self.warmup_epochs!r}")
    if not 0 <= self.max_warmup_fraction <= 1:
      raise errors.InvalidValueError("Invalid value for `max_warmup_fraction`: expected 0 <= "
                                     "max_warmup_fraction <= 1. "
                                     f"Received: max_warmup_fraction={self.max_warmup_fraction!r}")
    if self.weight_decay < 0:
      raise errors.InvalidValueError("Invalid value for `weight_decay`: expected a number >= 0. "
                                     f"Received: weight_decay={self.weight_decay!r}")
    if not 0.0 <= self.ema_momentum < 1.0:
      raise errors.InvalidValueError(
          "Invalid value for `ema_momentum`: expected 0 <= ema_momentum < 1 "
          f"(0 = off). Received: ema_momentum={self.ema_momentum!r}")
    if self.max_shift_pixels < 0:
      raise errors.InvalidValueError(
          "Invalid value for `max_shift_pixels`: expected an integer >= 0. "
          f"Received: max_shift_pixels={self.max_shift_pixels!r}")
    _positive_int(self, "shuffle_buffer_examples")
    _positive_int(self, "steps_per_execution")
    shape = self.folder_image_shape
    if (not isinstance(shape, (tuple, list)) or len(shape) != 3
        or not all(isinstance(v, int) and v > 0 for v in shape) or shape[2] not in (1, 3)):
      raise errors.InvalidValueError(
          "Invalid value for `folder_image_shape`: expected (height, width, channels) in "
          f"pixels, channels 1 or 3. Received: folder_image_shape={shape!r}")
    _one_of(self, "folder_resize", FOLDER_RESIZE)
    if not isinstance(self.init_from, str) or not self.init_from:
      raise errors.InvalidValueError(
          "Invalid value for `init_from`: expected 'none', 'imagenet', a preset's name, an "
          f"exported model or a run directory. Received: init_from={self.init_from!r}")
    if isinstance(self.freeze_epochs, bool) or not isinstance(self.freeze_epochs, int) or (
        self.freeze_epochs < 0):
      raise errors.InvalidValueError("Invalid value for `freeze_epochs`: expected an integer "
                                     f">= 0. Received: freeze_epochs={self.freeze_epochs!r}")
    if (isinstance(self.freeze_backbone_to_level, bool)
        or not isinstance(self.freeze_backbone_to_level, int)
        or self.freeze_backbone_to_level < 0):
      raise errors.InvalidValueError(
          "Invalid value for `freeze_backbone_to_level`: expected an integer >= 0 (0: none; "
          "3: the backbone up to its stride-8 map). Received: "
          f"freeze_backbone_to_level={self.freeze_backbone_to_level!r}")
    if not 0 < self.unfrozen_learning_rate_scale <= 1:
      raise errors.InvalidValueError(
          "Invalid value for `unfrozen_learning_rate_scale`: expected 0 < scale <= 1. "
          f"Received: unfrozen_learning_rate_scale={self.unfrozen_learning_rate_scale!r}")
    if not 0.0 < self.folder_validation_fraction < 1.0:
      raise errors.InvalidValueError(
          "Invalid value for `folder_validation_fraction`: expected 0 < fraction < 1. "
          f"Received: folder_validation_fraction={self.folder_validation_fraction!r}")
    return self

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), indent=2, sort_keys=True)

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
      raise errors.InvalidValueError(
          f"Unknown config field(s) {unknown}; valid fields: {sorted(names)}")
    d = _before_backbone_field(d)
    return cls(**{**{k: v for k, v in LEGACY_VALUES.items() if k not in d}, **d})

  def replace(self, **changes) -> "TrainConfig":
    return dataclasses.replace(self, **changes)


def _positive_int(config, name):
  value = getattr(config, name)
  if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
    raise errors.InvalidValueError(f"Invalid value for `{name}`: expected a positive integer. "
                                   f"Received: {name}={value!r}")


def _one_of(config, name, choices):
  value = getattr(config, name)
  if value not in choices:
    raise errors.InvalidValueError(
        f"Invalid value for `{name}`: expected one of {list(choices)}. "
        f"Received: {name}={value!r}.{errors.did_you_mean(value, choices)}")


def parse_value(text: str) -> Any:
  """A `--set` value: a Python literal, or else the bare string."""
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text  # A bare word such as `adamw` or `fashion_mnist`.


def apply_overrides(config: TrainConfig, overrides: list[str]) -> TrainConfig:
  """Returns `config` with `field=value` overrides applied (`--set` on the command line).

  `model_kwargs.<knob>=value` sets one builder knob, `task_kwargs.<knob>=value` one task
  knob. Values are Python literals
  (`0.1`, `True`, `(64, 128)`) or bare strings; each is checked against the field's type.

  Raises:
    ValueError: malformed override, unknown field, or a value of the wrong type.
  """
  hints = typing.get_type_hints(TrainConfig)
  changes: dict[str, Any] = {}
  kwargs = {"model_kwargs": dict(config.model_kwargs), "task_kwargs": dict(config.task_kwargs)}
  for item in overrides:
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
      raise errors.InvalidValueError(f"Invalid override {item!r}: expected `field=value`, "
                                     "e.g. `train_epochs=3` or `model_kwargs.dropout=0.2`.")
    value = parse_value(raw.strip())
    field, dot, knob = key.partition(".")
    if dot and field in kwargs:
      kwargs[field][knob] = value
      continue
    if key not in hints:
      raise errors.InvalidValueError(f"Unknown config field {key!r} in override {item!r}; "
                                     f"valid fields: {sorted(hints)}")
    expected = hints[key]
    origin = typing.get_origin(expected) or expected
    if origin is float and isinstance(value, int) and not isinstance(value, bool):
      value = float(value)
    if not isinstance(value, origin) or (origin is int and isinstance(value, bool)):
      raise errors.InvalidValueError(f"Invalid override {item!r}: `{key}` expects "
                                     f"{getattr(origin, '__name__', origin)}, got {value!r}")
    changes[key] = value
  for field, value in kwargs.items():
    if value != getattr(config, field):
      changes[field] = value
  return config.replace(**changes)
