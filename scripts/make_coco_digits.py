"""Writes a photo-like COCO-format folder (Roboflow's layout) from the real MNIST digits.

The same command as `zoo-make-coco-digits` from an installed zoo: see zoo/commands/make_coco_digits.py.
"""

from zoo.commands import make_coco_digits

if __name__ == "__main__":
  make_coco_digits.run()
