"""Classifiers for photos: any backbone of the family (`zoo.models.backbones`) with the
zoo's classifier head, and Keras Applications' MobileNetV2 at any width."""

import keras

from zoo.models import backbones, common


def photo_classifier(*, input_shape=(224, 224, 3), num_classes=10, name=None,
                     backbone="efficientnet_lite0", dropout=0.2, bn_momentum=None):
  """A backbone's pooled head map, dropout and the zoo's classifier head.

  Args:
    input_shape: (height, width, channels) float in [0, 1]; one channel is repeated to
      three. Any size from the backbone's `min_input_size` (fully convolutional); its
      ImageNet weights read photos best at its `input_size`.
    num_classes: number of output classes.
    name: model name (default the backbone's).
    backbone: a name of `zoo.models.backbones` (`efficientnet_lite0/1/2`, `mobilenet_v2`).
    dropout: dropout rate before the classifier.
    bn_momentum: the backbone's BatchNorm moving-statistics momentum (None: its own).

  Returns:
    A `keras.Model` mapping images to float32 class probabilities; its `logits` layer's
    input is the pooled feature (the `features` signature). Weights are random:
    `init_from=imagenet` loads the backbone's (`zoo.finetune`).
  """
  common.check_builder_args(input_shape, num_classes)
  common.check_rate("dropout", dropout)
  net = backbones.get(backbone)
  net.check_input_size(input_shape[0], input_shape[1])
  inputs = keras.Input(shape=tuple(input_shape), name="image")
  x = net.build(inputs, bn_momentum=bn_momentum, head=True)["head"]
  x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
  if dropout:
    x = keras.layers.Dropout(dropout, name="dropout")(x)
  return keras.Model(inputs, common.classifier_head(x, num_classes), name=name or backbone)


def mobilenet_v2(*, input_shape=(96, 96, 3), num_classes=10, name="mobilenet_v2",
                 alpha=0.35, weights=None, dropout=0.2, bn_momentum=0.9):
  """Builds MobileNetV2 (Sandler et al., 2018) from Keras Applications for RGB photos.

  Args:
    input_shape: (height, width, channels), float in [0, 1]; Keras ships ImageNet weights
      for square inputs of 96, 128, 160, 192 or 224 pixels. One channel is repeated to three.
    num_classes: number of output classes.
    name: model name.
    alpha: width multiplier (0.35, 0.5, 0.75, 1.0, 1.3, 1.4 have ImageNet weights); 0.35
      at 96 px is about 11 M multiply-adds per image, cheap enough to train on a CPU.
    weights: None (from scratch, the default) or `imagenet`, read from Keras's cache only:
      it fails at once, never downloading, when the file is not there.
    dropout: dropout rate before the classifier.
    bn_momentum: momentum of every BatchNorm's moving statistics. Keras's 0.999 suits
      ImageNet-length runs; from scratch on a few thousand images the statistics then lag
      the weights for the whole run (the detector's backbone had the same trouble).

  Returns:
    A `keras.Model` mapping images to float32 class probabilities; its `logits` layer's
    input is the pooled 1280-d (x alpha, at least 1280) feature (the `features` signature).
  """
  common.check_builder_args(input_shape, num_classes)
  common.check_rate("dropout", dropout)
  weights = common.mobilenet_v2_weights(weights, input_shape[0], alpha)
  inputs = keras.Input(shape=tuple(input_shape), name="image")
  x = inputs
  if input_shape[-1] == 1:
    x = keras.layers.Concatenate(name="gray_to_rgb")([x, x, x])
  x = keras.layers.Rescaling(2.0, offset=-1.0, name="to_minus1_1")(x)  # MobileNetV2's range.
  net = keras.applications.MobileNetV2(input_tensor=x, include_top=False, weights=weights,
                                       alpha=alpha, input_shape=(*input_shape[:2], 3))
  if bn_momentum != 0.999:
    for layer in net.layers:
      if isinstance(layer, keras.layers.BatchNormalization):
        layer.momentum = bn_momentum
  x = keras.layers.GlobalAveragePooling2D(name="pool")(net.output)
  if dropout:
    x = keras.layers.Dropout(dropout, name="dropout")(x)
  return keras.Model(inputs, common.classifier_head(x, num_classes), name=name)
