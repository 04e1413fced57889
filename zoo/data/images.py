"""Image files -> model pixels, the same way in exported graphs and in Python apps.

`decode_image_bytes` turns one encoded image of any size into the dataset's uint8 layout;
`match_dataset_polarity` turns a photo of dark ink on light paper (how people write) into
the light-on-dark digits MNIST stores; `center_digit` does what MNIST's makers did to every
digit (crop to the ink, fit the box in 20x20 keeping its aspect, centre the centre of mass
in 28x28), so that a digit photographed or scanned anywhere on a page of any size looks
like the digits the model was trained on. All are TensorFlow ops, so the exported
`serve_image_bytes` signature and `zoo.tasks.classification.Classifier.predict_files` share
them (`prepare_image_bytes`).

Hostile files are refused before anything is decoded: `decode_image` reads the width and
height a PNG, JPEG, GIF, BMP or WebP declares in its header (`declared_size`) and stops
past `MAX_IMAGE_PIXELS`, and past `MAX_IMAGE_BYTES` of encoded bytes, with one line (an
`InvalidArgumentError` whose message says what was found and the budget). A JPEG's EXIF
orientation is applied (`exif_orientation`), so a phone photo stored sideways is read as it
is shown. Both are TensorFlow ops, so TensorFlow Serving running an exported
`serve_image_bytes` gets them too.
"""

from __future__ import annotations

import tensorflow as tf

from zoo.configs.base import RESIZE_MODES
from zoo.runtime import MAX_IMAGE_BYTES

# A border whose mean pixel is above this (0-255) is paper, not MNIST's black background.
LIGHT_BORDER_THRESHOLD = 127.5
_BORDER_PIXELS = 2

# `center_digit`, after LeCun, Cortes and Burges' description of MNIST: the digit's box is
# fitted into 20x20 of the 28x28 image (this fraction of the side for other sizes) ...
DIGIT_BOX_FRACTION = 20 / 28
# ... found at a working size of at most this many pixels per side (photos are shrunk first) ...
WORKING_SIDE_PIXELS = 512
# ... as the pixels whose 3x3 mean is this far from the paper towards the ink (0-1; a one
# pixel wide stroke reaches 1/3, camera noise a few hundredths) ...
INK_FRACTION = 0.25
# ... when the ink differs from the paper by at least this (0-255; below: no digit, the
# image is only resized), and levels below this fraction of the ink become background.
MIN_INK_CONTRAST = 32.0
BLACK_POINT = 0.2

# The values of the classification task's `photo_preprocessing` knob: `mnist_digit`
# (`center_digit`), `resize` (stretched, light paper inverted to the dataset's polarity:
# MNIST-like datasets), or one of `RESIZE_MODES` alone (photos: what a folder dataset's
# images went through when it was prepared, nothing more).
PHOTO_PREPROCESSING = ("mnist_digit", "resize", *RESIZE_MODES)

# The largest image decoded, width x height in pixels, read from the header first: a
# 50-megapixel phone photo (8160x6120) fits. Decoding one at the budget and fitting it to the
# model took 0.75 GB (`pad`, `stretch`) to 1.2 GB (`crop`) above the process's own (uint8,
# then float32 for the antialiased resize; 2-core CPU, 2026-12-07). TensorFlow's own decoders
# stop at 2^29 pixels, 10x more.
MAX_IMAGE_PIXELS = 50_000_000
# The most pixels one request's images may add up to (`check_request`, zoo-serve): two
# images at the budget. It bounds a request's decoding time, not only its memory (images
# are decoded one at a time): a request of many small PNG files each declaring the budget
# would otherwise keep a server busy for minutes. Not inside exported graphs: TensorFlow
# Serving may batch several requests into one call.
MAX_REQUEST_PIXELS = 2 * MAX_IMAGE_PIXELS
# How far into a JPEG its EXIF orientation is looked for (the APP1 segment is at most 64 KiB
# and comes first, after at most a JFIF APP0).
EXIF_SCAN_BYTES = 65536 + 64
# Tag 0x0112 (Orientation), type SHORT, count 1, in an Intel (`II`) and a Motorola (`MM`)
# TIFF IFD; the value follows (II: value byte, then 0; MM: 0, then value byte).
_ORIENTATION_II = (0x12, 0x01, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00)
_ORIENTATION_MM = (0x01, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01)


def _head(image_bytes: tf.Tensor, length: int) -> tf.Tensor:
  """The first `length` bytes as int32 [length] (zeros past the end)."""
  padded = tf.strings.join([tf.strings.substr(image_bytes, 0, length),
                            tf.constant(b"\0" * length)])
  return tf.cast(tf.io.decode_raw(tf.strings.substr(padded, 0, length), tf.uint8), tf.int32)


def _number(head, start: int, size: int, big_endian: bool) -> tf.Tensor:
  """An unsigned integer of `size` bytes at `start` of `head`, as int64."""
  order = range(size) if big_endian else reversed(range(size))
  value = tf.constant(0, tf.int64)
  for i in order:
    value = value * 256 + tf.cast(head[start + i], tf.int64)
  return value


def _is(head, start: int, magic: bytes) -> tf.Tensor:
  return tf.reduce_all(tf.equal(head[start:start + len(magic)], list(magic)))


def declared_size(image_bytes: tf.Tensor) -> tf.Tensor:
  """The `[height, width]` (int64) an encoded PNG, JPEG, GIF, BMP or WebP declares in its
  header, read without decoding it; `[-1, -1]` for bytes in no such format (which
  `decode_image` then refuses).

  Raises:
    tf.errors.InvalidArgumentError: a JPEG whose header cannot be parsed.
  """
  head = _head(image_bytes, 32)
  unknown = tf.constant([-1, -1], tf.int64)

  def le(start, size):
    return _number(head, start, size, big_endian=False)

  def bmp():  # BITMAPINFOHEADER: signed 32-bit width and height (negative: top-down).
    signed = [tf.where(v >= 2**31, v - 2**32, v) for v in (le(22, 4), le(18, 4))]
    return tf.abs(tf.stack(signed))

  def webp():  # RIFF "WEBP", then a VP8 (lossy), VP8L (lossless) or VP8X (extended) chunk.
    b = [tf.cast(head[i], tf.int64) for i in range(21, 25)]
    vp8l = tf.stack([1 + ((b[1] // 64) + b[2] * 4 + (b[3] % 16) * 1024),
                     1 + (b[0] + (b[1] % 64) * 256)])
    return tf.case([
        (_is(head, 12, b"VP8 "), lambda: tf.stack([le(28, 2) % 16384, le(26, 2) % 16384])),
        (_is(head, 12, b"VP8L"), lambda: vp8l),
        (_is(head, 12, b"VP8X"), lambda: tf.stack([1 + le(27, 3), 1 + le(24, 3)]))],
        default=lambda: unknown)

  return tf.case([
      (_is(head, 0, b"\x89PNG\r\n\x1a\n"),
       lambda: tf.stack([_number(head, 20, 4, True), _number(head, 16, 4, True)])),
      (_is(head, 0, b"\xff\xd8\xff"),
       lambda: tf.cast(tf.image.extract_jpeg_shape(image_bytes)[:2], tf.int64)),
      (_is(head, 0, b"GIF8"), lambda: tf.stack([le(8, 2), le(6, 2)])),
      (_is(head, 0, b"BM"), bmp),
      (tf.logical_and(_is(head, 0, b"RIFF"), _is(head, 8, b"WEBP")), webp)],
      default=lambda: unknown)


def check_image_bytes(image_bytes: tf.Tensor, max_pixels: int = MAX_IMAGE_PIXELS,
                      max_bytes: int = MAX_IMAGE_BYTES) -> list:
  """Assertions (to run before decoding) that one encoded image is within `max_bytes` and
  declares at most `max_pixels`; each fails with one line saying what was found."""
  size = declared_size(image_bytes)
  pixels = size[0] * size[1]
  length = tf.strings.length(image_bytes)
  return [
      tf.debugging.Assert(length <= max_bytes, [tf.strings.format(
          "image of {} bytes is over the budget of {} bytes (MAX_IMAGE_BYTES)",
          (length, max_bytes))]),
      tf.debugging.Assert(pixels <= max_pixels, [tf.strings.format(
          "image of {}x{} pixels (width x height, from its header) is over the budget of {} "
          "pixels (MAX_IMAGE_PIXELS); downscale it first", (size[1], size[0], max_pixels))]),
  ]


def check_request(image_bytes: tf.Tensor, max_pixels: int = MAX_REQUEST_PIXELS) -> list:
  """An assertion (to run before decoding) that the encoded images `[N]` of one request
  declare at most `max_pixels` in all; it fails with one line."""
  sizes = tf.map_fn(declared_size, image_bytes, fn_output_signature=tf.TensorSpec([2], tf.int64))
  total = tf.reduce_sum(tf.maximum(sizes[:, 0] * sizes[:, 1], 0))
  return [tf.debugging.Assert(total <= max_pixels, [tf.strings.format(
      "request of {} images adding up to {} pixels is over the budget of {} pixels a "
      "request (MAX_REQUEST_PIXELS); send fewer at a time",
      (tf.size(image_bytes), total, max_pixels))])]


def exif_orientation(image_bytes: tf.Tensor) -> tf.Tensor:
  """A JPEG's EXIF Orientation (1-8: how the stored pixels are turned to be shown), or 1
  (none, not a JPEG, or a value outside 1-8). Found as the first Orientation entry of a
  TIFF IFD in the first `EXIF_SCAN_BYTES` (where IFD0 sits in the APP1 segment)."""
  head = _head(image_bytes, EXIF_SCAN_BYTES)
  n = EXIF_SCAN_BYTES - 10

  def first(pattern, value_at, zero_at):
    hits = tf.reduce_all(tf.stack([tf.equal(head[k:k + n], byte)
                                   for k, byte in enumerate(pattern)]), axis=0)
    hits = tf.logical_and(hits, tf.equal(head[zero_at:zero_at + n], 0))
    where = tf.where(tf.reduce_any(hits), tf.argmax(tf.cast(hits, tf.int32), output_type=tf.int32),
                     n)
    return where, head[tf.minimum(where, n - 1) + value_at]

  ii, ii_value = first(_ORIENTATION_II, 8, 9)
  mm, mm_value = first(_ORIENTATION_MM, 9, 8)
  value = tf.where(ii <= mm, ii_value, mm_value)
  found = tf.logical_and(_is(head, 0, b"\xff\xd8"), tf.minimum(ii, mm) < n)
  return tf.where(tf.logical_and(found, (value >= 1) & (value <= 8)), value, 1)


def apply_orientation(image: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
  """Decoded pixels `[H, W, C]` as shown, by EXIF `orientation` (1-8; what Pillow's
  `ImageOps.exif_transpose` does: 2 mirror, 3 turn 180, 4 flip, 5 transpose, 6 turn 90
  clockwise, 7 transverse, 8 turn 90 counter-clockwise)."""
  def t(x):
    return tf.transpose(x, [1, 0, 2])
  branches = [lambda: image, lambda: image, lambda: image[:, ::-1], lambda: image[::-1, ::-1],
              lambda: image[::-1], lambda: t(image), lambda: t(image)[:, ::-1],
              lambda: t(image[::-1, ::-1]), lambda: t(image)[::-1]]
  out = tf.switch_case(tf.cast(orientation, tf.int32), branches)
  out.set_shape([None, None, image.shape[-1]])
  return out


def decode_image(image_bytes: tf.Tensor, channels: int = 3) -> tf.Tensor:
  """One encoded PNG/JPEG/GIF/BMP/WebP -> uint8 [H, W, channels] at its own size, as shown:
  gray and palette images become RGB (for `channels=3`), an alpha channel is dropped, an
  animated GIF gives its first frame (what `keras.utils.image_dataset_from_directory` decodes
  too, with the same op), a JPEG's EXIF orientation is applied. Nothing is decoded past the
  budgets (`check_image_bytes`).

  Raises:
    tf.errors.InvalidArgumentError: the bytes are not a decodable image, or are over budget.
  """
  with tf.control_dependencies(check_image_bytes(image_bytes)):
    image = tf.io.decode_image(image_bytes, channels=channels, expand_animations=False)
  return apply_orientation(image, exif_orientation(image_bytes))


def fit_image(image: tf.Tensor, image_shape, resize: str = "stretch") -> tf.Tensor:
  """A decoded image (uint8 [H, W, 1 or 3], any size) -> uint8 `image_shape` (antialiased).

  Args:
    image: uint8 [H, W, C].
    image_shape: `(height, width, channels)`; RGB becomes gray (ITU-R 601 luma) for one
      channel, gray becomes RGB for three.
    resize: how the aspect is matched (`RESIZE_MODES`): `stretch` resizes to the shape
      (Keras's `image_dataset_from_directory` default), `pad` keeps the aspect and pads
      with black (its `pad_to_aspect_ratio`), `crop` keeps the aspect and cuts the centre
      (its `crop_to_aspect_ratio`, Ultralytics' classify `CenterCrop`).
  """
  if resize not in RESIZE_MODES:
    raise ValueError(f"Invalid value for `resize`: expected one of {list(RESIZE_MODES)}. "
                     f"Received: {resize!r}")
  height, width, channels = image_shape
  x = tf.cast(image, tf.float32)
  if channels == 1 and x.shape[-1] != 1:
    x = tf.image.rgb_to_grayscale(x)
  elif channels == 3 and x.shape[-1] == 1:
    x = tf.image.grayscale_to_rgb(x)
  # Sizes in integer arithmetic (`round(a * b / c)` as `(2ab + c) // 2c`): float sizes
  # rounded differently in eager code and in optimized graphs (and so did
  # `tf.image.resize_with_pad`), and a photo read by `predict_files` must get the pixels
  # the exported graph and the prepared dataset have.
  h, w = tf.shape(x)[0], tf.shape(x)[1]
  taller = h * width > w * height  # Than the target's aspect.
  if resize == "pad":
    inner_h = tf.where(taller, height, tf.maximum((2 * h * width + w) // (2 * w), 1))
    inner_w = tf.where(taller, tf.maximum((2 * w * height + h) // (2 * h), 1), width)
    inner_h, inner_w = tf.minimum(inner_h, height), tf.minimum(inner_w, width)
    x = tf.image.resize(x, tf.stack([inner_h, inner_w]), antialias=True)
    x = tf.image.pad_to_bounding_box(x, (height - inner_h) // 2, (width - inner_w) // 2,
                                     height, width)
  else:
    if resize == "crop":
      crop_h = tf.where(taller, tf.minimum((2 * w * height + width) // (2 * width), h), h)
      crop_w = tf.where(taller, w, tf.minimum((2 * h * width + height) // (2 * height), w))
      top, left = (h - crop_h) // 2, (w - crop_w) // 2
      x = x[top:top + crop_h, left:left + crop_w]
    x = tf.image.resize(x, (height, width), antialias=True)
  x = tf.ensure_shape(x, (height, width, channels))
  return tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8)


def decode_image_bytes(image_bytes: tf.Tensor, image_shape, resize: str = "stretch"
                       ) -> tf.Tensor:
  """One encoded PNG/JPEG/GIF/BMP (any size, gray or RGB) -> uint8 `image_shape` for the
  model (`decode_image`, then `fit_image`).

  Raises:
    tf.errors.InvalidArgumentError: the bytes are not a decodable image.
  """
  return fit_image(decode_image(image_bytes), image_shape, resize)


def border_mean(image: tf.Tensor) -> tf.Tensor:
  """Mean pixel value (0-255, float32) of the outer `_BORDER_PIXELS` frame of an HWC image."""
  x = tf.cast(image, tf.float32)
  b = _BORDER_PIXELS
  frame = tf.concat([tf.reshape(x[:b], [-1]), tf.reshape(x[-b:], [-1]),
                     tf.reshape(x[b:-b, :b], [-1]), tf.reshape(x[b:-b, -b:], [-1])], axis=0)
  return tf.reduce_mean(frame)


def match_dataset_polarity(image: tf.Tensor, auto_invert=True):
  """Returns `(image, inverted)`: a light-background image inverted to light-on-dark.

  MNIST stores light digits (255) on a black background (0); a photo or scan of a digit
  written on paper is the reverse, and a classifier trained on MNIST calls most of those
  an "8" with high confidence. When the border is light (mean above
  `LIGHT_BORDER_THRESHOLD`), the image is inverted and its levels stretched so that the
  paper becomes 0 and the darkest ink 255, as in the dataset. Images with a dark border
  (every MNIST image) pass unchanged.

  Args:
    image: uint8 [H, W, C].
    auto_invert: bool (or boolean tensor); False returns the image unchanged.

  Returns:
    uint8 [H, W, C] and a boolean scalar, True if the image was inverted.
  """
  inverted = tf.logical_and(tf.cast(auto_invert, tf.bool),
                            border_mean(image) > LIGHT_BORDER_THRESHOLD)

  def invert():
    x = 255.0 - tf.cast(image, tf.float32)
    paper = border_mean(x)
    ink = tf.reduce_max(x)
    x = (x - paper) * 255.0 / tf.maximum(ink - paper, 1.0)
    return tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8)

  return tf.cond(inverted, invert, lambda: tf.cast(image, tf.uint8)), inverted


def _levels(image: tf.Tensor, auto_invert):
  """float32 gray [H, W, 1] (0-255) -> (ink level [H, W, 1] in [0, 1] with the paper at 0,
  inverted, contrast): light paper is inverted first (see `match_dataset_polarity`)."""
  paper = border_mean(image)
  inverted = tf.logical_and(tf.cast(auto_invert, tf.bool), paper > LIGHT_BORDER_THRESHOLD)
  image = tf.where(inverted, 255.0 - image, image)
  paper = tf.where(inverted, 255.0 - paper, paper)
  smooth = tf.nn.avg_pool2d(image[None], 3, 1, "SAME")[0]
  contrast = tf.reduce_max(smooth) - paper
  scale = 1.0 / tf.maximum(contrast, 1.0)
  return (image - paper) * scale, (smooth - paper) * scale, inverted, contrast


def _first_true(mask: tf.Tensor) -> tf.Tensor:
  return tf.argmax(tf.cast(mask, tf.int32), output_type=tf.int32)


def center_digit(image: tf.Tensor, image_shape, auto_invert=True):
  """One decoded image of a digit (uint8 [H, W, C], any size, gray or RGB, dark ink on
  light paper or light on dark) -> `(pixels uint8 image_shape, inverted, centered)`.

  What MNIST's makers did to each digit: the ink's bounding box is cropped, scaled so that
  its longer side fills `DIGIT_BOX_FRACTION` of the output (20 of 28 pixels) keeping its
  aspect, and placed so that its centre of mass is the output's centre (kept inside the
  frame). Light paper is inverted to light-on-dark; the paper's level becomes 0 and the
  ink's 255, levels below `BLACK_POINT` of the ink 0. Without ink (contrast below
  `MIN_INK_CONTRAST`) the image is only resized, as `decode_image_bytes` does, and
  `centered` is False.

  Args:
    image: uint8 [H, W, C], C 1 or 3.
    image_shape: the model's `(height, width, channels)`.
    auto_invert: bool (or boolean tensor): invert light paper.

  Returns:
    uint8 `image_shape`, and two boolean scalars: inverted, centered.
  """
  height, width, channels = image_shape
  x = tf.cast(image, tf.float32)
  if x.shape[-1] != 1:
    x = tf.image.rgb_to_grayscale(x)
  size = tf.cast(tf.shape(x)[:2], tf.float32)
  shrink = tf.minimum(1.0, WORKING_SIDE_PIXELS / tf.reduce_max(size))
  x = tf.image.resize(x, tf.maximum(tf.cast(tf.round(size * shrink), tf.int32), 1),
                      antialias=True)
  level, smooth, inverted, contrast = _levels(x, auto_invert)
  level = tf.clip_by_value((level - BLACK_POINT) / (1.0 - BLACK_POINT), 0.0, 1.0)
  mask = smooth[..., 0] > INK_FRACTION
  centered = tf.logical_and(contrast >= MIN_INK_CONTRAST, tf.reduce_any(mask))

  def crop_and_center():
    rows, cols = tf.reduce_any(mask, axis=1), tf.reduce_any(mask, axis=0)
    top, left = _first_true(rows), _first_true(cols)
    bottom = tf.size(rows) - _first_true(tf.reverse(rows, [0]))
    right = tf.size(cols) - _first_true(tf.reverse(cols, [0]))
    crop = level[top:bottom, left:right]
    box_h, box_w = tf.cast(bottom - top, tf.float32), tf.cast(right - left, tf.float32)
    scale = DIGIT_BOX_FRACTION * min(height, width) / tf.maximum(box_h, box_w)
    patch_h = tf.clip_by_value(tf.cast(tf.round(box_h * scale), tf.int32), 1, height)
    patch_w = tf.clip_by_value(tf.cast(tf.round(box_w * scale), tf.int32), 1, width)
    patch = tf.image.resize(crop, tf.stack([patch_h, patch_w]), antialias=True)
    patch = tf.clip_by_value(patch, 0.0, 1.0)
    mass = tf.maximum(tf.reduce_sum(patch), 1e-6)
    com_y = tf.reduce_sum(patch[..., 0] * (tf.range(patch_h, dtype=tf.float32) + 0.5)[:, None])
    com_x = tf.reduce_sum(patch[..., 0] * (tf.range(patch_w, dtype=tf.float32) + 0.5)[None, :])
    offset_y = tf.clip_by_value(tf.cast(tf.round(height / 2 - com_y / mass), tf.int32),
                                0, height - patch_h)
    offset_x = tf.clip_by_value(tf.cast(tf.round(width / 2 - com_x / mass), tf.int32),
                                0, width - patch_w)
    return tf.image.pad_to_bounding_box(patch, offset_y, offset_x, height, width) * 255.0

  def resize_only():
    return tf.image.resize(tf.clip_by_value(level, 0.0, 1.0), (height, width),
                           antialias=True) * 255.0

  out = tf.cond(centered, crop_and_center, resize_only)
  out = tf.ensure_shape(out, (height, width, 1))
  if channels == 3:
    out = tf.image.grayscale_to_rgb(out)
  return tf.cast(tf.clip_by_value(tf.round(out), 0, 255), tf.uint8), inverted, centered


def prepare_image_bytes(image_bytes: tf.Tensor, image_shape, preprocessing: str,
                        auto_invert=True):
  """One encoded image -> `(pixels uint8 image_shape, inverted, centered)` by the model's
  `preprocessing` (`PHOTO_PREPROCESSING`): `mnist_digit` (`center_digit`), `resize`
  (`decode_image_bytes`, then `match_dataset_polarity`), or `pad`/`crop`/`stretch`
  (`decode_image_bytes` alone, never inverted). `centered` is True only for a centred digit.

  Raises:
    tf.errors.InvalidArgumentError: the bytes are not a decodable image.
    ValueError: an unknown `preprocessing`.
  """
  if preprocessing not in PHOTO_PREPROCESSING:
    raise ValueError(f"Invalid value for `photo_preprocessing`: expected one of "
                     f"{list(PHOTO_PREPROCESSING)}. Received: {preprocessing!r}")
  if preprocessing == "mnist_digit":
    return center_digit(decode_image(image_bytes), image_shape, auto_invert)
  if preprocessing in RESIZE_MODES:
    return (decode_image_bytes(image_bytes, image_shape, preprocessing), tf.constant(False),
            tf.constant(False))
  image, inverted = match_dataset_polarity(decode_image_bytes(image_bytes, image_shape),
                                           auto_invert)
  return image, inverted, tf.constant(False)
