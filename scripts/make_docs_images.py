"""Makes the docs' pictures (`docs/images/`) from the shipped models and a real training run.

  pip install -e '.[docs,serve,test]'   # matplotlib; Selenium for the screenshots
  python scripts/make_docs_images.py --manual_dir=../shared/data/mnist

Writes, each from what the zoo really does (nothing drawn by hand):
  cdcgan_digits.png     `cdcgan_mnist` preset, seeds 0-9 for each requested digit, a row each
  dcgan_digits.png      `dcgan_mnist` preset, 64 seeds
  detections.png        `detector_mnist` on a test canvas and on a photo-like page of test
                        digits (`zoo.data.mnist_detection.write_coco_photos`; gray, its
                        paper and noise taken away)
  overview.png          the README's picture: the conditional digits beside the canvas
  confusion_matrix.png  the `mnist_cnn` preset on the 10,000 MNIST test digits
  training_curves.png   a real `mnist_cnn` run (trained here into --workdir unless --run_dir
                        names one), read back from its TensorBoard logs
  tensorboard.png       TensorBoard on that run, in headless Chromium (Debian's chromium and
                        chromedriver, as tests/serving/test_browser.py)
  demo.png              the zoo-serve demo page after drawing a 1, generating and detecting

Seeds and inputs are fixed, so a rerun on the same models draws the same pictures (the
screenshots up to fonts and timing). Takes about 5 minutes, most of it the training run.
"""

from zoo import cli  # First: quiets TensorFlow's start-up.

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import flags
from PIL import Image

import zoo
from zoo import drawing
from zoo.data import mnist_detection
from zoo.serving import runner

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

flags.DEFINE_string("manual_dir", None, "Folder with MNIST's four original files.",
                    required=True)
flags.DEFINE_string("output_dir", os.path.join(REPO, "docs", "images"), "Where to write.")
flags.DEFINE_string("run_dir", None, "A finished mnist_cnn run to draw; default: train one "
                    "into --workdir.")
flags.DEFINE_string("workdir", None, "Scratch folder (default: a temporary one).")
flags.DEFINE_list("only", [], "Make only these pictures (names without .png).")
FLAGS = flags.FLAGS

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def _save(image: np.ndarray, name: str, scale: int = 1) -> None:
  picture = Image.fromarray(np.squeeze(image) if image.shape[-1] == 1 else image)
  if scale > 1:
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
  picture.save(os.path.join(FLAGS.output_dir, f"{name}.png"), optimize=True)
  print(f"-> docs/images/{name}.png")


def cdcgan_grid() -> np.ndarray:
  generator = zoo.load("cdcgan_mnist")
  digits = np.repeat(np.arange(10), 10)
  images = generator.generate_seeds(np.tile(np.arange(10), 10), labels=digits)
  return drawing.image_grid(images, rows=10)


def dcgan_grid() -> np.ndarray:
  return drawing.image_grid(zoo.load("dcgan_mnist").generate_seeds(np.arange(64)), rows=8)


def _test_canvas():
  images, labels = mnist_detection.read_mnist(FLAGS.manual_dir, "test")
  canvases = mnist_detection.make_canvases(images, labels, 40, seed=7)
  return next(c for c in canvases if len(c[2]) == 4)[0]


def _photo_page(workdir: str) -> tuple[np.ndarray, np.ndarray]:
  """(the photo-like page as it is, RGB; what detector_mnist is given, gray)."""
  folder = os.path.join(workdir, "coco_photos")
  if not os.path.isdir(folder):
    mnist_detection.write_coco_photos(FLAGS.manual_dir, folder,
                                      num_images={"train": 1, "valid": 10}, seed=3)
  photo = Image.open(os.path.join(folder, "valid", "valid_00008.jpg")).convert("RGB")
  gray = np.asarray(photo.convert("L"), np.float32)
  # detector_mnist knows light digits on black, as MNIST's: the page's paper (its median) is
  # taken away and the ink stretched to 0-255, whether the ink is darker or lighter.
  # The camera noise left is cut (MNIST's background is exactly 0): detector_mnist was
  # trained on clean canvases, and on noisy pages it also reads noise as digits.
  ink = np.abs(gray - np.median(gray))
  ink = np.clip(255 * ink / np.percentile(ink, 99.5), 0, 255)
  return np.asarray(photo), np.where(ink > 120, ink, 0).astype(np.uint8)[..., None]


def _detect_and_draw(detector, image: np.ndarray, side: int, shown=None) -> np.ndarray:
  """`image`'s detections drawn on `shown` (default: the image itself)."""
  out = detector.detect(image[None])
  keep = out["detection_scores"][0] >= 0.5
  drawn = drawing.draw_detections(image if shown is None else shown,
                                  out["detection_boxes"][0][keep],
                                  out["detection_classes"][0][keep].astype(int),
                                  out["detection_scores"][0][keep], detector.class_names)
  return drawing.fit_square(drawn, side)


def detections(workdir: str) -> tuple[np.ndarray, np.ndarray]:
  detector = zoo.load("detector_mnist")
  canvas = _detect_and_draw(detector, _test_canvas(), 384)
  photo, gray = _photo_page(workdir)
  page = _detect_and_draw(detector, gray, 384, shown=photo)
  gap = np.full((384, 16, 3), 255, np.uint8)
  return np.concatenate([canvas, gap, page], axis=1), canvas


def overview(digits: np.ndarray, canvas: np.ndarray) -> np.ndarray:
  side = canvas.shape[0]
  digits = np.asarray(Image.fromarray(np.squeeze(digits)).convert("RGB").resize(
      (side, side), Image.NEAREST))
  gap = np.full((side, 16, 3), 255, np.uint8)
  return np.concatenate([digits, gap, canvas], axis=1)


def confusion_matrix() -> None:
  import matplotlib
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt
  images, labels = mnist_detection.read_mnist(FLAGS.manual_dir, "test")
  predicted = zoo.load("mnist_cnn").predict(images[..., None])["classes"]
  matrix = np.zeros((10, 10), np.int64)
  np.add.at(matrix, (labels, predicted), 1)
  fig, ax = plt.subplots(figsize=(5.2, 4.6), dpi=100)
  ax.imshow(np.log1p(matrix), cmap="Blues")  # Log counts: the few errors stay visible.
  for (i, j), count in np.ndenumerate(matrix):
    if count:
      ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
              color="white" if count > 500 else "black")
  ax.set_xticks(range(10))
  ax.set_yticks(range(10))
  ax.set_xlabel("predicted digit")
  ax.set_ylabel("true digit")
  accuracy = np.trace(matrix) / matrix.sum()
  ax.set_title(f"mnist_cnn on the 10,000 MNIST test digits: {100 * accuracy:.2f} %")
  fig.tight_layout()
  fig.savefig(os.path.join(FLAGS.output_dir, "confusion_matrix.png"))
  plt.close(fig)
  print("-> docs/images/confusion_matrix.png")


def _train_run(workdir: str) -> str:
  run_dir = os.path.join(workdir, "runs", "cnn")
  subprocess.run([sys.executable, os.path.join(REPO, "scripts", "train.py"),
                  "--model=mnist_cnn", f"--model_dir={run_dir}",
                  f"--manual_dir={FLAGS.manual_dir}", f"--data_dir={workdir}/tfds"], check=True)
  return run_dir


def _scalars(run_dir: str, split: str) -> dict:
  from tensorboard.backend.event_processing import event_accumulator
  import tensorflow as tf
  folder = os.path.join(run_dir, "tensorboard", split)
  accumulator = event_accumulator.EventAccumulator(folder, size_guidance={"tensors": 0})
  accumulator.Reload()
  series = {}
  for tag in accumulator.Tags()["tensors"]:
    if not tag.startswith("epoch_"):  # Per-epoch scalars; not images or text.
      continue
    events = accumulator.Tensors(tag)
    series[tag] = ([e.step + 1 for e in events],
                   [float(tf.make_ndarray(e.tensor_proto)) for e in events])
  return series


def training_curves(run_dir: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt
  train, validation = _scalars(run_dir, "train"), _scalars(run_dir, "validation")
  fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=100)
  for ax, metric in ((left, "epoch_loss"), (right, "epoch_accuracy")):
    for name, series in (("train", train), ("validation (test split)", validation)):
      if metric in series:
        ax.plot(*series[metric], marker="o", markersize=3, label=name)
    ax.set_xlabel("epoch")
    ax.set_title(metric.replace("epoch_", ""))
    ax.grid(alpha=0.3)
  right.legend()
  fig.suptitle("mnist_cnn, one run of `zoo-train --model=mnist_cnn` (from its TensorBoard logs)",
               fontsize=10)
  fig.tight_layout()
  fig.savefig(os.path.join(FLAGS.output_dir, "training_curves.png"))
  plt.close(fig)
  print("-> docs/images/training_curves.png")


def _browser(size: str = "1280,860"):
  from selenium import webdriver
  from selenium.webdriver.chrome.service import Service
  os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never try to download a driver.
  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--no-first-run", "--disable-background-networking", f"--window-size={size}"):
    options.add_argument(flag)
  return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


@contextlib.contextmanager
def _page_of(command: list, ready, size: str, cwd=None, timeout_s: float = 180):
  """Starts the server `command`, waits until `ready(its output so far)` returns a value,
  and yields `(a headless browser, that value)`; stops both afterwards."""
  log = tempfile.TemporaryFile(mode="w+")
  process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=cwd)
  deadline, found = time.monotonic() + timeout_s, None
  while not found and process.poll() is None and time.monotonic() < deadline:
    time.sleep(0.5)
    log.seek(0)
    found = ready(log.read())
  browser = None
  try:
    if not found:
      log.seek(0)
      raise RuntimeError(f"{command[1]} did not start:\n{log.read()[-2000:]}")
    browser = _browser(size)
    yield browser, found
  finally:
    if browser is not None:
      browser.quit()
    process.terminate()
    process.wait(timeout=60)


def tensorboard_screenshot(run_dir: str) -> None:
  # Run where the reader would, on `runs/`: the page shows the logdir as given.
  parent = os.path.dirname(os.path.abspath(run_dir))
  command = [sys.executable, os.path.join(REPO, "scripts", "run_tensorboard.py"),
             f"--logdir={os.path.basename(parent)}/", "--port=0"]
  ready = lambda text: (re.search(r"http://localhost:(\d+)/", text) or [None, None])[1]
  with _page_of(command, ready, "1280,900", cwd=os.path.dirname(parent)) as (browser, port):
    # The Scalars dashboard, filtered to the per-epoch loss and accuracy.
    browser.get(f"http://localhost:{port}/#scalars&tagFilter=epoch_(loss%7Caccuracy)")
    time.sleep(15)  # TensorBoard's page loads its plugins, then draws the charts.
    browser.save_screenshot(os.path.join(FLAGS.output_dir, "tensorboard.png"))
  print("-> docs/images/tensorboard.png")


def _stroke(driver, element, points):
  from selenium.webdriver.common.action_chains import ActionChains
  actions = ActionChains(driver, duration=20)
  x0, y0 = points[0]
  actions.move_to_element_with_offset(element, x0 - element.size["width"] // 2,
                                      y0 - element.size["height"] // 2)
  actions.click_and_hold()
  for (xa, ya), (xb, yb) in zip(points, points[1:]):
    actions.move_by_offset(xb - xa, yb - ya)
  actions.release().perform()


def demo_screenshot() -> None:
  from selenium.webdriver.common.by import By
  from selenium.webdriver.support.ui import WebDriverWait
  command = [sys.executable, os.path.join(REPO, "scripts", "serve.py"), "--port=0",
             "--grpc_port=0", "--models=mnist_cnn,dcgan_mnist,cdcgan_mnist,detector_mnist"]
  # Tall enough for all three panels.
  with _page_of(command, runner.ready_ports, "1280,1500") as (browser, ports):

    def wait(condition):
      WebDriverWait(browser, 60, poll_frequency=0.2).until(condition)

    browser.get(f"http://127.0.0.1:{ports[0]}/")
    wait(lambda d: "v4" in d.find_element(By.CSS_SELECTOR, "#classify .model").text)
    _stroke(browser, browser.find_element(By.ID, "draw-canvas"),
            [(140, 50 + 10 * i) for i in range(19)])
    wait(lambda d: d.find_element(By.ID, "draw-label").text == "1")
    browser.find_element(By.ID, "gen-button").click()
    wait(lambda d: "16 digits" in d.find_element(By.ID, "gen-status").text)
    browser.find_element(By.ID, "det-place").click()
    wait(lambda d: d.find_element(By.ID, "det-result").text.startswith("Placed"))
    browser.find_element(By.ID, "det-button").click()
    wait(lambda d: "found" in d.find_element(By.ID, "det-result").text)
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(os.path.join(FLAGS.output_dir, "demo.png"))
  print("-> docs/images/demo.png")


def main(argv):
  cli.no_arguments(argv)
  os.makedirs(FLAGS.output_dir, exist_ok=True)
  workdir = FLAGS.workdir or tempfile.mkdtemp(prefix="zoo-docs-images-")
  wanted = set(FLAGS.only) or {"cdcgan_digits", "dcgan_digits", "detections", "overview",
                               "confusion_matrix", "training_curves", "tensorboard", "demo"}
  digits = cdcgan_grid()
  if "cdcgan_digits" in wanted:
    _save(digits, "cdcgan_digits", scale=2)
  if "dcgan_digits" in wanted:
    _save(dcgan_grid(), "dcgan_digits", scale=2)
  if wanted & {"detections", "overview"}:
    both, canvas = detections(workdir)
    if "detections" in wanted:
      _save(both, "detections")
    if "overview" in wanted:
      _save(overview(digits, canvas), "overview")
  if "confusion_matrix" in wanted:
    confusion_matrix()
  if wanted & {"training_curves", "tensorboard"}:
    run_dir = FLAGS.run_dir or _train_run(workdir)
    if "training_curves" in wanted:
      training_curves(run_dir)
    if "tensorboard" in wanted:
      tensorboard_screenshot(run_dir)
  if "demo" in wanted:
    demo_screenshot()
  if not FLAGS.workdir:
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
  cli.run(main)
