r"""Writes a photo-like COCO-format folder (Roboflow's layout) from the real MNIST digits.

  zoo-make-coco-digits --manual_dir=../shared/data/mnist \
      --output_dir=data/coco_digits
  zoo-train --model=retinanet_mobilenet --dataset=coco:data/coco_digits \
      --model_dir=runs/photos

RGB JPEGs of random sizes (160-320 px per side) with coloured digits on colour gradients,
`train/` from MNIST's training digits and `valid/` from its test digits; see
`zoo.data.mnist_detection.write_coco_photos`. Offline and deterministic (--seed).
"""

from zoo import cli  # First: quiets TensorFlow's start-up.

from absl import flags

from zoo.data import mnist_detection

flags.DEFINE_string("manual_dir", None, "Folder holding the four original MNIST files.")
flags.DEFINE_string("output_dir", None, "Folder to write (must not exist).")
flags.DEFINE_integer("train_images", 2000, "Images in train/.")
flags.DEFINE_integer("valid_images", 400, "Images in valid/.")
flags.DEFINE_integer("seed", 0, "Seed of the layouts, sizes and colours.")
flags.mark_flags_as_required(["manual_dir", "output_dir"])
FLAGS = flags.FLAGS


def main(argv):
  cli.no_arguments(argv)
  path = mnist_detection.write_coco_photos(
      FLAGS.manual_dir, FLAGS.output_dir, seed=FLAGS.seed,
      num_images={"train": FLAGS.train_images, "valid": FLAGS.valid_images})
  print(path)


def run() -> None:
  """The `zoo-make-coco-digits` command (and `zoo make-coco-digits`)."""
  cli.run(main)


if __name__ == "__main__":
  run()
