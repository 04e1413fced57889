"""Reads a PyTorch state dict saved in PyTorch's legacy format, without PyTorch.

  tensors = torch_legacy.read_state_dict(path, sha256_hex="5793...")   # {name: np.ndarray}

The legacy format (`torch.save(..., _use_new_zipfile_serialization=False)`, and every
`torch.save` before PyTorch 1.6) is five pickles and raw bytes, one after another:
  1. a magic number (0x1950a86a20f9469cfc6c), 2. the protocol version (1001),
  3. system info (byte order, type sizes), 4. the object: here an `OrderedDict` of tensors,
     each `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` whose
     storage is a persistent id `("storage", torch.FloatStorage, key, device, numel, view)`,
  5. the list of storage keys, in the order their bytes follow;
then, for each key, the storage: its element count as a little-endian int64 and its
elements' raw little-endian bytes.

A pickle can run any callable it names, so the object pickle is read by an Unpickler that
resolves only the names a state dict needs (`collections.OrderedDict`,
`torch._utils._rebuild_tensor_v2` and the `torch.*Storage` types, each mapped to a
stand-in made afresh for each file, so a pickle that BUILDs on one changes nothing after it)
and refuses every other name before anything is called: the precaution PyTorch's own
`torch.load(weights_only=True)` takes. The file is read once, in full (at most `MAX_BYTES`):
its sha256 is checked on those bytes, and those bytes are parsed. Every tensor view is
checked before it is made (integer offset, sizes and strides >= 0, its last element inside
its storage, no more elements than its storage), storage counts are checked against the
bytes left, and the arrays returned add up to at most the file's size (twice, for weights
tied to one storage). Every failure is one line that names the file and the part that was
wrong, never the file's own values.
"""

from __future__ import annotations

import collections
import hashlib
import io
import math
import pickle
import pickletools
import re
import struct
from typing import Optional

import numpy as np

from zoo import errors

MAGIC_NUMBER = 0x1950a86a20f9469cfc6c
PROTOCOL_VERSION = 1001
# The largest file read (EfficientNet-Lite2's is 25 MB).
MAX_BYTES = 2**30

# torch.<Name>Storage -> the numpy dtype of its elements (little-endian).
STORAGE_DTYPES = {
    "DoubleStorage": "<f8", "FloatStorage": "<f4", "HalfStorage": "<f2",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2",
    "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?",
}


class UnsafePickleError(errors.ZooError, pickle.UnpicklingError):
  """The pickle names a callable a state dict does not need; nothing was called."""


class _Storage:
  """Stands for one `torch.*Storage` type while one file's object pickle is read."""

  __slots__ = ("dtype",)

  def __init__(self, name: str):
    self.dtype = np.dtype(STORAGE_DTYPES[name])

  def __setstate__(self, state):
    raise UnsafePickleError("Refused a pickle that sets the state of a storage type.")


class _TensorRef:
  """A tensor whose storage's bytes come after the pickle: filled in by `read_state_dict`.
  `storage` is `(key, dtype, numel)` from `persistent_load`, or None if the pickle gave
  anything else."""

  def __init__(self, storage, offset, size, stride):
    if not (isinstance(storage, tuple) and len(storage) == 3
            and isinstance(storage[1], np.dtype)):
      storage = None
    self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


def _allowed() -> dict:
  """The names a state dict may use, as fresh objects for one file."""
  def rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                        backward_hooks=None, metadata=None):
    del requires_grad, backward_hooks, metadata  # Training state: not weights.
    return _TensorRef(storage, storage_offset, size, stride)
  return {
      ("collections", "OrderedDict"): collections.OrderedDict,
      ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor_v2,
      **{("torch", name): _Storage(name) for name in STORAGE_DTYPES},
  }


_ALLOWED_NAMES = ("collections.OrderedDict, torch._utils._rebuild_tensor_v2 and torch's "
                  f"{len(STORAGE_DTYPES)} storage types (torch.FloatStorage, ...)")


class RestrictedUnpickler(pickle.Unpickler):
  """Resolves only the names of `_allowed()` (`allowed`: one file's set); any other global
  raises `UnsafePickleError`. Storages arrive as persistent ids and are returned as
  `(key, dtype, numel)`."""

  def __init__(self, file, allowed: Optional[dict] = None):
    super().__init__(file)
    self.allowed = allowed if allowed is not None else _allowed()

  def find_class(self, module: str, name: str):
    try:
      return self.allowed[(module, name)]
    except (KeyError, TypeError):
      shown = f"{module}.{name}"
      if not re.fullmatch(r"[\w.]{1,200}", shown, re.ASCII):
        shown = "a name that is long or not printable"
      raise UnsafePickleError(
          f"Refused to unpickle {shown}: a PyTorch state dict needs only {_ALLOWED_NAMES}; "
          "this file names other callables (it may run code when loaded).") from None

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
            and isinstance(pid[1], _Storage) and isinstance(pid[2], str)
            and type(pid[4]) is int and pid[4] >= 0):
      raise UnsafePickleError("Unexpected persistent id in a state dict (expected "
                              "('storage', torch.<Type>Storage, key, device, numel)).")
    return (pid[2], pid[1].dtype, pid[4])


class _Bad(Exception):
  """One part of the file is not what a legacy state dict has (the message says which)."""


_MEMO_OPCODES = {"PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"}


def _check_opcodes(f) -> None:
  """Reads one pickle's opcodes without running them (`pickletools.genops`) and refuses memo
  indices past the opcodes read so far: CPython's C unpickler sizes its memo by the largest
  index it is given (a 2^31 index takes 16 GB)."""
  for count, (opcode, arg, _) in enumerate(pickletools.genops(f)):
    if opcode.name in _MEMO_OPCODES and not (type(arg) is int and 0 <= arg <= count):
      raise _Bad("a memo index past the pickle's length")


def _ints(value, what: str) -> tuple:
  if not (isinstance(value, tuple) and all(type(v) is int and v >= 0 for v in value)):
    raise _Bad(f"{what} not a tuple of integers >= 0")
  return value


def _view(ref, storages: dict, name: str) -> np.ndarray:
  """The array `ref` declares, after checking it lies inside its storage."""
  if not isinstance(ref, _TensorRef) or ref.storage is None:
    raise _Bad("a value that is not a tensor of a storage")
  key, dtype, _ = ref.storage
  if key not in storages:
    raise _Bad("a tensor whose storage is not in the file")
  flat = storages[key]
  if flat.dtype != dtype:
    raise _Bad("a storage read as two types")
  size, stride = _ints(ref.size, "sizes"), _ints(ref.stride, "strides")
  offset = ref.offset
  if type(offset) is not int or offset < 0 or len(size) != len(stride) or len(size) > 16:
    raise _Bad("a tensor whose offset or rank is not valid")
  count = math.prod(size)
  if count and (offset + sum((n - 1) * s for n, s in zip(size, stride)) >= flat.size
                or count > flat.size):
    raise _Bad(f"tensor {name[:80]!r} reaching past its storage")
  if not count:
    return np.zeros(size, flat.dtype)
  view = np.lib.stride_tricks.as_strided(
      flat[offset:], size, tuple(s * flat.itemsize for s in stride), writeable=False)
  return np.array(view)  # A copy: contiguous, writable, owning its memory.


def read_state_dict(path: str, sha256_hex: Optional[str] = None) -> collections.OrderedDict:
  """The tensors of a legacy-format PyTorch state dict, as numpy arrays by name.

  Args:
    path: the `.pth` file.
    sha256_hex: the file's expected sha256; checked before anything is unpickled.

  Returns:
    An `OrderedDict` name -> array (the checkpoint's shapes and dtypes, e.g. a conv weight
    `(out, in, kh, kw)` float32, `num_batches_tracked` int64 `()`).

  Raises:
    zoo.errors.InvalidValueError: the sha256 differs, or the file is not a legacy PyTorch
      file (a zip-format one, truncated data), each naming the file.
    UnsafePickleError: the pickle names a callable outside the few a state dict needs.
  """
  try:
    with open(path, "rb") as f:
      raw = f.read(MAX_BYTES + 1)
  except OSError as e:
    raise errors.InvalidValueError(f"Invalid weights file {path!r}: cannot read it "
                                   f"({e.strerror or type(e).__name__}).") from None
  if len(raw) > MAX_BYTES:
    raise errors.InvalidValueError(f"Invalid weights file {path!r}: over {MAX_BYTES:,} "
                                   "bytes.")
  if sha256_hex is not None:
    actual = hashlib.sha256(raw).hexdigest()
    if actual != sha256_hex:
      raise errors.InvalidValueError(
          f"Invalid weights file {path!r}: sha256 {actual[:12]}..., expected "
          f"{sha256_hex[:12]}... (corrupted or another file; reinstall the package that "
          "ships it).")
  if raw.startswith(b"PK"):
    raise errors.InvalidValueError(
        f"Invalid weights file {path!r}: PyTorch's zip format; this reader takes the "
        "legacy format (torch.save(..., _use_new_zipfile_serialization=False)).")
  part = "the header"
  try:
    f = io.BytesIO(raw)
    allowed = _allowed()

    def load():
      start = f.tell()
      _check_opcodes(f)
      f.seek(start)
      return RestrictedUnpickler(f, allowed).load()
    magic, protocol = load(), load()
    if not (type(magic) is int and magic == MAGIC_NUMBER
            and type(protocol) is int and protocol == PROTOCOL_VERSION):
      raise _Bad("a magic number or protocol version that is not PyTorch's legacy one")
    part = "the system info"
    info = load()
    if not isinstance(info, dict) or info.get("little_endian", True) is not True:
      raise _Bad("system info that is not a little-endian PyTorch's")
    part = "the state dict"
    state = load()
    if not isinstance(state, collections.OrderedDict):
      raise _Bad("an object that is not a state dict (an OrderedDict)")
    if not all(isinstance(name, str) for name in state):
      raise _Bad("names that are not strings")
    part = "the storage keys"
    keys = load()
    if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
      raise _Bad("storage keys that are not a list of strings")
    dtypes = {}
    for ref in state.values():
      if isinstance(ref, _TensorRef) and ref.storage is not None:
        dtypes.setdefault(ref.storage[0], ref.storage[1])
    part = "the storages"
    storages = {}
    for key in keys:
      if key not in dtypes or key in storages:
        raise _Bad("a storage no tensor uses, or one listed twice")
      (numel,) = struct.unpack("<q", f.read(8))
      itemsize = dtypes[key].itemsize
      if numel < 0 or numel * itemsize > len(raw) - f.tell():
        raise _Bad("a storage larger than the bytes left in the file")
      storages[key] = np.frombuffer(f.read(numel * itemsize), dtypes[key])
    part = "the tensors"
    tensors, total = collections.OrderedDict(), 0
    for name, ref in state.items():
      tensors[name] = _view(ref, storages, name)
      total += tensors[name].nbytes
      if total > 2 * len(raw):
        raise _Bad("tensors adding up to more than twice the file's bytes")
  except UnsafePickleError as e:
    raise UnsafePickleError(f"Invalid weights file {path!r}: {e}") from None
  except _Bad as e:
    raise errors.InvalidValueError(f"Invalid weights file {path!r}: not a legacy-format "
                                   f"PyTorch state dict ({part}: {e}).") from None
  except (pickle.UnpicklingError, ValueError, EOFError, struct.error, AttributeError,
          TypeError, KeyError, IndexError, OverflowError, MemoryError, RecursionError,
          UnicodeDecodeError) as e:
    raise errors.InvalidValueError(
        f"Invalid weights file {path!r}: not a legacy-format PyTorch state dict ({part} "
        f"does not unpickle: {type(e).__name__}).") from None
  return tensors
