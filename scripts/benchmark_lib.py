"""Benchmarks behind BENCHMARKS.md (used by scripts/benchmark.py; not part of the library):
recipe quality and time-to-accuracy, input pipeline speed, precision, exports, GANs.

Everything here trains the real recipes through `zoo.train.train_and_evaluate`, on the
real data, and times epochs with `zoo.callbacks.EpochTimer` (training only; the per-epoch
validation pass is excluded for every recipe alike).
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import re
import time
from typing import Optional, Sequence

import keras
import tensorflow as tf

from zoo import callbacks as zoo_callbacks
from zoo import data, precision, provenance, registry, tasks, train


# The test accuracy each headline recipe must reach as the median over seeds (README).
ACCURACY_FLOORS = {"mnist_cnn": 0.994, "mnist_mlp": 0.983}


class EpochRecorder(zoo_callbacks.EpochTimer):
  """`EpochTimer` that also keeps each epoch's validation accuracy."""

  def __init__(self):
    super().__init__()
    self.val_accuracy: list[float] = []

  def on_epoch_end(self, epoch, logs=None):
    super().on_epoch_end(epoch, logs)
    self.val_accuracy.append(float((logs or {}).get("val_accuracy", float("nan"))))


def seconds_to_accuracy(train_seconds, val_accuracy, target) -> tuple[Optional[float], Optional[int]]:
  """Cumulative training seconds and epoch (1-based) at which `val_accuracy` first >= target."""
  total = 0.0
  for epoch, (sec, acc) in enumerate(zip(train_seconds, val_accuracy), start=1):
    total += sec
    if acc >= target:
      return total, epoch
  return None, None


def run_recipe(name: str, workdir: str, *, data_dir, manual_dir, target: float,
               train_epochs: Optional[int] = None, mixed_precision: Optional[str] = None,
               seed: Optional[int] = None, deterministic: bool = False) -> dict:
  """Trains recipe `name` from scratch in `workdir`; returns its timing and accuracy row.

  `deterministic=True` turns TensorFlow op determinism on for the rest of the process
  (it cannot be turned off): run such rows last.
  """
  config = registry.get_config(name)
  label = name
  if seed is not None:
    config = config.replace(seed=seed)
    label += f" --seed={seed}"
  if deterministic:
    config = config.replace(deterministic=True)
    label += " --deterministic"
  if train_epochs is not None:
    config = config.replace(train_epochs=train_epochs)
    label += f" --epochs={train_epochs}"
  if mixed_precision is not None:
    config = config.replace(mixed_precision=mixed_precision)
    label += f" --mixed_precision={mixed_precision}"
  recorder = EpochRecorder()
  keras.backend.clear_session()
  run_dir = os.path.join(workdir, label.replace(" --", "_").replace("=", "_"))
  if os.path.exists(run_dir):  # It would resume, and time nothing.
    raise ValueError(f"Benchmark run directory {run_dir} already exists: benchmarks train "
                     "from scratch; pass an empty or new --workdir.")
  metrics = train.train_and_evaluate(config, run_dir, data_dir=data_dir,
                                     manual_dir=manual_dir, extra_callbacks=[recorder])
  precision.set_policy("float32")  # Leave the process as it was for the next run.
  to_target, epoch = seconds_to_accuracy(recorder.train_seconds, recorder.val_accuracy, target)
  return {
      "recipe": name,
      "label": label,
      "seed": config.seed,
      "deterministic": config.deterministic,
      "mixed_precision": config.mixed_precision,
      "jit_compile": config.jit_compile,
      "epochs": config.train_epochs,
      "final_accuracy": metrics["accuracy"],
      "best_accuracy": max(recorder.val_accuracy),
      "train_seconds": sum(recorder.train_seconds),
      "seconds_to_target": to_target,
      "epoch_to_target": epoch,
      "per_epoch_accuracy": recorder.val_accuracy,
      "per_epoch_seconds": recorder.train_seconds,
      "images_per_second": _train_images_per_second(config, recorder, data_dir),
  }


def _train_images_per_second(config, recorder, data_dir) -> float:
  builder = data.prepare_builder(config.dataset, data_dir=data_dir)
  n = data.num_examples(builder, config.train_split)
  images = (n // config.batch_size) * config.batch_size
  # The first epoch includes tracing/XLA compilation and filling the cache.
  steady = recorder.train_seconds[1:] or recorder.train_seconds
  return images / (sum(steady) / len(steady))


def pipeline_images_per_second(name: str, *, data_dir, epochs: int = 3) -> list[float]:
  """Images/s of the recipe's training input pipeline alone, one figure per epoch."""
  config = registry.get_config(name)
  builder = data.prepare_builder(config.dataset, data_dir=data_dir)
  ds, _ = tasks.get(config.task).datasets(builder, config)
  rates = []
  for _ in range(epochs):
    start, n = time.perf_counter(), 0
    for batch in ds:
      n += int(tf.nest.flatten(batch)[0].shape[0])
    rates.append(n / (time.perf_counter() - start))
  return rates


def train_step_images_per_second(name: str, *, data_dir,
                                 policies: Sequence[str] = ("float32",),
                                 min_seconds: float = 8.0,
                                 min_steps: int = 10) -> dict[str, dict[str, float]]:
  """Training images/s of the recipe's model on one real batch, repeated (no input
  pipeline), under each of `policies` (`float32`, `bfloat16`, `float16`), without and with
  XLA: `{policy: {"no_xla": images/s, "xla": images/s}}`. Each measurement runs until both
  `min_seconds` and `min_steps` are reached, after 3 untimed steps (tracing, compiling).
  """
  config = registry.get_config(name)
  builder = data.prepare_builder(config.dataset, data_dir=data_dir)
  info = data.dataset_info(builder)
  task = tasks.get(config.task)
  batch = next(iter(task.datasets(builder, config)[0]))
  batch = batch if isinstance(batch, tuple) else (batch,)
  rates = {}
  try:
    for policy in policies:
      for jit_compile in (False, True):
        keras.backend.clear_session()
        precision.set_policy(policy)
        model = registry.build_model(config, input_shape=info.image_shape,
                                     num_classes=info.num_classes)
        # Compiled as training compiles it, by the recipe's task.
        task.compile(model, config, lambda: train.make_optimizer(config, 100), jit_compile)
        for _ in range(3):
          model.train_on_batch(*batch)
        steps, start = 0, time.perf_counter()
        while steps < min_steps or time.perf_counter() - start < min_seconds:
          model.train_on_batch(*batch)
          steps += 1
        rate = steps * config.batch_size / (time.perf_counter() - start)
        rates.setdefault(policy, {})["xla" if jit_compile else "no_xla"] = rate
  finally:
    precision.set_policy("float32")
  return rates


def _pct(x):
  return "n/a" if x is None else f"{100 * x:.2f} %"


def _sec(x):
  return "not reached" if x is None else f"{x:.1f} s"


def _header(command: str, *, libraries: str = "keras") -> list[str]:
  """The command, date and machine lines every BENCHMARKS.md section starts with."""
  prov = provenance.describe()
  v = prov["versions"]
  libs = ", ".join(f"{name} {v.get(name) or importlib.metadata.version(name)}"
                   for name in ("tensorflow", *libraries.split()))
  return [
      f"Command: `{command}`  ",
      f"Date (UTC): {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M}  ",
      f"Machine: {describe_hardware()}; Python {v['python']}, {libs}; "
      f"git {prov['git_commit']}  ",
  ]


def describe_hardware() -> str:
  """E.g. `x86_64, 2 CPU cores (AVX-512 BF16), no GPU`: what the figures were measured on."""
  cpu = f"{platform.machine()}, {os.cpu_count()} CPU cores"
  try:
    with open("/proc/cpuinfo") as f:
      flags = set(re.search(r"^flags\s*:(.*)$", f.read(), re.M).group(1).split())
    extras = [name for flag, name in (("avx512f", "AVX-512"), ("avx512_bf16", "AVX-512 BF16"),
                                      ("amx_bf16", "AMX BF16"), ("avx512_fp16", "AVX-512 FP16"))
              if flag in flags]
    if extras:
      cpu += f" ({', '.join(extras)})"
  except (OSError, AttributeError):
    pass
  gpus = [tf.config.experimental.get_device_details(g).get("device_name", g.name)
          for g in tf.config.list_physical_devices("GPU")]
  return f"{cpu}, " + (f"GPUs: {', '.join(gpus)}" if gpus else "no GPU")


def foundation_report(rows: list[dict], pipeline: dict, xla: dict, *, command: str,
                      target: float, reference: str, contender: str) -> str:
  """The markdown section for BENCHMARKS.md. `reference`/`contender` are row labels."""
  ref = next(r for r in rows if r["label"] == reference)
  con = next(r for r in rows if r["label"] == contender)
  lines = _header(command, libraries="keras tensorflow-datasets") + [
      "Data: the real MNIST files in `../shared/data/mnist`; accuracy is on the 10,000-image "
      "test split after every epoch; seconds are training time only (validation excluded), "
      "all recipes in one process, one after the other.",
      "",
      "| recipe | epochs | final test acc | best test acc | train time | "
      f"time to {100 * target:.1f} % (epoch) | train images/s |",
      "|---|---|---|---|---|---|---|",
  ]
  for r in rows:
    reach = _sec(r["seconds_to_target"])
    if r["epoch_to_target"]:
      reach += f" ({r['epoch_to_target']})"
    lines.append(f"| `{r['label']}` | {r['epochs']} | {_pct(r['final_accuracy'])} | "
                 f"{_pct(r['best_accuracy'])} | {r['train_seconds']:.1f} s | {reach} | "
                 f"{r['images_per_second']:.0f} |")
  if ref["seconds_to_target"] and con["seconds_to_target"]:
    ratio = con["seconds_to_target"] / ref["seconds_to_target"]
    lines += ["", f"`{contender}` reaches {100 * target:.1f} % in {ratio:.2f}x the training "
              f"time of `{reference}` (target: at most 0.33x)."]
  lines += ["", "Input pipeline alone vs training loop (images/s, steady state = after the "
            "first epoch, which reads and decodes the TFDS files and fills the cache):", "",
            "| recipe | pipeline alone, epoch 1 | pipeline alone, steady | training loop, steady |",
            "|---|---|---|---|"]
  for name, rates in pipeline.items():
    row = next(r for r in rows if r["label"] == name)
    steady = rates[1:] or rates
    lines.append(f"| `{name}` | {rates[0]:.0f} | {sum(steady) / len(steady):.0f} | "
                 f"{row['images_per_second']:.0f} |")
  lines += ["", "XLA (`jit_compile`) on this CPU: training images/s of each recipe's model on "
            "one real batch, repeated (no input pipeline):", "",
            "| recipe | no XLA | XLA |", "|---|---|---|"]
  for name, rates in xla.items():
    lines.append(f"| `{name}` | {rates['no_xla']:.0f} | {rates['xla']:.0f} |")
  lines += ["", "Per-epoch test accuracy:", ""]
  for r in rows:
    lines.append(f"- `{r['label']}`: " + ", ".join(f"{100 * a:.2f}" for a in r["per_epoch_accuracy"]))
  return "\n".join(lines) + "\n"


def write_section(path: str, section: str, body: str) -> None:
  """Replaces (or appends) the `## {section}` block of a markdown file, between markers."""
  begin, end = f"<!-- begin {section} -->", f"<!-- end {section} -->"
  block = f"{begin}\n## {section}\n\n{body}{end}\n"
  text = open(path).read() if os.path.exists(path) else "# Benchmarks\n\n"
  pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end) + "\n?", re.S)
  text = pattern.sub(lambda _: block, text) if pattern.search(text) else text + "\n" + block
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(text)
  os.replace(tmp, path)


def _median_ms(fn, runs: int) -> float:
  for _ in range(10):  # Warm up (tracing, allocation).
    fn()
  times = []
  for _ in range(runs):
    start = time.perf_counter()
    fn()
    times.append(1000 * (time.perf_counter() - start))
  return float(sorted(times)[len(times) // 2])


def export_rows(version_dir: str, *, data_dir, runs: int = 200) -> list[dict]:
  """Size, accuracy and single-image latency of every artifact of an exported version,
  and of the Keras checkpoint it came from, side by side on the same images."""
  import json

  from zoo import loading, runtime
  card = json.load(open(os.path.join(version_dir, "model_card.json")))
  builder = data.prepare_builder(card["training"]["config"]["dataset"], data_dir=data_dir)
  images, labels = data.split_arrays(builder, card["metrics"]["split"])
  one = images[:1]
  keras_model = keras.saving.load_model(os.path.join(card["training"]["model_dir"],
                                                     train.CHECKPOINT))
  x = data.normalize_images(one)
  rows = [{"artifact": "Keras (.keras checkpoint)",
           "bytes": os.path.getsize(os.path.join(card["training"]["model_dir"], train.CHECKPOINT)),
           "accuracy": card["metrics"]["keras_accuracy"],
           "latency_ms": _median_ms(lambda: keras_model(x, training=False), runs)}]
  saved = loading.load(version_dir)
  variables = os.path.join(version_dir, "variables")
  size = os.path.getsize(os.path.join(version_dir, "saved_model.pb")) + sum(
      os.path.getsize(os.path.join(variables, f)) for f in os.listdir(variables))
  rows.append({"artifact": "SavedModel (serving_default)", "bytes": size,
               "accuracy": card["parity"]["saved_model"]["accuracy"],
               "agreement": card["parity"]["saved_model"]["top1_agreement"],
               "latency_ms": _median_ms(lambda: saved.predict(one), runs)})
  for variant in ("float32", "float16", "dynamic_int8", "int8"):
    if variant not in card["files"]:
      continue
    p = loading.load(os.path.join(version_dir, card["files"][variant]["path"]))
    rows.append({"artifact": f"TFLite {variant}", "bytes": card["files"][variant]["bytes"],
                 "accuracy": card["parity"][variant]["accuracy"],
                 "agreement": card["parity"][variant]["top1_agreement"],
                 "latency_ms": _median_ms(lambda: p.predict(one), runs)})
  return rows


def export_report(results: dict[str, list[dict]], *, command: str) -> str:
  lines = _header(command) + [
      "Accuracy: on the split named in each model card (the 10,000-image MNIST test split); "
      "latency: median of 200 single-image calls through `zoo.load(...).predict` (Keras: a "
      "direct `model(x)` call), after 10 warm-up calls, in one process.",
  ]
  for name, rows in results.items():
    lines += ["", f"`{name}`:", "", "| artifact | size | accuracy | top-1 agreement with Keras | "
              "latency, 1 image (median) |", "|---|---|---|---|---|"]
    for r in rows:
      agreement = f"{100 * r['agreement']:.2f} %" if "agreement" in r else ""
      lines.append(f"| {r['artifact']} | {r['bytes'] / 1e6:.2f} MB | {100 * r['accuracy']:.2f} % | "
                   f"{agreement} | {r['latency_ms']:.2f} ms |")
  return "\n".join(lines) + "\n"


PRECISION_POLICIES = ("float32", "bfloat16", "float16")


def precision_report(step_rates: dict, rows: list[dict], *, command: str) -> str:
  """The precision section of BENCHMARKS.md.

  Args:
    step_rates: {(recipe, policy): {"no_xla": images/s, "xla": images/s}}.
    rows: `run_recipe` rows, one per (recipe, policy), trained for the same epochs.
    command: the command that produced them.
  """
  accelerators = tf.config.list_physical_devices("GPU") + tf.config.list_logical_devices("TPU")
  lines = _header(command) + [
      ("Measured with the accelerators named above. " if accelerators else
       "All figures are CPU figures: **no GPU or TPU was available**. ")
      + "`float16` and `bfloat16` mean the Keras policies `mixed_float16` and "
      "`mixed_bfloat16` (float32 variables, float32 head).",
      "",
      "Training images/s of each recipe's model on one real batch, repeated (no input "
      "pipeline), by policy, without and with XLA:",
      "",
      "| recipe | policy | no XLA | XLA | no XLA, vs float32 |",
      "|---|---|---|---|---|",
  ]
  for (name, policy), rates in step_rates.items():
    base = step_rates[(name, "float32")]["no_xla"]
    lines.append(f"| `{name}` | {policy} | {rates['no_xla']:.0f} | {rates['xla']:.0f} | "
                 f"{rates['no_xla'] / base:.2f}x |")
  lines += ["", "Each whole recipe (input pipeline, its own XLA setting; the time excludes "
            "validation) trained under each policy for the same epochs, from the same seed; "
            "accuracy on the 10,000-image MNIST test split:", "",
            "| recipe | epochs | policy | XLA | test accuracy | train time | train images/s |",
            "|---|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(f"| `{r['recipe']}` | {r['epochs']} | {r['mixed_precision']} | "
                 f"{'on' if r['jit_compile'] else 'off'} | {_pct(r['final_accuracy'])} | "
                 f"{r['train_seconds']:.1f} s | {r['images_per_second']:.0f} |")
  return "\n".join(lines) + "\n"


def seed_summary(rows: list[dict]) -> list[dict]:
  """Per recipe: final accuracy over its seeds as mean, std (sample), min, median, max."""
  import statistics
  out = []
  for recipe in dict.fromkeys(r["recipe"] for r in rows):
    acc = [r["final_accuracy"] for r in rows if r["recipe"] == recipe]
    secs = [r["train_seconds"] for r in rows if r["recipe"] == recipe]
    out.append({"recipe": recipe, "seeds": len(acc), "mean": statistics.mean(acc),
                "std": statistics.stdev(acc) if len(acc) > 1 else 0.0, "min": min(acc),
                "median": statistics.median(acc), "max": max(acc),
                "train_seconds_median": statistics.median(secs)})
  return out


def seeds_report(rows: list[dict], short_rows: list[dict], deterministic_rows: list[dict], *,
                 command: str, floors: dict) -> str:
  """The BENCHMARKS.md section for `scripts/benchmark.py --seeds`."""
  lines = _header(command, libraries="keras tensorflow-datasets") + [
      "Data: the real MNIST files in `../shared/data/mnist`; final accuracy on the 10,000-image "
      "test split after the recipe's full schedule; each seed a fresh run of the unchanged "
      "recipe (`--seed=N`); training seconds exclude validation.",
      "",
      "| recipe | seeds | test accuracy mean ± std | min | median | max | floor | median - floor "
      "| train time (median) |",
      "|---|---|---|---|---|---|---|---|---|",
  ]
  for s in seed_summary(rows):
    floor = floors.get(s["recipe"])
    margin = "" if floor is None else f"{100 * (s['median'] - floor):+.2f} points"
    lines.append(
        f"| `{s['recipe']}` | {s['seeds']} | {100 * s['mean']:.2f} ± {100 * s['std']:.2f} % | "
        f"{_pct(s['min'])} | {_pct(s['median'])} | {_pct(s['max'])} | "
        f"{'' if floor is None else _pct(floor)} | {margin} | {s['train_seconds_median']:.0f} s |")
  lines += ["", "Every run:", "",
            "| run | final test acc | best test acc | train time | time to 99.0 % (epoch) |",
            "|---|---|---|---|---|"]
  for r in rows + short_rows + deterministic_rows:
    epoch = "" if r["epoch_to_target"] is None else f" ({r['epoch_to_target']})"
    lines.append(f"| `{r['label']}` | {_pct(r['final_accuracy'])} | {_pct(r['best_accuracy'])} | "
                 f"{r['train_seconds']:.1f} s | {_sec(r['seconds_to_target'])}{epoch} |")
  for d in deterministic_rows:
    base = next((r for r in rows if r["recipe"] == d["recipe"] and r["seed"] == d["seed"]), None)
    if base:
      lines += ["", f"`--deterministic` (TensorFlow op determinism) on `{d['recipe']}`, seed "
                f"{d['seed']}: {d['train_seconds']:.1f} s of training vs {base['train_seconds']:.1f} s "
                f"without ({d['train_seconds'] / base['train_seconds']:.2f}x), final accuracy "
                f"{_pct(d['final_accuracy'])} vs {_pct(base['final_accuracy'])}."]
  return "\n".join(lines) + "\n"


class TimeBudget(keras.callbacks.Callback):
  """Stops `fit()` at the first step boundary after `seconds` of fitting (from
  `on_train_begin`, so tracing and compilation count), and records what was done."""

  def __init__(self, seconds: float):
    super().__init__()
    self.seconds = seconds
    self.steps = 0
    self.epochs_started = 0

  def on_train_begin(self, logs=None):
    self.start = time.perf_counter()

  def on_epoch_begin(self, epoch, logs=None):
    self.epochs_started += 1

  def on_train_batch_end(self, batch, logs=None):
    self.steps += 1
    self.elapsed = time.perf_counter() - self.start
    if self.elapsed >= self.seconds:
      self.model.stop_training = True


def _gan_child(name, run_dir, budget_seconds, core, data_dir, manual_dir, overrides, queue):
  """One GAN run in a child process (see `gan_side_by_side`), pinned to CPU `core` unless
  `core` is None."""
  if core is not None:
    os.sched_setaffinity(0, {core})
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
  config = registry.get_config(name).replace(**overrides)
  budget = TimeBudget(budget_seconds)
  metrics = train.train_and_evaluate(config, run_dir, data_dir=data_dir, manual_dir=manual_dir,
                                     extra_callbacks=[budget], verbose=2)
  queue.put({"recipe": name, "run_dir": run_dir, "core": core, "steps": budget.steps,
             "batch_size": config.batch_size, "epochs_started": budget.epochs_started,
             "fit_seconds": round(budget.elapsed, 1), "metrics": metrics})


def gan_side_by_side(names: Sequence[str], workdir: str, *, budget_seconds: float, data_dir,
                     manual_dir, parallel: bool = False) -> list[dict]:
  """Trains the GAN recipes `names`, each in a fresh process, each stopped after
  `budget_seconds` of fitting; then each run's final metrics (FID etc. on the recipe's
  `eval_samples`, with the same feature classifier). One after the other, each with the
  whole machine; or, `parallel`, at the same time, each pinned to its own CPU core (equal
  hardware, and other load on the machine hits both alike). The per-epoch quality
  measurement is off in both, so the budget is all training."""
  import multiprocessing
  if parallel and len(names) > os.cpu_count():
    raise ValueError(f"{len(names)} runs need {len(names)} CPU cores; this machine has "
                     f"{os.cpu_count()}.")
  for name in names:  # Once, here: two processes preparing one data_dir would collide.
    data.prepare_builder(registry.get_config(name).dataset, data_dir=data_dir,
                         manual_dir=manual_dir)
  ctx = multiprocessing.get_context("spawn")
  queue = ctx.Queue()
  overrides = {"task_kwargs": {"quality_every_epochs": 0}}
  procs = []
  for core, name in enumerate(names):
    run_dir = os.path.join(workdir, name)
    if os.path.exists(run_dir):
      raise ValueError(f"Benchmark run directory {run_dir} already exists: benchmarks train "
                       "from scratch; pass an empty or new --workdir.")
    p = ctx.Process(target=_gan_child, args=(name, run_dir, budget_seconds,
                                              core if parallel else None, data_dir,
                                              manual_dir, overrides, queue))
    p.start()
    procs.append(p)
    if not parallel:
      p.join()
  for p in procs:
    p.join()
    if p.exitcode:
      raise RuntimeError(f"A benchmark run failed (exit code {p.exitcode}); see its output.")
  rows = [queue.get() for _ in procs]
  order = {name: i for i, name in enumerate(names)}
  return sorted(rows, key=lambda r: order[r["recipe"]])


def gan_report(rows: list[dict], *, command: str, reference: str, contender: str) -> str:
  """The markdown section: FID, coverage and confidence of each GAN at equal wall time."""
  by_name = {r["recipe"]: r for r in rows}
  any_metrics = rows[0]["metrics"]
  feature = any_metrics["feature_model"]
  how = ("at the same time, each in its own process pinned to one CPU core"
         if rows[0]["core"] is not None else "one after the other, each with the whole machine")
  lines = _header(command, libraries="keras numpy") + [
      f"Each recipe trained from scratch on the real MNIST training split for the same "
      f"wall-clock budget, {how}; "
      f"then {any_metrics['num_samples']:,} samples of each were scored against the "
      f"{any_metrics['split']} split with `zoo.quality`: FID in the feature space of the zoo "
      f"classifier `{feature['name']}` version {feature['version']} (its `features` "
      "signature, 3,136-d). These FIDs use the zoo classifier, not Inception-v3: they are "
      "not comparable with MNIST FIDs in the literature.",
      "",
      "| recipe | fit time | steps x batch | epochs | FID | classes min-max | mean confidence |",
      "|---|---|---|---|---|---|---|",
  ]
  for r in rows:
    m = r["metrics"]
    lines.append(f"| `{r['recipe']}` | {r['fit_seconds']:.0f} s | {r['steps']} x "
                 f"{r['batch_size']} | {r['steps'] * r['batch_size'] / 60000:.2f} | "
                 f"{m['fid']:.2f} | {100 * m['coverage_min']:.1f}-{100 * m['coverage_max']:.1f} % "
                 f"| {m['mean_confidence']:.3f} |")
  ratio = by_name[contender]["metrics"]["fid"] / by_name[reference]["metrics"]["fid"]
  lines += ["", f"FID ratio `{contender}` / `{reference}`: **{ratio:.3f}** (target: <= 0.5; "
            "each digit 5-15 % of the samples and mean confidence >= 0.9 for the contender).",
            "", "Class coverage (share of samples per digit 0-9):", ""]
  for r in rows:
    lines.append(f"- `{r['recipe']}`: " + ", ".join(f"{100 * c:.1f}"
                                                   for c in r["metrics"]["class_coverage"]))
  return "\n".join(lines) + "\n"


class LogRecorder(zoo_callbacks.EpochTimer):
  """`EpochTimer` that also keeps the given keys of each epoch's logs (NaN when absent)."""

  def __init__(self, keys: Sequence[str]):
    super().__init__()
    self.values = {k: [] for k in keys}

  def on_epoch_end(self, epoch, logs=None):
    super().on_epoch_end(epoch, logs)
    for key, values in self.values.items():
      values.append(float((logs or {}).get(key, float("nan"))))


def detection_benchmark(name: str, workdir: str, *, data_dir, manual_dir,
                        overrides: Sequence[str] = (), runs: int = 200) -> dict:
  """Trains detector recipe `name` (with `--set`-style `overrides`) from scratch, exports it
  (SavedModel + TFLite, parity checked by the export) and times one-image detection through
  `zoo.load` for every file."""
  from zoo import export
  from zoo import loading, runtime
  from zoo.configs import apply_overrides
  from zoo.data import detection_input
  config = apply_overrides(registry.get_config(name), list(overrides)).validate()
  run_dir = os.path.join(workdir, name)
  if os.path.exists(run_dir):
    raise ValueError(f"Benchmark run directory {run_dir} already exists: pass an empty or "
                     "new --workdir.")
  recorder = LogRecorder(("map", "map_50"))
  keras.backend.clear_session()
  start = time.perf_counter()
  metrics = train.train_and_evaluate(config, run_dir, data_dir=data_dir,
                                     manual_dir=manual_dir, extra_callbacks=[recorder])
  wall = time.perf_counter() - start
  path = export.export_run(run_dir, export_dir=os.path.join(workdir, "exports"),
                           data_dir=data_dir, manual_dir=manual_dir)
  card = runtime.read_card(path)
  builder = data.prepare_builder(config.dataset, data_dir=data_dir)
  one = detection_input.ground_truth(builder, config.eval_split, limit=1)[0]["image"][None]
  latency = {}
  for key, entry in card["files"].items():
    front = loading.load(path if key == "saved_model" else os.path.join(path, entry["path"]))
    latency[key] = _median_ms(lambda: front.detect(one), runs)
  return {"recipe": name, "overrides": list(overrides), "dataset": config.dataset,
          "train_split": config.train_split, "eval_split": config.eval_split,
          "epochs": config.train_epochs, "batch_size": config.batch_size,
          "train_seconds": sum(recorder.train_seconds), "wall_seconds": wall,
          "per_epoch": {"seconds": recorder.train_seconds, **recorder.values},
          "metrics": {k: metrics[k] for k in ("map", "map_50", "map_75", "per_class_ap",
                                              "num_images", "num_objects")},
          "export": path, "files": {k: v.get("bytes") for k, v in card["files"].items()},
          "parity": card["parity"], "checks": card["checks"], "latency_ms": latency,
          "image_shape": list(one.shape[1:]),
          "train_images": data.num_examples(builder, config.train_split),
          "map_images": tasks.get(config.task).knobs(config)["map_images"]}


def detection_report(row: dict, *, command: str) -> str:
  """The detection section of BENCHMARKS.md."""
  m = row["metrics"]
  lines = _header(command, libraries="keras tensorflow-datasets") + [
      f"`{row['recipe']}`{''.join(' --set=' + o for o in row['overrides'])}: "
      f"{row['epochs']} epochs of batches of {row['batch_size']} on the {row['train_images']:,} "
      f"images of `{row['dataset']}` split `{row['train_split']}`, scored with pycocotools on "
      f"the {m['num_images']:,} images ({m['num_objects']:,} objects) of split "
      f"`{row['eval_split']}`.",
      "",
      f"- training time: {row['train_seconds'] / 60:.1f} min (validation excluded); whole "
      f"run with per-epoch validation, mAP and final evaluation: {row['wall_seconds'] / 60:.1f} "
      "min",
      f"- mAP@[.5:.95] **{m['map']:.4f}**, mAP@.5 **{m['map_50']:.4f}**, mAP@.75 "
      f"{m['map_75']:.4f}",
      "- AP@[.5:.95] per class: " + ", ".join(
          f"{k}: {'n/a' if v is None else f'{v:.3f}'}" for k, v in m["per_class_ap"].items()),
      "",
      "Exported files (decoding and NMS inside each; mAP of each file on the same test "
      "images through `zoo.load(...).detect`; latency: median of "
      f"200 one-image calls on a {row['image_shape'][0]}x{row['image_shape'][1]} image after "
      "10 warm-up calls):",
      "",
      "| file | size | mAP@[.5:.95] | mAP@.5 | mAP@.5 gap to Keras | latency, 1 image (median) |",
      "|---|---|---|---|---|---|",
  ]
  for key, parity in row["parity"].items():
    size = row["files"].get(key)
    lines.append(f"| {key} | {f'{size / 1e6:.2f} MB' if size else ''} | {parity['map']:.4f} | "
                 f"{parity['map_50']:.4f} | {parity['map_50_gap']:.4f} | "
                 f"{row['latency_ms'][key]:.2f} ms |")
  if row["recipe"] == "detector_mnist":
    lines += ["", "Targets: mAP@.5 >= 0.95 and mAP@[.5:.95] >= 0.70 within 30 minutes of "
              "training; TFLite float32 median latency <= 15 ms per 128x128 image."]
  lines += ["", f"Per epoch (validation mAP on the first {row['map_images']} images of "
            f"`{row['eval_split']}`, training seconds):", ""]
  per = row["per_epoch"]
  for i, (sec, a, b) in enumerate(zip(per["seconds"], per["map"], per["map_50"]), start=1):
    lines.append(f"- epoch {i}: mAP {a:.4f}, mAP@.5 {b:.4f}, {sec:.0f} s")
  return "\n".join(lines) + "\n"


# --- Serving (scripts/serve.py under load) ------------------------------------------------

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port() -> int:
  import socket
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _mnist_test_digits(manual_dir: str, n: int = 256):
  import gzip

  import numpy as np
  with gzip.open(os.path.join(manual_dir, "t10k-images-idx3-ubyte.gz")) as f:
    return np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28, 1)[:n].copy()


def in_process_rates(version_dir: str, images, batch_sizes: Sequence[int], *,
                     seconds: float = 10.0) -> dict:
  """Images/s of the SavedModel's `serving_default` called in this process, per batch
  size: the limit a server of this model can approach (no HTTP, no JSON)."""
  fn = tf.saved_model.load(version_dir).signatures["serving_default"]
  rates = {}
  for batch in batch_sizes:
    x = tf.constant(images[:batch])
    for _ in range(20):
      fn(images=x)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
      fn(images=x)
      calls += 1
    rates[batch] = calls * batch / (time.perf_counter() - start)
  return rates


# wrk's script: POSTs the bodies of a file (one JSON body per line) round-robin, stops each
# thread after its share of the request count, and prints wrk's own figures as JSON.
_WRK_SCRIPT = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } zoo_timespec;
int clock_gettime(int clock, zoo_timespec *t);
]]
local function now()  -- CLOCK_MONOTONIC, seconds
  local t = ffi.new("zoo_timespec")
  ffi.C.clock_gettime(1, t)
  return tonumber(t.tv_sec) + tonumber(t.tv_nsec) * 1e-9
end

local threads = {}
setup = function(thread) threads[#threads + 1] = thread end

local bodies = {}
for line in io.lines(os.getenv("ZOO_WRK_BODIES")) do bodies[#bodies + 1] = line end
local limit = tonumber(os.getenv("ZOO_WRK_PER_THREAD"))
local i = 0
answered, first, last = 0, 0, 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  if first == 0 then first = now() end
  i = i % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
response = function(status, headers, body)
  answered = answered + 1
  last = now()
  if answered >= limit then wrk.thread:stop() end
end
done = function(summary, latency, requests)
  local t0, t1 = math.huge, 0
  for _, thread in ipairs(threads) do
    t0 = math.min(t0, thread:get("first"))
    t1 = math.max(t1, thread:get("last"))
  end
  local e = summary.errors
  io.write(string.format(
    '\nZOO_WRK {"requests": %d, "seconds": %.6f, "non_2xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p99_us": %d}\n', summary.requests, t1 - t0, e.status,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


def load_run(host: str, port: int, path: str, bodies: Sequence[bytes], *, clients: int,
             requests: int, max_seconds: float) -> dict:
  """Debian's wrk, `clients` keep-alive connections on 1-2 threads, POSTs `bodies`
  round-robin: `requests` at most (each thread stops after its share), `max_seconds` at
  most (wrk itself runs for `max_seconds` whatever the count; the rate is measured from the
  first request sent to the last answer received). A compiled load generator, so the client takes little of the 2 cores the server
  runs on. Returns requests/s, p50/p99 latency (ms) and failed requests (non-2xx answers
  and socket errors)."""
  import json
  import shutil
  import subprocess
  import tempfile
  if not shutil.which("wrk"):
    raise FileNotFoundError("The serving benchmark needs wrk: sudo apt-get install wrk")
  threads = min(2, clients)
  with tempfile.TemporaryDirectory() as tmp:
    bodies_path, script_path = os.path.join(tmp, "bodies"), os.path.join(tmp, "post.lua")
    with open(bodies_path, "wb") as f:
      f.write(b"\n".join(bodies) + b"\n")
    with open(script_path, "w") as f:
      f.write(_WRK_SCRIPT)
    env = dict(os.environ, ZOO_WRK_BODIES=bodies_path,
               ZOO_WRK_PER_THREAD=str(max(1, requests // threads)))
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{clients}", f"-d{int(max_seconds)}s", "--timeout=30s",
         "-s", script_path, f"http://{host}:{port}{path}"],
        capture_output=True, text=True, env=env, timeout=max_seconds + 120, check=True).stdout
  figures = json.loads(out.split("ZOO_WRK ", 1)[1].splitlines()[0])
  seconds = figures["seconds"]  # First request sent to last answer received.
  failed = figures["non_2xx"] + figures["socket_errors"]
  return {"clients": clients, "requests": figures["requests"], "failed": failed,
          "seconds": seconds, "requests_per_second": figures["requests"] / seconds,
          "p50_ms": figures["p50_us"] / 1000, "p99_ms": figures["p99_us"] / 1000}


def serving_benchmark(model_dir: str, *, manual_dir: str, clients: Sequence[int] = (1, 16),
                      requests: int = 3000, max_seconds: float = 60.0,
                      server_flags: Sequence[str] = (), in_process_seconds: float = 10.0
                      ) -> dict:
  """Starts scripts/serve.py for `model_dir`'s newest version with batching off, then on,
  and loads it with single-image predict requests from 1 and 16 clients; also measures
  the in-process SavedModel rates at batch 1 and 16 (the limit)."""
  import json
  import subprocess
  import sys
  import urllib.request

  name = os.path.basename(os.path.normpath(model_dir))
  version = max(int(v) for v in os.listdir(model_dir) if v.isdigit())
  images = _mnist_test_digits(manual_dir)
  bodies = [json.dumps({"instances": images[i:i + 1].tolist()}).encode()
            for i in range(len(images))]
  row = {"model": name, "version": version, "requests": requests, "max_seconds": max_seconds,
         "server_flags": list(server_flags), "runs": []}
  for batching in (False, True):
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, os.path.join(REPO, "scripts", "serve.py"),
         f"--model_base_path={os.path.dirname(os.path.normpath(model_dir))}",
         f"--models={name}", f"--port={port}", f"--enable_batching={batching}",
         "--nodemo", *server_flags], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
      for _ in range(240):
        try:
          urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).read()
          break
        except OSError:
          time.sleep(0.5)
      path = f"/v1/models/{name}:predict"
      load_run("127.0.0.1", port, path, bodies, clients=4, requests=200, max_seconds=3)
      def model_calls():
        health = json.loads(urllib.request.urlopen(
            f"http://127.0.0.1:{port}/healthz", timeout=5).read())
        stats = health["batching"].get(f"{name}/{version}/serving_default", {})
        return stats.get("model_calls", 0), stats.get("rows", 0)

      for n in clients:
        calls, rows = model_calls()
        result = load_run("127.0.0.1", port, path, bodies, clients=n, requests=requests,
                          max_seconds=max_seconds)
        calls_after, rows_after = model_calls()
        # Rows per model call during this run (batching off: no batcher, no count).
        mean_batch = ((rows_after - rows) / (calls_after - calls)
                      if calls_after > calls else None)
        result.update(batching=batching, mean_batch=mean_batch)
        row["runs"].append(result)
    finally:
      server.terminate()
      server.wait(timeout=60)
  row["in_process"] = in_process_rates(os.path.join(model_dir, str(version)), images,
                                       sorted(set(clients)), seconds=in_process_seconds)
  return row


def serving_report(row: dict, *, command: str) -> str:
  """The serving section of BENCHMARKS.md."""
  lines = _header(command, libraries="keras starlette uvicorn") + [
      f"`scripts/serve.py` serving `{row['model']}` version {row['version']} on loopback; "
      "each request is one real MNIST test digit in TensorFlow Serving's row format "
      f"(`POST /v1/models/{row['model']}:predict`). The load comes from Debian's `wrk` (one "
      "keep-alive connection per client) on the same 2 cores as the server: "
      f"{row['requests']:,} requests per row at most, {row['max_seconds']:.0f} s at most, "
      "after 200 warm-up requests. Server flags: defaults"
      + (f" plus `{' '.join(row['server_flags'])}`" if row["server_flags"] else "")
      + " (batching: max batch 32, 2 ms timeout).",
      "",
      "| batching | clients | requests | failed | requests/s | p50 latency | p99 latency | "
      "rows per model call |",
      "|---|---|---|---|---|---|---|---|",
  ]
  for r in row["runs"]:
    mean = "1 (no batching)" if r["mean_batch"] is None else f"{r['mean_batch']:.1f}"
    lines.append(f"| {'on' if r['batching'] else 'off'} | {r['clients']} | {r['requests']:,} | "
                 f"{r['failed']} | {r['requests_per_second']:.0f} | {r['p50_ms']:.1f} ms | "
                 f"{r['p99_ms']:.1f} ms | {mean} |")
  lines += ["", "The limit: the same SavedModel's `serving_default` called in-process (no HTTP, "
            "no JSON), images/s:", "", "| batch size | images/s |", "|---|---|"]
  for batch, rate in row["in_process"].items():
    lines.append(f"| {batch} | {rate:.0f} |")
  by = {(r["batching"], r["clients"]): r for r in row["runs"]}
  most = max(r["clients"] for r in row["runs"])
  if (True, most) in by and (False, most) in by:
    ratio = by[(True, most)]["requests_per_second"] / by[(False, most)]["requests_per_second"]
    lines += ["", f"At {most} clients batching serves **{ratio:.2f}x** the requests/s of "
              "batching off (goal: at least 2x). With one client, batching only adds its "
              "timeout to the latency: nobody else's request arrives to share the call."]
  return "\n".join(lines) + "\n"
