"""tf.data input pipelines over tensorflow-datasets, shared by every recipe."""

from zoo.data.tfds_input import (DatasetNotAvailableError, dataset_info,
                                 make_classification_dataset, normalize_images,
                                 num_examples, prepare_builder, split_arrays)
