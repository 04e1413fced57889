r"""Writes a photo-like folder of labelled images (class per folder) from the real MNIST digits.

  zoo-make-image-folder --manual_dir=../shared/data/mnist \
      --output_dir=data/digit_photos
  zoo-train --model=image_classifier --dataset=folder:data/digit_photos \
      --model_dir=runs/photos --set=task_kwargs.flip=False

`train/<digit>/` from MNIST's training digits and `valid/<digit>/` from its test digits:
RGB JPEGs of 64-192 px pages with a digit of 40-160 px anywhere on it, coloured paper and
ink, a lighting gradient and noise (see `zoo.data.digit_photos.write_photo_folder`).
Offline and deterministic (--seed). Digits are not mirror-symmetric: train the photo
recipe on them without its left-right flips.
"""

from zoo import cli  # First: quiets TensorFlow's start-up.

from absl import flags

from zoo.data import digit_photos

flags.DEFINE_string("manual_dir", None, "Folder holding the four original MNIST files.")
flags.DEFINE_string("output_dir", None, "Folder to write (must not exist).")
flags.DEFINE_integer("train_images", 5000, "Images in train/.")
flags.DEFINE_integer("valid_images", 1000, "Images in valid/.")
flags.DEFINE_integer("seed", 0, "Seed of the pages, sizes and colours.")
flags.mark_flags_as_required(["manual_dir", "output_dir"])
FLAGS = flags.FLAGS


def main(argv):
  cli.no_arguments(argv)
  print(digit_photos.write_photo_folder(
      FLAGS.manual_dir, FLAGS.output_dir, seed=FLAGS.seed,
      num_images={"train": FLAGS.train_images, "valid": FLAGS.valid_images}))


def run() -> None:
  """The `zoo-make-image-folder` command (and `zoo make-image-folder`)."""
  cli.run(main)


if __name__ == "__main__":
  run()
