"""CIFAR ResNets (He et al. 2016, Section 4.2): ResNet-20, -32 and -56."""

from __future__ import annotations

import torch
from torch import nn

from sparsify.errors import UserError
from sparsify.models.init import kaiming_normal_init
from sparsify.models.registry import MODELS


class BasicBlock(nn.Module):
    """Two 3×3 conv + BatchNorm layers with a residual connection; the first conv carries the
    stride. When the shape changes, the shortcut is a 1×1 conv + BatchNorm projection (He et al.'s
    option B, as in OpenLTH; the paper's CIFAR models used parameter-free zero padding, option A).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """Stem (3×3 conv to `width` channels + BatchNorm + ReLU), three stages of `blocks_per_stage`
    basic blocks with width, 2·width and 4·width channels (stages 2 and 3 halve the side), global
    average pooling and a linear layer `fc`.
    """

    def __init__(
        self, blocks_per_stage: int, width: int, num_classes: int, in_channels: int
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, width, 3, 1, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        blocks: list[nn.Module] = []
        channels = width
        for stage in range(3):
            out_channels = width * 2**stage
            for index in range(blocks_per_stage):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(BasicBlock(channels, out_channels, stride))
                channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn(self.conv(x)))
        x = self.blocks(x)
        return self.fc(torch.flatten(self.pool(x), 1))


def _cifar_resnet(
    depth: int,
    num_classes: int,
    in_channels: int,
    width: int,
    bias_init: str,
    batchnorm_init: str,
) -> nn.Module:
    assert (depth - 2) % 6 == 0, depth
    # bool is an int subclass; `width: true` in a YAML file is a mistake, not a width of 1
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise UserError(f"resnet{depth}: width must be a positive integer, got {width!r}")
    model = CifarResNet((depth - 2) // 6, width, num_classes, in_channels)
    kaiming_normal_init(model, bias_init, batchnorm_init)
    return model


@MODELS.register("resnet20", head="fc", input_size=32)
def resnet20(
    num_classes: int,
    in_channels: int,
    image_size: int,
    width: int = 16,
    bias_init: str = "zeros",
    batchnorm_init: str = "ones",
) -> nn.Module:
    """CIFAR ResNet-20 (He et al. 2016, Section 4.2; OpenLTH's cifar_resnet_20): 3 stages of 3
    basic blocks, 16/32/64 channels (`width` sets the first stage; the others are 2× and 4× it).

    Input (B, in_channels, image_size, image_size), any image size (the side halves twice,
    never below 1); output (B, num_classes). CIFAR-10 (3×32×32, 10 classes): 272,474 parameters.
    Kaiming normal conv/linear weights, zero `fc` bias, BatchNorm scale 1 and shift 0; OpenLTH's
    initialisation is `bias_init='pytorch'` (the fc bias PyTorch drew) and
    `batchnorm_init='uniform'` (scales U(0, 1)).
    """
    return _cifar_resnet(20, num_classes, in_channels, width, bias_init, batchnorm_init)


@MODELS.register("resnet32", head="fc", input_size=32)
def resnet32(
    num_classes: int,
    in_channels: int,
    image_size: int,
    width: int = 16,
    bias_init: str = "zeros",
    batchnorm_init: str = "ones",
) -> nn.Module:
    """CIFAR ResNet-32 (He et al. 2016, Section 4.2): 3 stages of 5 basic blocks, 16/32/64
    channels (`width` sets the first stage; the others are 2× and 4× it).

    Input (B, in_channels, image_size, image_size), any image size; output (B, num_classes).
    CIFAR-10 (3×32×32, 10 classes): 466,906 parameters. Initialised as resnet20.
    """
    return _cifar_resnet(32, num_classes, in_channels, width, bias_init, batchnorm_init)


@MODELS.register("resnet56", head="fc", input_size=32)
def resnet56(
    num_classes: int,
    in_channels: int,
    image_size: int,
    width: int = 16,
    bias_init: str = "zeros",
    batchnorm_init: str = "ones",
) -> nn.Module:
    """CIFAR ResNet-56 (He et al. 2016, Section 4.2; OpenLTH's cifar_resnet_56): 3 stages of 9
    basic blocks, 16/32/64 channels (`width` sets the first stage; the others are 2× and 4× it).

    Input (B, in_channels, image_size, image_size), any image size; output (B, num_classes).
    CIFAR-10 (3×32×32, 10 classes): 855,770 parameters. Initialised as resnet20.
    """
    return _cifar_resnet(56, num_classes, in_channels, width, bias_init, batchnorm_init)
