"""The demo page in a real headless Chromium (Debian's, driven by Selenium through Debian's
chromedriver, given by path so nothing is downloaded): draw a digit and read the label,
generate digits, place digits and detect them. Screenshots go to $ZOO_SCREENSHOT_DIR
(default: the test's temporary directory).

Locally: `sudo apt-get install chromium chromium-driver` (see docs/guides/serving.md). Without
them the test is skipped, unless ZOO_REQUIRE_BROWSER=1 (CI sets it), when it fails.
"""

import os
import pathlib
import shutil

import pytest

CHROMIUM = os.environ.get("ZOO_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("ZOO_CHROMEDRIVER", "/usr/bin/chromedriver")


def _missing() -> str:
  missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
  try:
    import selenium  # noqa: F401
  except ImportError:
    missing.append("selenium (pip install -e '.[serve,test]')")
  return ", ".join(missing)


@pytest.fixture(scope="module")
def browser():
  missing = _missing()
  if missing:
    if os.environ.get("ZOO_REQUIRE_BROWSER") == "1":
      pytest.fail(f"Browser test required but missing: {missing}")
    pytest.skip(f"needs Debian's chromium and chromium-driver, and selenium: missing {missing}")
  from selenium import webdriver
  from selenium.webdriver.chrome.service import Service
  os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never try to download a driver.
  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--disable-quic", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--window-size=1400,1000"):
    options.add_argument(flag)
  driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
  driver.set_page_load_timeout(60)
  yield driver
  driver.quit()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> pathlib.Path:
  path = pathlib.Path(os.environ.get("ZOO_SCREENSHOT_DIR") or tmp_path_factory.mktemp("shots"))
  path.mkdir(parents=True, exist_ok=True)
  return path


def _wait(driver, condition, what, timeout=60):
  from selenium.webdriver.support.ui import WebDriverWait
  try:
    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: condition(d))
  except Exception:
    logs = driver.execute_script(
        "return [...document.querySelectorAll('.status')].map(e => e.id + ': ' + e.textContent)")
    raise AssertionError(f"Timed out waiting for {what}; page says {logs}") from None


def _stroke(driver, element, points):
  """Drags the mouse through `points` (pixels from the element's top-left corner)."""
  from selenium.webdriver.common.action_chains import ActionChains
  width = element.size["width"]
  height = element.size["height"]
  actions = ActionChains(driver, duration=20)
  x0, y0 = points[0]
  actions.move_to_element_with_offset(element, x0 - width // 2, y0 - height // 2)
  actions.click_and_hold()
  for (xa, ya), (xb, yb) in zip(points, points[1:]):
    actions.move_by_offset(xb - xa, yb - ya)
  actions.release().perform()


def test_demo_in_headless_chromium(server, browser, screenshots):
  from selenium.webdriver.common.by import By
  browser.get(server.url + "/")
  _wait(browser, lambda d: "v4" in d.find_element(By.CSS_SELECTOR, "#classify .model").text,
        "the classifier panel to find mnist_cnn v4")

  # 1. Draw a "1": one vertical stroke down the middle of the canvas.
  canvas = browser.find_element(By.ID, "draw-canvas")
  _stroke(browser, canvas, [(140, 50 + 10 * i) for i in range(19)])
  _wait(browser, lambda d: d.find_element(By.ID, "draw-label").text == "1",
        "the drawn stroke to be labelled 1")
  bars = browser.find_elements(By.CSS_SELECTOR, "#draw-bars li")
  assert len(bars) == 10 and "top" in bars[1].get_attribute("class")
  browser.save_screenshot(str(screenshots / "demo_draw.png"))

  # 2. Sixteen digits from dcgan_mnist, ten 3s from cdcgan_mnist.
  browser.find_element(By.ID, "gen-button").click()
  _wait(browser, lambda d: "16 digits" in d.find_element(By.ID, "gen-status").text,
        "16 generated digits")
  lit = browser.execute_script("""
      const c = document.getElementById('gen-grid');
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let lit = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > 128) lit++;
      return lit / (c.width * c.height);""")
  assert 0.03 < lit < 0.6  # Digits drawn: some ink, mostly background.
  from selenium.webdriver.support.ui import Select
  Select(browser.find_element(By.ID, "cgen-digit")).select_by_visible_text("3")
  browser.find_element(By.ID, "cgen-button").click()
  _wait(browser, lambda d: "10 3s" in d.find_element(By.ID, "gen-status").text, "ten 3s")
  browser.save_screenshot(str(screenshots / "demo_generate.png"))

  # 3. Place generated digits on the canvas and detect them.
  browser.find_element(By.ID, "det-place").click()
  _wait(browser, lambda d: d.find_element(By.ID, "det-result").text.startswith("Placed"),
        "digits placed")
  placed = int(browser.find_element(By.ID, "det-canvas").get_attribute("data-placed"))
  browser.find_element(By.ID, "det-button").click()
  _wait(browser, lambda d: "found" in d.find_element(By.ID, "det-result").text,
        "detections")
  found = int(browser.find_element(By.ID, "det-canvas").get_attribute("data-found"))
  # Class-agnostic NMS (detector_mnist's card): no digit is read twice.
  assert placed >= 3 and 1 <= found <= placed, browser.find_element(By.ID, "det-result").text
  # Every panel says what to do.
  hints = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "section .hint")]
  assert len(hints) == 3 and all(len(h) > 40 for h in hints), hints
  browser.save_screenshot(str(screenshots / "demo_detect.png"))
  errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
  assert not errors, errors
