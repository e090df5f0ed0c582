"""torchvision's ImageNet ResNet-18 and ResNet-50, adapted to the dataset's channels and size."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn
from torchvision import models

from sparsify.errors import UserError
from sparsify.models.registry import MODELS

# Below this side the ImageNet stem (7×7 stride-2 conv, then a stride-2 max-pool) would shrink a
# 32×32 image to 8×8 before the first block and waste most of the network; CIFAR practice replaces
# it with a 3×3 stride-1 conv and no max-pool. 64 is the smallest side we treat as ImageNet-like
# (Tiny ImageNet, 64×64, keeps the ImageNet stem).
SMALL_IMAGE_SIZE = 64


def _adapt_stem(model: models.ResNet, in_channels: int, image_size: int) -> models.ResNet:
    """Replace `conv1` (and `maxpool`) in place, keeping torchvision's attribute names so that
    state_dict keys stay `conv1.weight`, `fc.weight`, ..."""
    small = image_size < SMALL_IMAGE_SIZE
    if in_channels == 3 and not small:
        return model
    out_channels = model.conv1.out_channels
    if small:
        model.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    else:
        model.conv1 = nn.Conv2d(in_channels, out_channels, 7, stride=2, padding=3, bias=False)
    # the same initialisation torchvision gives its own convolutions
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    return model


def _resnet(
    factory: Callable[..., models.ResNet],
    num_classes: int,
    in_channels: int,
    image_size: int,
    zero_init_residual: bool,
) -> nn.Module:
    # weights=None: random torchvision initialisation; pretrained weights are never downloaded.
    # zero_init_residual starts every residual branch at zero (last BN scale 0), so the deep
    # network begins as a shallow one (Goyal et al. 2017): without it ResNet-50 trained from
    # scratch at lr 0.05 diverged in its first epoch on the digits (loss 16, val loss 1.9e7).
    if not isinstance(zero_init_residual, bool):
        raise UserError(
            f"model.kwargs.zero_init_residual={zero_init_residual!r} must be true or false"
        )
    model = factory(weights=None, num_classes=num_classes, zero_init_residual=zero_init_residual)
    return _adapt_stem(model, in_channels, image_size)


@MODELS.register("resnet18", head="fc", input_size=224)
def resnet18(
    num_classes: int, in_channels: int, image_size: int, zero_init_residual: bool = True
) -> nn.Module:
    """torchvision's ResNet-18 (He et al. 2016, ImageNet form: basic blocks 2-2-2-2, 64-512
    channels) with torchvision's initialisation and parameter names.

    conv1 takes `in_channels`. Small images (image_size < 64) get the CIFAR stem: conv1 is a 3×3
    stride-1 conv with padding 1 and `maxpool` is an Identity; larger images keep the 7×7 stride-2
    conv and max-pool. `zero_init_residual` (default true) zeroes the last BatchNorm scale of
    each block. Input (B, in_channels, image_size, image_size), output (B, num_classes).
    11,689,512 parameters for 3×224×224 and 1000 classes; 11,173,962 for CIFAR-10.
    """
    return _resnet(models.resnet18, num_classes, in_channels, image_size, zero_init_residual)


@MODELS.register("resnet50", head="fc", input_size=224)
def resnet50(
    num_classes: int, in_channels: int, image_size: int, zero_init_residual: bool = True
) -> nn.Module:
    """torchvision's ResNet-50 (He et al. 2016, ImageNet form: bottleneck blocks 3-4-6-3, 256-2048
    output channels) with torchvision's initialisation and parameter names.

    conv1 takes `in_channels`. Small images (image_size < 64) get the CIFAR stem: conv1 is a 3×3
    stride-1 conv with padding 1 and `maxpool` is an Identity; larger images keep the 7×7 stride-2
    conv and max-pool. `zero_init_residual` (default true) zeroes the last BatchNorm scale of
    each block. Input (B, in_channels, image_size, image_size), output (B, num_classes).
    25,557,032 parameters for 3×224×224 and 1000 classes; 23,520,842 for CIFAR-10.
    """
    return _resnet(models.resnet50, num_classes, in_channels, image_size, zero_init_residual)
