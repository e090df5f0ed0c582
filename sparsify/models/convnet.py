"""Conv-2, Conv-4 and Conv-6: the small VGG-like CIFAR networks of the lottery-ticket paper."""

from __future__ import annotations

import torch
from torch import nn

from sparsify.models.init import kaiming_normal_init
from sparsify.models.registry import MODELS

# Output channels of each pair of 3×3 convolutions; a 2×2 max-pool follows every pair.
_PAIRS = (64, 128, 256)


class ConvNet(nn.Module):
    """`num_pairs` pairs of (3×3 conv + ReLU) each followed by a 2×2 max-pool, then FC 256, 256,
    num_classes. Layers live in `features` (convs) and `classifier` (linears).

    A max-pool is left out when the feature map is already 1×1 (side < 2), so any image size works;
    the first linear layer takes last_channels · side² features, side being the map's final side.
    """

    def __init__(self, num_pairs: int, num_classes: int, in_channels: int, image_size: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels, side = in_channels, image_size
        for out_channels in _PAIRS[:num_pairs]:
            for _ in range(2):
                # padding 1 keeps the side, so only the pools shrink the map
                layers += [nn.Conv2d(channels, out_channels, 3, padding=1), nn.ReLU(inplace=True)]
                channels = out_channels
            if side >= 2:
                layers.append(nn.MaxPool2d(2))
                side //= 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(channels * side * side, 256),
            nn.ReLU(inplace=True),
            nn.Linear(256, 256),
            nn.ReLU(inplace=True),
            nn.Linear(256, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def _convnet(num_pairs: int, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    model = ConvNet(num_pairs, num_classes, in_channels, image_size)
    kaiming_normal_init(model)
    return model


@MODELS.register("conv2", head="classifier.4", input_size=32)
def conv2(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """Conv-2 (Frankle & Carbin 2019, Figure 2; Zhou et al. 2019): 3×3 convs 64, 64, a 2×2
    max-pool, then Linear 256 → 256 → num_classes; ReLU throughout, no batch norm.

    Input (B, in_channels, image_size, image_size), output (B, num_classes). Built for this image
    size: the first linear layer takes 64 · (image_size // 2)² features (no pool on a 1×1 image).
    On CIFAR-10 (3×32×32, 10 classes): 4,301,642 parameters. Kaiming normal weights, zero biases
    (the paper used Glorot normal).
    """
    return _convnet(1, num_classes, in_channels, image_size)


@MODELS.register("conv4", head="classifier.4", input_size=32)
def conv4(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """Conv-4 (Frankle & Carbin 2019, Figure 2; Zhou et al. 2019): 3×3 convs 64, 64, pool,
    128, 128, pool, then Linear 256 → 256 → num_classes; ReLU throughout, no batch norm.

    Input (B, in_channels, image_size, image_size), output (B, num_classes). Built for this image
    size; a pool is skipped once the map is 1×1 (8×8 digits: 8 → 4 → 2). On CIFAR-10 (3×32×32,
    10 classes): 2,425,930 parameters. Kaiming normal weights, zero biases (the paper used Glorot
    normal).
    """
    return _convnet(2, num_classes, in_channels, image_size)


@MODELS.register("conv6", head="classifier.4", input_size=32)
def conv6(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """Conv-6 (Frankle & Carbin 2019, Figure 2; Zhou et al. 2019): 3×3 convs 64, 64, pool,
    128, 128, pool, 256, 256, pool, then Linear 256 → 256 → num_classes; ReLU, no batch norm.

    Input (B, in_channels, image_size, image_size), output (B, num_classes). Built for this image
    size; a pool is skipped once the map is 1×1 (8×8 digits: 8 → 4 → 2 → 1, none skipped; 4×4:
    the third pool is skipped). On CIFAR-10 (3×32×32, 10 classes): 2,262,602 parameters, which is
    what the paper's layer list gives (its summary table says 1.7 M). Kaiming normal
    weights, zero biases (the paper used Glorot normal).
    """
    return _convnet(3, num_classes, in_channels, image_size)
