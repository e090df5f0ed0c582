"""The model registry. A builder takes the dataset's shape facts and returns an nn.Module, and
registers with its metadata: `head`, the module name of its classifier (an nn.Linear producing
the class scores: what linear probes and transfer replace, and what `prune.exclude` names to keep
the last layer dense), and `input_size`, the image side it was designed for:

@MODELS.register("resnet20", head="fc", input_size=32)
def resnet20(num_classes: int, in_channels: int, image_size: int, width: int = 16) -> nn.Module: ...
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from sparsify.registry import Registry

ModelBuilder = Callable[..., nn.Module]
MODELS: Registry[ModelBuilder] = Registry("model")


def head_name(name: str) -> str:
    """The module name of model `name`'s classifier head, e.g. "fc"."""
    return MODELS.meta(name)["head"]


def input_size(name: str) -> int:
    """The image side model `name` was designed for (28 for LeNet, 32 for CIFAR nets, 224 for
    ImageNet ones); any side >= 1 builds."""
    return MODELS.meta(name)["input_size"]


def replace_head(model: nn.Module, name: str, num_classes: int) -> nn.Linear:
    """Put a fresh nn.Linear with `num_classes` outputs in place of the head of `model` (built
    as model `name`), with the old head's inputs and the default initialisation; returns it."""
    path = head_name(name)
    parent_path, _, attr = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    old = getattr(parent, attr)
    assert isinstance(old, nn.Linear), f"{name}'s head {path} is {type(old).__name__}"
    new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    new = new.to(device=old.weight.device, dtype=old.weight.dtype)
    setattr(parent, attr, new)
    return new
