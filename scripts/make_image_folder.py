"""Writes a photo-like folder of labelled images (class per folder) from the real MNIST digits.

The same command as `zoo-make-image-folder` from an installed zoo: see zoo/commands/make_image_folder.py.
"""

from zoo.commands import make_image_folder

if __name__ == "__main__":
  make_image_folder.run()
