"""What every BENCHMARKS.md section shares: its header (command, date, machine), the
section writer, number formats, a median timer, and the fresh-run-directory guard."""

from __future__ import annotations

import datetime
import json
import importlib.metadata
import os
import platform
import re
import time

import tensorflow as tf

from zoo import provenance


def pct(x):
  return "n/a" if x is None else f"{100 * x:.2f} %"


def sec(x):
  return "not reached" if x is None else f"{x:.1f} s"


def header(command: str, *, libraries: str = "keras") -> list[str]:
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


def median_ms(fn, runs: int) -> float:
  for _ in range(10):  # Warm up (tracing, allocation).
    fn()
  times = []
  for _ in range(runs):
    start = time.perf_counter()
    fn()
    times.append(1000 * (time.perf_counter() - start))
  return float(sorted(times)[len(times) // 2])


def fresh_run_dir(workdir: str, name: str) -> str:
  """`workdir/name`, which must not exist: a benchmark trains from scratch, and a run
  directory that exists would resume and time nothing."""
  run_dir = os.path.join(workdir, name)
  if os.path.exists(run_dir):
    raise ValueError(f"Benchmark run directory {run_dir} already exists: benchmarks train "
                     "from scratch; pass an empty or new --workdir.")
  return run_dir


def save_json(workdir: str, name: str, value) -> None:
  """The raw figures of a section, beside its runs (`workdir/name`)."""
  with open(os.path.join(workdir, name), "w") as f:
    json.dump(value, f, indent=2)
