"""Weight initialisation shared by the zoo's own architectures (torchvision models keep theirs)."""

from __future__ import annotations

import torch
from torch import nn

from sparsify.checks import check_choice

# `zeros`: sparsify's default; `pytorch`: the bias each layer drew when it was built, PyTorch's
# U(±1/√fan_in), which OpenLTH keeps (its initialisers set only the weights)
BIAS_INITS = ("zeros", "pytorch")
# `ones`: scale 1; `uniform`: scale ~ U(0, 1), OpenLTH's batchnorm_init='uniform' (ResNets, VGGs)
BATCHNORM_INITS = ("ones", "uniform")


def check_init(bias_init: str, batchnorm_init: str) -> None:
    """UserError unless the two `model.kwargs` initialisation options are known values."""
    check_choice("model.kwargs.bias_init", bias_init, BIAS_INITS)
    check_choice("model.kwargs.batchnorm_init", batchnorm_init, BATCHNORM_INITS)


def kaiming_normal_init(
    model: nn.Module, bias_init: str = "zeros", batchnorm_init: str = "ones"
) -> None:
    """Kaiming-normal conv/linear weights; biases zero (or, `bias_init='pytorch'`, as PyTorch drew
    them); BatchNorm shift 0 and scale 1 (or, `batchnorm_init='uniform'`, U(0, 1)).

    Kaiming normal (fan-in, ReLU gain) is OpenLTH's default initialiser for its CIFAR ResNets,
    VGGs and LeNet; it keeps activation variance roughly constant through ReLU layers, which is
    what lets the deep plain stacks (VGG-16) train from scratch. Biases are zeroed by default so
    that the starting point depends only on the weights, the tensors that pruning acts on.
    Modules are visited in order and the scales drawn between the weights, as OpenLTH's
    `model.apply(init_fn)` does, so the random stream is used in the same order.
    """
    check_init(bias_init, batchnorm_init)
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None and bias_init == "zeros":
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            with torch.no_grad():
                if batchnorm_init == "uniform":
                    module.weight.copy_(torch.rand(module.weight.shape))
                else:
                    module.weight.fill_(1.0)
            nn.init.zeros_(module.bias)
