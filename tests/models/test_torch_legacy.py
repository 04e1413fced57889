"""The PyTorch-legacy reader on files crafted to break it (issue #39, item 2): every view
checked before it is made, fresh stand-ins per file, one line for every failure, and a
fuzzed file never anything but a state dict or the zoo's error."""

import pickle
import struct
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from zoo import errors
from zoo.converters import torch_legacy


def _str(value: str) -> bytes:
  data = value.encode()
  return b"X" + struct.pack("<I", len(data)) + data


def _int(value: int) -> bytes:
  if -2**31 <= value < 2**31:
    return b"J" + struct.pack("<i", value)
  data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
  return b"\x8a" + bytes([len(data)]) + data  # LONG1


def _tuple(values) -> bytes:
  return b"(" + b"".join(_int(v) for v in values) + b"t"


def state_pickle(tensors, prefix: bytes = b"") -> bytes:
  """Protocol-2 opcodes as torch.save writes a state dict: `tensors` is a list of
  `(name, storage key, storage numel, offset, size, stride)`; `prefix` runs first."""
  out = [b"\x80\x02", prefix, b"ccollections\nOrderedDict\n)R"]
  for name, key, numel, offset, size, stride in tensors:
    out += [_str(name), b"ctorch._utils\n_rebuild_tensor_v2\n(",
            b"(" + _str("storage") + b"ctorch\nFloatStorage\n" + _str(key) + _str("cpu")
            + _int(numel) + b"NtQ",
            _int(offset), _tuple(size), _tuple(stride),
            b"\x89ccollections\nOrderedDict\n)RtRs"]
  return b"".join(out) + b"."


def legacy_file(path, state: bytes, storages: dict) -> str:
  """A legacy-format file: headers, `state`, the storage keys and their float32 bytes."""
  with open(path, "wb") as f:
    for header in (torch_legacy.MAGIC_NUMBER, torch_legacy.PROTOCOL_VERSION,
                   {"protocol_version": 1001, "little_endian": True}):
      pickle.dump(header, f, protocol=2)
    f.write(state)
    pickle.dump(list(storages), f, protocol=2)
    for values in storages.values():
      data = np.asarray(values, "<f4").tobytes()
      f.write(struct.pack("<q", len(data) // 4) + data)
  return str(path)


GOOD_STORAGE = {"0": np.arange(12, dtype=np.float32)}
GOOD_TENSORS = [("w", "0", 12, 2, (2, 3), (3, 1)), ("b", "0", 12, 0, (2,), (5,))]


def good_file(tmp_path) -> str:
  return legacy_file(tmp_path / "good.pth", state_pickle(GOOD_TENSORS), GOOD_STORAGE)


def check_good(path):
  tensors = torch_legacy.read_state_dict(path)
  assert list(tensors) == ["w", "b"]
  np.testing.assert_array_equal(tensors["w"], [[2, 3, 4], [5, 6, 7]])
  np.testing.assert_array_equal(tensors["b"], [0, 5])
  assert tensors["w"].dtype == np.float32


def test_the_crafted_writer_makes_files_the_reader_reads(tmp_path):
  check_good(good_file(tmp_path))


@pytest.mark.parametrize("tensor, why", [
    (("w", "0", 1, 0, (4096,), (1,)), "reaching past its storage"),  # 16 KB from 4 bytes.
    (("w", "0", 4, 3, (2,), (1,)), "reaching past its storage"),  # The offset passes it.
    (("w", "0", 4, 0, (2, 2), (-1, 1)), "strides not a tuple of integers >= 0"),
    (("w", "0", 4, 0, (2, 2), (2**62, 1)), "reaching past its storage"),
    (("w", "0", 1, 0, (8000, 8000), (0, 0)), "reaching past its storage"),  # 0-stride 256 MB.
    (("w", "0", 4, -1, (1,), (1,)), "offset or rank is not valid"),
    (("w", "0", 4, 0, (-2,), (1,)), "sizes not a tuple of integers >= 0"),
])
def test_a_view_outside_its_storage_is_refused_before_it_is_made(tmp_path, tensor, why):
  numel = tensor[2]
  path = legacy_file(tmp_path / "view.pth", state_pickle([tensor]),
                     {"0": np.zeros(numel, np.float32)})
  assert (tmp_path / "view.pth").stat().st_size < 400
  with pytest.raises(errors.InvalidValueError, match=(
      r"view\.pth'?: not a legacy-format PyTorch state dict \(the tensors: .*" + why)):
    torch_legacy.read_state_dict(path)


def test_a_storage_declaring_more_than_the_file_has_is_refused(tmp_path):
  path = legacy_file(tmp_path / "big.pth", state_pickle([("w", "0", 4, 0, (4,), (1,))]),
                     {"0": np.zeros(4, np.float32)})
  raw = bytearray(open(path, "rb").read())
  raw[-24:-16] = struct.pack("<q", 2**40)  # The storage's element count.
  open(path, "wb").write(bytes(raw))
  with pytest.raises(errors.InvalidValueError, match="a storage larger than the bytes left"):
    torch_legacy.read_state_dict(path)


@pytest.mark.parametrize("build", [
    # BUILD on the FloatStorage stand-in, as a pickle may: its dtype set to float64.
    b"ctorch\nFloatStorage\n}" + _str("dtype") + b"cnumpy\nfloat64\nsb0",
    # BUILD on the rebuild function: its defaults and attributes replaced.
    b"ctorch._utils\n_rebuild_tensor_v2\n(N}" + _str("__defaults__") + b"(\x88NNttb0",
])
def test_a_pickle_that_builds_on_a_stand_in_changes_no_later_read(tmp_path, build):
  crafted = legacy_file(tmp_path / "crafted.pth",
                        state_pickle(GOOD_TENSORS, prefix=build), GOOD_STORAGE)
  try:
    torch_legacy.read_state_dict(crafted)
  except errors.ZooError as e:
    assert "\n" not in str(e)
  check_good(good_file(tmp_path))


def test_values_that_would_take_long_to_print_are_never_printed(tmp_path):
  # A list of 2^60 references (60 levels of [x, x]) where the magic number belongs.
  bomb = b"\x80\x02]q\x00" + b"".join(
      b"(h" + bytes([i]) + b"h" + bytes([i]) + b"lq" + bytes([i + 1]) for i in range(60)) + b"."
  path = tmp_path / "bomb.pth"
  path.write_bytes(bomb + open(good_file(tmp_path), "rb").read())
  start = time.perf_counter()
  with pytest.raises(errors.InvalidValueError, match="the header: a magic number") as e:
    torch_legacy.read_state_dict(str(path))
  assert time.perf_counter() - start < 1 and len(str(e.value)) < 300


def test_the_sha256_is_of_the_bytes_that_are_parsed(tmp_path, monkeypatch):
  path = good_file(tmp_path)
  import hashlib
  digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
  opened = []
  real_open = open
  monkeypatch.setattr("builtins.open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
  torch_legacy.read_state_dict(path, sha256_hex=digest)
  assert opened == [path]  # One read: hashed and parsed.


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_damaged_file_is_a_state_dict_or_one_line(tmp_path, data):
  raw = bytearray(open(good_file(tmp_path), "rb").read())
  for _ in range(data.draw(st.integers(1, 8))):
    raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
  raw = raw[:data.draw(st.integers(0, len(raw)))]
  path = tmp_path / "fuzzed.pth"
  path.write_bytes(bytes(raw))
  try:
    tensors = torch_legacy.read_state_dict(str(path))
  except errors.ZooError as e:
    assert str(e).isprintable() and len(str(e)) < 400 + len(str(path))
    return
  assert all(isinstance(v, np.ndarray) and v.nbytes <= 2 * len(raw) for v in tensors.values())
