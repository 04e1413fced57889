"""Image files -> model pixels, the same way in exported graphs and in Python apps.

`decode_image_bytes` turns one encoded image of any size into the dataset's uint8 layout;
`match_dataset_polarity` turns a photo of dark ink on light paper (how people write) into
the light-on-dark digits MNIST stores; `center_digit` does what MNIST's makers did to every
digit (crop to the ink, fit the box in 20x20 keeping its aspect, centre the centre of mass
in 28x28), so that a digit photographed or scanned anywhere on a page of any size looks
like the digits the model was trained on. All are TensorFlow ops, so the exported
`serve_image_bytes` signature and `zoo.tasks.classification.Classifier.predict_files` share
them (`prepare_image_bytes`).
"""

from __future__ import annotations

import tensorflow as tf

from zoo.configs.base import RESIZE_MODES

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


def decode_image(image_bytes: tf.Tensor) -> tf.Tensor:
  """One encoded PNG/JPEG/GIF/BMP -> uint8 [H, W, 3] at its own size: gray and palette
  images become RGB, an alpha channel is dropped, an animated GIF gives its first frame
  (what `keras.utils.image_dataset_from_directory` decodes too, with the same op).

  Raises:
    tf.errors.InvalidArgumentError: the bytes are not a decodable image.
  """
  return tf.io.decode_image(image_bytes, channels=3, expand_animations=False)


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
