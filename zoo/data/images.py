"""Image files -> model pixels, the same way in exported graphs and in Python apps.

`decode_image_bytes` turns one encoded image of any size into the dataset's uint8 layout;
`match_dataset_polarity` turns a photo of dark ink on light paper (how people write) into
the light-on-dark digits MNIST stores. Both are TensorFlow ops, so the exported
`serve_image_bytes` signature and `zoo.tasks.classification.Classifier.predict_files` share them.
"""

from __future__ import annotations

import tensorflow as tf

# A border whose mean pixel is above this (0-255) is paper, not MNIST's black background.
LIGHT_BORDER_THRESHOLD = 127.5
_BORDER_PIXELS = 2


def decode_image_bytes(image_bytes: tf.Tensor, image_shape) -> tf.Tensor:
  """One encoded PNG/JPEG/GIF/BMP (any size, gray or RGB) -> uint8 [H, W, C] for the model.

  Raises:
    tf.errors.InvalidArgumentError: the bytes are not a decodable image.
  """
  height, width, channels = image_shape
  image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
  if channels == 1:
    image = tf.image.rgb_to_grayscale(image)
  image = tf.image.resize(image, (height, width), antialias=True)
  return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


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
