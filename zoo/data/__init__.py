"""tf.data input pipelines over tensorflow-datasets, and image decoding shared with exports.

Importing this package registers the zoo's own TFDS builders (`mnist_detection`).
"""

from zoo.data.images import decode_image_bytes, match_dataset_polarity
from zoo.data.tfds_input import (DatasetInfo, DatasetNotAvailableError, EpochRange,
                                 builder_for,
                                 concatenate_epochs,
                                 dataset_info, epoch_seed, make_classification_dataset,
                                 make_training_dataset,
                                 normalize_images, num_examples, prepare_builder,
                                 random_flip_and_color, random_resized_crop,
                                 random_translate,
                                 sample_training_images,
                                 split_arrays)
from zoo.data import mnist_detection  # noqa: F401  (registers the TFDS builder)
