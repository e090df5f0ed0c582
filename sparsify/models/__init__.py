"""The model zoo: importing this package registers every model in `MODELS`.

A new model is one module here (a builder decorated with `@MODELS.register`), one import below
and one `conf/model/<name>.yaml`; `build_model` and the tests pick it up from the registry.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from sparsify.config import ModelConfig
from sparsify.errors import UserError
from sparsify.models import cifar_resnet, convnet, lenet, torchvision_resnet, vgg  # noqa: F401
from sparsify.models.registry import MODELS, head_name, input_size, replace_head

__all__ = ["MODELS", "build_model", "builder_kwargs", "head_name", "input_size", "replace_head"]

# Every builder takes these from the dataset; a config may not set them.
_SHAPE_ARGS = ("num_classes", "in_channels", "image_size")


def builder_kwargs(name: str) -> list[str]:
    """The keyword arguments model `name` accepts in `model.kwargs` (sorted; may be empty).

    Builders declare their options as explicit keyword parameters (no `**kwargs`), so the
    signature is the complete list.
    """
    parameters = inspect.signature(MODELS.get(name)).parameters
    return sorted(p for p in parameters if p not in _SHAPE_ARGS)


def build_model(cfg: ModelConfig, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """Build the registered model `cfg.name` for images of shape (in_channels, image_size,
    image_size) and `num_classes` outputs, passing `cfg.kwargs` to its builder.

    Raises UserError for an unknown model name, a keyword argument the builder does not take (the
    message names the ones it does), or an impossible image (side < 1). Every registered
    architecture handles any side ≥ 1: pools are skipped once a map is 1×1.
    """
    builder = MODELS.get(cfg.name)
    kwargs: dict[str, Any] = dict(cfg.kwargs or {})
    valid = builder_kwargs(cfg.name)
    unknown = sorted(str(key) for key in kwargs if key not in valid)
    if unknown:
        raise UserError(
            f"model {cfg.name!r} does not take model.kwargs {', '.join(unknown)}; "
            f"valid: {', '.join(valid) if valid else 'none'}"
        )
    if image_size < 1 or in_channels < 1 or num_classes < 1:
        raise UserError(
            f"model {cfg.name!r} needs images of side >= 1 with >= 1 channel and >= 1 class; "
            f"got side {image_size}, {in_channels} channels, {num_classes} classes"
        )
    return builder(
        num_classes=num_classes, in_channels=in_channels, image_size=image_size, **kwargs
    )
