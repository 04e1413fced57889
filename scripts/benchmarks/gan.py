"""BENCHMARKS.md, "DCGAN vs the TensorFlow tutorial (gan)": GAN recipes trained for the
same wall-clock budget, each in a fresh process, then FID, class coverage and confidence
of each (zoo.quality, the same feature classifier)."""

from __future__ import annotations

import multiprocessing
import os
from typing import Sequence

import tensorflow as tf

from benchmarks import report
from zoo import callbacks as zoo_callbacks
from zoo import data, registry, train


def _gan_child(name, run_dir, budget_seconds, core, data_dir, manual_dir, overrides, queue):
  """One GAN run in a child process (see `gan_side_by_side`), pinned to CPU `core` unless
  `core` is None."""
  if core is not None:
    os.sched_setaffinity(0, {core})
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
  config = registry.get_config(name).replace(**overrides)
  budget = zoo_callbacks.TimeBudget(budget_seconds)
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
    run_dir = report.fresh_run_dir(workdir, name)
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
  lines = report.header(command, libraries="keras numpy") + [
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


def main(flags, workdir: str, command: str) -> tuple[str, str]:
  rows = gan_side_by_side(flags.gan, workdir, budget_seconds=60 * flags.gan_minutes,
                          data_dir=flags.data_dir, manual_dir=flags.manual_dir,
                          parallel=flags.gan_parallel)
  report.save_json(workdir, "gan.json", rows)
  body = gan_report(rows, command=command, reference=flags.gan[0], contender=flags.gan[-1])
  return "DCGAN vs the TensorFlow tutorial (gan)", body
