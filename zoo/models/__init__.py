"""Pure model builders: no data, no flags, no device logic.

Every builder takes keyword arguments `input_shape`, `num_classes`, `name`, plus its own
knobs, and returns a `keras.Model` whose output is float32 class probabilities
(the last activation is forced to float32 so mixed-precision recipes stay stable).
"""

from zoo.models.cnn import cnn, cnn_tiny, keras_example_cnn
from zoo.models.mlp import mlp, mlp_tiny

# Builders by name; recipes in `zoo.configs` refer to these names.
MODELS = {
    "mlp": mlp,
    "mlp_tiny": mlp_tiny,
    "cnn": cnn,
    "cnn_tiny": cnn_tiny,
    "keras_example_cnn": keras_example_cnn,
}
