"""The model registry. A builder takes the dataset's shape facts and returns an nn.Module:

@MODELS.register("resnet20")
def resnet20(num_classes: int, in_channels: int, image_size: int, **kwargs) -> nn.Module: ...
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from sparsify.registry import Registry

ModelBuilder = Callable[..., nn.Module]
MODELS: Registry[ModelBuilder] = Registry("model")
