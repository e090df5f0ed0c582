"""CIFAR VGG-11 and VGG-16 with batch norm, as trained in the lottery-ticket literature."""

from __future__ import annotations

import torch
from torch import nn

from sparsify.models.init import kaiming_normal_init
from sparsify.models.registry import MODELS

# Simonyan & Zisserman 2015, configurations A (VGG-11) and D (VGG-16): conv output channels, "M"
# for a 2×2 max-pool. The fifth pool of the ImageNet configs is replaced by global average
# pooling, as in OpenLTH's cifar_vgg (on 32×32 inputs the map is 2×2 after the fourth pool).
_PLANS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
}


class CifarVGG(nn.Module):
    """`features`: (3×3 conv + BatchNorm + ReLU) stacks and max-pools following `plan`; then
    global average pooling and one linear layer `fc` from the last conv's channels to the classes.

    A max-pool is left out when the map is already 1×1 (side < 2), so any image size works.
    """

    def __init__(
        self, plan: list[int | str], num_classes: int, in_channels: int, image_size: int
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels, side = in_channels, image_size
        for entry in plan:
            if entry == "M":
                if side >= 2:
                    layers.append(nn.MaxPool2d(2))
                    side //= 2
                continue
            assert isinstance(entry, int)
            # The conv bias is redundant before BatchNorm; it is kept to match OpenLTH's layers
            # and parameter counts.
            layers += [
                nn.Conv2d(channels, entry, 3, padding=1),
                nn.BatchNorm2d(entry),
                nn.ReLU(inplace=True),
            ]
            channels = entry
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def _vgg(
    name: str,
    num_classes: int,
    in_channels: int,
    image_size: int,
    bias_init: str,
    batchnorm_init: str,
) -> nn.Module:
    model = CifarVGG(_PLANS[name], num_classes, in_channels, image_size)
    kaiming_normal_init(model, bias_init, batchnorm_init)
    return model


@MODELS.register("vgg11", head="fc", input_size=32)
def vgg11(
    num_classes: int,
    in_channels: int,
    image_size: int,
    bias_init: str = "zeros",
    batchnorm_init: str = "ones",
) -> nn.Module:
    """CIFAR VGG-11 (Simonyan & Zisserman 2015 configuration A, CIFAR form of OpenLTH's cifar_vgg):
    3×3 convs 64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, each with BatchNorm and ReLU;
    global average pooling; Linear 512 → num_classes.

    Input (B, in_channels, image_size, image_size), output (B, num_classes); any image size (a
    max-pool is skipped once the map is 1×1). CIFAR-10 (3×32×32, 10 classes): 9,231,114
    parameters. Kaiming normal conv/linear weights, zero biases, BatchNorm scale 1 and shift 0
    (OpenLTH: `bias_init='pytorch'`, `batchnorm_init='uniform'`).
    """
    return _vgg("vgg11", num_classes, in_channels, image_size, bias_init, batchnorm_init)


@MODELS.register("vgg16", head="fc", input_size=32)
def vgg16(
    num_classes: int,
    in_channels: int,
    image_size: int,
    bias_init: str = "zeros",
    batchnorm_init: str = "ones",
) -> nn.Module:
    """CIFAR VGG-16 (Simonyan & Zisserman 2015 configuration D, CIFAR form of OpenLTH's cifar_vgg):
    3×3 convs 64, 64, M, 128, 128, M, 256 ×3, M, 512 ×3, M, 512 ×3, each with BatchNorm and ReLU;
    global average pooling; Linear 512 → num_classes.

    Input (B, in_channels, image_size, image_size), output (B, num_classes); any image size (a
    max-pool is skipped once the map is 1×1, e.g. the fourth one for 8×8 digits). CIFAR-10
    (3×32×32, 10 classes): 14,728,266 parameters. Kaiming normal conv/linear weights, zero biases,
    BatchNorm scale 1 and shift 0 (OpenLTH: `bias_init='pytorch'`, `batchnorm_init='uniform'`).
    """
    return _vgg("vgg16", num_classes, in_channels, image_size, bias_init, batchnorm_init)
