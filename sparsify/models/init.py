"""Weight initialisation shared by the zoo's own architectures (torchvision models keep theirs)."""

from __future__ import annotations

from torch import nn


def kaiming_normal_init(model: nn.Module) -> None:
    """Kaiming-normal conv/linear weights, zero biases, BatchNorm at scale 1 and shift 0.

    Kaiming normal (fan-in, ReLU gain) is OpenLTH's default initialiser for its CIFAR ResNets,
    VGGs and LeNet; it keeps activation variance roughly constant through ReLU layers, which is
    what lets the deep plain stacks (VGG-16) train from scratch. Biases are zeroed so that the
    starting point depends only on the weights, the tensors that pruning acts on.
    """
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
