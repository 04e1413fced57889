"""Recipe `image_classifier`: MobileNetV2 (Keras Applications) for RGB photos in a folder.

Trains on a folder of labelled images the user names (`--dataset=folder:DIR`, one folder
per class, see `zoo.data.image_folder`), from scratch by default; ImageNet weights
(`--set=model_kwargs.weights=imagenet`) come only from Keras's cache, never downloaded.
Photos are cropped to a square at the centre and resized to 96x96 RGB when the folder is
prepared (and in the exported graphs); training mirrors half of them, shifts them by up to
12 pixels and jitters brightness and contrast by up to 20 %.

  python scripts/train.py --model=image_classifier --dataset=folder:path/to/photos \
      --model_dir=runs/photos

Run card (BENCHMARKS.md, "Your own images (folder)", measured, not claimed):
  command:  python scripts/benchmark.py --folder=/tmp/digit_photos \
                --manual_dir=../shared/data/mnist \
                --folder_set=image_classifier:task_kwargs.flip=False
            (with more --folder_recipes beside it; see BENCHMARKS.md)
            (the folder: scripts/make_image_folder.py, 5,000 train and 1,000 valid
            photo-like MNIST digits; flips off because digits are not mirror images)
  expected: 89.0 % valid accuracy from scratch after 20 epochs (seed 0); int8 TFLite 88.5 %.
  wall time / hardware: 416-437 s of training in two runs (20 epochs of ~21 s) on a 2-core
            x86_64 CPU with AVX-512, no GPU (2026-11-29).
  For pictures of single digits or characters, `mnist_cnn` with
  --set=folder_resize=mnist_digit did better on the same folder: 98.4 % in 10 s.
"""

from zoo.configs.base import TrainConfig


def get_config() -> TrainConfig:
  return TrainConfig(
      model="mobilenet_v2",
      # A folder the user names: without --dataset this fails at once saying so.
      dataset="folder:data/photos",
      train_split="train",
      eval_split="valid",
      folder_image_shape=(96, 96, 3),
      # Ultralytics' classify mode and ImageNet evaluation centre-crop; `pad` keeps the
      # whole picture, `stretch` distorts it.
      folder_resize="crop",
      batch_size=32,
      eval_batch_size=100,
      train_epochs=20,
      optimizer="adamw",
      learning_rate=2e-3,
      lr_schedule="cosine",
      warmup_epochs=1.0,
      weight_decay=0.01,
      augment=True,
      max_shift_pixels=12,
      shuffle_buffer_examples=10_000,
      # No XLA: on this CPU it gave the small convnets nothing (BENCHMARKS.md, XLA table).
      jit_compile=False,
      log_images=8,
      model_kwargs={"alpha": 0.35, "weights": None, "dropout": 0.2, "bn_momentum": 0.9},
      # Post-training int8 quantization costs MobileNetV2 more than the MNIST convnets'
      # 0.2-point bound: 0.5 points on the folder benchmark's 1,000 valid images.
      task_kwargs={"flip": True, "color_jitter": 0.2, "max_int8_accuracy_drop": 0.01},
  )
