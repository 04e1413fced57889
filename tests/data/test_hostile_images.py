"""Hostile and awkward image files: header sizes read before decoding, the pixel and byte
budgets, EXIF orientation (issue #39, item 1)."""

import io
import struct
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from zoo.data import images


def encode(array, fmt, **kwargs) -> bytes:
  out = io.BytesIO()
  Image.fromarray(array).save(out, fmt, **kwargs)
  return out.getvalue()


def png_bomb(width: int, height: int) -> bytes:
  """A valid gray PNG of `width x height` zeros, a few KB (zlib compresses zeros ~1000:1)."""
  def chunk(kind, body):
    return (struct.pack(">I", len(body)) + kind + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
  row = b"\0" * (width + 1)  # Filter byte + pixels.
  compressor = zlib.compressobj(9)
  body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
  return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
          + chunk(b"IDAT", body) + chunk(b"IEND", b""))


RNG = np.random.default_rng(0)
PICTURE = RNG.integers(0, 256, (37, 53, 3), dtype=np.uint8)


@pytest.mark.parametrize("fmt,kwargs", [
    ("PNG", {}), ("JPEG", {}), ("GIF", {}), ("BMP", {}), ("WEBP", {}),
    ("WEBP", {"lossless": True})])
def test_declared_size_is_read_from_the_header(fmt, kwargs):
  raw = encode(PICTURE, fmt, **kwargs)
  assert images.declared_size(tf.constant(raw)).numpy().tolist() == [37, 53]
  assert images.decode_image(tf.constant(raw)).shape == (37, 53, 3)


def test_a_webp_with_exif_has_the_extended_header_and_its_size():
  raw = encode(PICTURE, "WEBP", exif=Image.Exif().tobytes())
  assert raw[12:16] == b"VP8X"
  assert images.declared_size(tf.constant(raw)).numpy().tolist() == [37, 53]


def test_bytes_in_no_known_format_have_no_size_and_are_not_decoded():
  assert images.declared_size(tf.constant(b"hello")).numpy().tolist() == [-1, -1]
  with pytest.raises(tf.errors.InvalidArgumentError):
    images.decode_image(tf.constant(b"hello"))


def test_a_png_bomb_is_refused_from_its_header_with_one_line():
  bomb = png_bomb(12000, 12000)
  assert len(bomb) < 200_000
  with pytest.raises(tf.errors.InvalidArgumentError, match=(
      r"image of 12000x12000 pixels \(width x height, from its header\) is over the budget "
      r"of 50000000 pixels")):
    images.decode_image(tf.constant(bomb))
  # Under the budget, the same construction decodes.
  assert images.decode_image(tf.constant(png_bomb(300, 200))).shape == (200, 300, 3)


def test_the_byte_budget_holds_in_a_graph():
  @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
  def check(image_bytes):
    with tf.control_dependencies(images.check_image_bytes(image_bytes, max_bytes=100)):
      return tf.strings.length(image_bytes)

  check(tf.constant(b"x" * 100))
  with pytest.raises(tf.errors.InvalidArgumentError, match="image of 101 bytes is over the "
                     "budget of 100 bytes"):
    check(tf.constant(b"x" * 101))


def oriented_jpeg(orientation: int, big_endian: bool) -> bytes:
  exif = Image.Exif()
  exif.endian = ">" if big_endian else "<"
  exif[0x0112] = orientation
  # Big blocks of colour: JPEG's loss stays far below the difference of two orientations.
  picture = np.kron(RNG.integers(0, 256, (4, 6, 3)), np.ones((16, 16, 1))).astype(np.uint8)
  return encode(picture, "JPEG", quality=95, exif=exif.tobytes())


@pytest.mark.parametrize("big_endian", [False, True], ids=["II", "MM"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_pillow_shows_it(orientation, big_endian):
  raw = oriented_jpeg(orientation, big_endian)
  assert raw[raw.index(b"Exif\0\0") + 6:][:2] == (b"MM" if big_endian else b"II")
  assert int(images.exif_orientation(tf.constant(raw))) == orientation
  shown = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(raw))).convert("RGB"))
  ours = images.decode_image(tf.constant(raw)).numpy()
  assert ours.shape == shown.shape
  assert np.abs(ours.astype(int) - shown).mean() < 3


def test_files_without_orientation_read_as_stored():
  for raw in (encode(PICTURE, "JPEG"), encode(PICTURE, "PNG"), b"\xff\xd8" + b"\0" * 10):
    assert int(images.exif_orientation(tf.constant(raw))) == 1


def test_a_photo_stored_sideways_is_prepared_as_shown():
  upright = np.kron(RNG.integers(0, 256, (6, 4, 3)), np.ones((16, 16, 1))).astype(np.uint8)
  exif = Image.Exif()
  exif[0x0112] = 8  # Shown turned 90 degrees counter-clockwise from how it is stored.
  stored = np.rot90(upright, k=-1)
  tagged = encode(stored, "JPEG", quality=95, exif=exif.tobytes())
  untagged = encode(stored, "JPEG", quality=95)

  def prepared(raw):
    image, _, _ = images.prepare_image_bytes(tf.constant(raw), (24, 16, 3), "stretch")
    return image.numpy().astype(int)
  want = prepared(encode(upright, "PNG"))
  assert np.abs(prepared(tagged) - want).mean() < 3
  assert np.abs(prepared(untagged) - want).mean() > 20
