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
stand-in defined here) and refuses every other name before anything is called: the
precaution PyTorch's own `torch.load(weights_only=True)` takes. The file's sha256 is checked
first when one is given.
"""

from __future__ import annotations

import collections
import pickle
import struct
from typing import Optional

import numpy as np

from zoo import errors, presets

MAGIC_NUMBER = 0x1950a86a20f9469cfc6c
PROTOCOL_VERSION = 1001

# torch.<Name>Storage -> the numpy dtype of its elements (little-endian).
STORAGE_DTYPES = {
    "DoubleStorage": "<f8", "FloatStorage": "<f4", "HalfStorage": "<f2",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2",
    "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?",
}


class UnsafePickleError(errors.ZooError, pickle.UnpicklingError):
  """The pickle names a callable a state dict does not need; nothing was called."""


class _Storage:
  """Stands for one `torch.*Storage` type while the object pickle is read."""

  def __init__(self, name: str):
    self.dtype = np.dtype(STORAGE_DTYPES[name])


class _TensorRef:
  """A tensor whose storage's bytes come after the pickle: filled in by `read_state_dict`."""

  def __init__(self, storage, offset, size, stride):
    self.storage_key, self.dtype, self.offset = storage[0], storage[1], offset
    self.size, self.stride = tuple(size), tuple(stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
  del requires_grad, backward_hooks, metadata  # Training state: not weights.
  return _TensorRef(storage, storage_offset, size, stride)


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    **{("torch", name): _Storage(name) for name in STORAGE_DTYPES},
}


class RestrictedUnpickler(pickle.Unpickler):
  """Resolves only the names of `_ALLOWED`; any other global raises `UnsafePickleError`.

  Storages arrive as persistent ids and are returned as `(key, dtype, numel)`.
  """

  def find_class(self, module: str, name: str):
    try:
      return _ALLOWED[(module, name)]
    except KeyError:
      raise UnsafePickleError(
          f"Refused to unpickle {module}.{name}: a PyTorch state dict needs only "
          f"{', '.join(sorted(f'{m}.{n}' for m, n in _ALLOWED))}; this file names other "
          "callables (it may run code when loaded).") from None

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
            and isinstance(pid[1], _Storage)):
      raise UnsafePickleError(f"Unexpected persistent id in a state dict: {pid!r:.200}")
    _, storage_type, key, _device, numel = pid[:5]
    return (str(key), storage_type.dtype, int(numel))


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
  actual = presets.sha256(path) if sha256_hex is not None else None
  if actual != sha256_hex:
    raise errors.InvalidValueError(
        f"Invalid weights file {path!r}: sha256 {actual[:12]}..., expected "
        f"{sha256_hex[:12]}... (corrupted or another file; reinstall the package that "
        "ships it).")
  with open(path, "rb") as f:
    head = f.read(4)
    if head.startswith(b"PK"):
      raise errors.InvalidValueError(
          f"Invalid weights file {path!r}: PyTorch's zip format; this reader takes the "
          "legacy format (torch.save(..., _use_new_zipfile_serialization=False)).")
    f.seek(0)
    try:
      magic, protocol = (RestrictedUnpickler(f).load() for _ in range(2))
      if magic != MAGIC_NUMBER or protocol != PROTOCOL_VERSION:
        raise ValueError(f"magic number {magic!r}, protocol {protocol!r}")
      info = RestrictedUnpickler(f).load()
      if not info.get("little_endian", True):
        raise ValueError("a big-endian file")
      state = RestrictedUnpickler(f).load()
      keys = RestrictedUnpickler(f).load()
      dtypes = {ref.storage_key: ref.dtype for ref in state.values()}
      storages = {}
      for key in keys:
        (numel,) = struct.unpack("<q", f.read(8))
        dtype = dtypes[key]
        data = f.read(numel * dtype.itemsize)
        if len(data) != numel * dtype.itemsize:
          raise ValueError(f"storage {key} is truncated")
        storages[key] = np.frombuffer(data, dtype)
    except UnsafePickleError:
      raise
    except (pickle.UnpicklingError, ValueError, EOFError, struct.error, AttributeError,
            TypeError, KeyError) as e:
      raise errors.InvalidValueError(
          f"Invalid weights file {path!r}: not a legacy-format PyTorch state dict ({e}).") from e
  if not isinstance(state, collections.OrderedDict):
    raise errors.InvalidValueError(f"Invalid weights file {path!r}: holds a "
                                   f"{type(state).__name__}, not a state dict.")
  tensors = collections.OrderedDict()
  for name, ref in state.items():
    flat = storages[ref.storage_key]
    strides = tuple(s * flat.itemsize for s in ref.stride)
    view = np.lib.stride_tricks.as_strided(flat[ref.offset:], ref.size, strides)
    tensors[name] = np.array(view)  # A copy: contiguous, writable, owning its memory.
  return tensors

