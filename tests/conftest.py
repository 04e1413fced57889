"""Shared fixtures. Tests never touch the network: real data comes from ../shared/data/mnist,
everything else from `tfds.testing.mock_data` or data the tests make."""

import contextlib
import fcntl
import os
import pathlib
import tempfile

import keras
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tests.models.toy_backbone import toy  # noqa: F401  (a fixture: the family's toy backbone)
from zoo.data import tfds_input

# Two logical CPU devices stand in for two GPUs, so `--strategy=mirrored` runs with two
# replicas here. It must be set before TensorFlow initializes its devices.
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])

# The presets' cache (zoo.presets) of this test session, and of the commands it starts: tests
# never write into the user's ~/.cache/zoo.
os.environ["ZOO_HOME"] = tempfile.mkdtemp(prefix="zoo-test-home-")

REPO = pathlib.Path(__file__).resolve().parents[1]
MNIST_DIR = pathlib.Path(os.environ.get("ZOO_MNIST_DIR", REPO.parent / "shared" / "data" / "mnist"))


@pytest.fixture(autouse=True)
def _float32_policy():
  """Every test starts and ends under the float32 policy with a clean Keras session."""
  keras.mixed_precision.set_global_policy("float32")
  yield
  keras.mixed_precision.set_global_policy("float32")
  keras.backend.clear_session()


@pytest.fixture
def mock_manual_dir(tmp_path):
  """A manual_dir with empty stand-ins for the MNIST files, for use under mock_data
  (which makes download_and_prepare a no-op and invents the examples)."""
  d = tmp_path / "manual"
  d.mkdir()
  for name in tfds_input.EXPECTED_FILES["mnist"]:
    (d / name).write_bytes(b"")
  return str(d)


@pytest.fixture
def mock_mnist():
  with tfds.testing.mock_data(num_examples=64):
    yield


@contextlib.contextmanager
def _one_worker_at_a_time(data_dir: str):
  """Held while a TFDS folder is prepared: under pytest-xdist (`-n 2`) the workers share one
  data_dir, the first prepares each dataset and the others then find it prepared (two
  processes writing one TFDS folder at once would race)."""
  os.makedirs(data_dir, exist_ok=True)
  with open(os.path.join(data_dir, ".prepare.lock"), "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    yield


@pytest.fixture(scope="session")
def real_mnist_data_dir(tmp_path_factory):
  """A TFDS data_dir with the real MNIST, prepared once per test session from
  ../shared/data/mnist (about 25 s), shared by the xdist workers. Set ZOO_TEST_DATA_DIR to
  reuse a prepared one across sessions."""
  if not (MNIST_DIR / "train-images-idx3-ubyte.gz").exists():
    pytest.fail(f"Real MNIST files not found in {MNIST_DIR}: the tests expect ../shared/data/mnist "
                "beside the repo (or ZOO_MNIST_DIR).")
  data_dir = os.environ.get("ZOO_TEST_DATA_DIR")
  if not data_dir:
    # Under xdist each worker's base temp is <session>/popen-gwN: the session's folder is
    # shared by its workers and by no other session.
    base = tmp_path_factory.getbasetemp()
    data_dir = str((base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base)
                   / "real_mnist_tfds")
  with _one_worker_at_a_time(data_dir):
    tfds_input.prepare_builder("mnist", data_dir=data_dir, manual_dir=str(MNIST_DIR))
  return data_dir


@pytest.fixture(scope="session")
def real_mnist_detection_data_dir(real_mnist_data_dir):
  """The same data_dir with `mnist_detection` prepared from the real MNIST files (~20 s)."""
  with _one_worker_at_a_time(real_mnist_data_dir):
    tfds_input.prepare_builder("mnist_detection", data_dir=real_mnist_data_dir,
                               manual_dir=str(MNIST_DIR))
  return real_mnist_data_dir
