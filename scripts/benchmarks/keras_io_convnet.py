"""The keras-io "Simple MNIST convnet" example (https://keras.io/examples/vision/mnist_convnet/)
as a standalone script, the way a user runs it: the short-run benchmark's comparator.

The same steps as the published example: MNIST as numpy arrays scaled to [0, 1], the
Sequential convnet (two 3x3 Conv2D+MaxPooling blocks, 32 and 64 filters, Dropout 0.5,
softmax), categorical cross-entropy, Adam, `fit(batch_size=128, epochs=15,
validation_split=0.1)`, then the test score. Two differences: the arrays are read from the
four MNIST files in a folder (`keras.datasets.mnist.load_data()` downloads, and this
machine is offline), and `fit` logs one line per epoch (`verbose=2`) so that the benchmark
can read `val_accuracy` from a pipe.

  python scripts/benchmarks/keras_io_convnet.py ../shared/data/mnist
"""

import gzip
import os
import sys

import keras
import numpy as np
from keras import layers


def _idx(path, offset):
  with gzip.open(path) as f:
    return np.frombuffer(f.read(), np.uint8, offset=offset)


def load_mnist(folder):
  """`(x_train, y_train), (x_test, y_test)` as `keras.datasets.mnist.load_data()` returns."""
  def part(images, labels):
    x = _idx(os.path.join(folder, images), 16).reshape(-1, 28, 28)
    return x, _idx(os.path.join(folder, labels), 8)
  return (part("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
          part("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"))


def main(folder):
  num_classes, input_shape = 10, (28, 28, 1)
  (x_train, y_train), (x_test, y_test) = load_mnist(folder)
  x_train = np.expand_dims(x_train.astype("float32") / 255, -1)
  x_test = np.expand_dims(x_test.astype("float32") / 255, -1)
  y_train = keras.utils.to_categorical(y_train, num_classes)
  y_test = keras.utils.to_categorical(y_test, num_classes)
  model = keras.Sequential([
      keras.Input(shape=input_shape),
      layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
      layers.MaxPooling2D(pool_size=(2, 2)),
      layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
      layers.MaxPooling2D(pool_size=(2, 2)),
      layers.Flatten(),
      layers.Dropout(0.5),
      layers.Dense(num_classes, activation="softmax"),
  ])
  model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
  model.fit(x_train, y_train, batch_size=128, epochs=15, validation_split=0.1, verbose=2)
  score = model.evaluate(x_test, y_test, verbose=0)
  print("Test loss:", score[0])
  print("Test accuracy:", score[1])


if __name__ == "__main__":
  main(sys.argv[1])
