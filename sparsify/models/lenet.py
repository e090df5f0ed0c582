"""LeNet-300-100: the fully connected MNIST network of the lottery-ticket paper."""

from __future__ import annotations

import torch
from torch import nn

from sparsify.models.init import kaiming_normal_init
from sparsify.models.registry import MODELS


class LeNet300100(nn.Module):
    """Flatten → Linear 300 → ReLU → Linear 100 → ReLU → Linear num_classes.

    Layer names: `fc1`, `fc2`, `fc3` (the output layer, which OpenLTH leaves unpruned).
    """

    def __init__(self, num_classes: int, in_features: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = nn.Linear(100, num_classes)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(x, 1)
        x = self.relu(self.fc1(x))
        x = self.relu(self.fc2(x))
        return self.fc3(x)


@MODELS.register("lenet300_100", head="fc3", input_size=28)
def lenet300_100(
    num_classes: int, in_channels: int, image_size: int, bias_init: str = "zeros"
) -> nn.Module:
    """LeNet-300-100 (LeCun et al. 1998; Frankle & Carbin 2019, Figure 2).

    Input (B, in_channels, image_size, image_size) is flattened to in_channels·image_size² features;
    output (B, num_classes). On 28×28 MNIST with 10 classes it has 266,610 parameters.

    Initialisation: Kaiming normal weights (OpenLTH's default for this model; the lottery-ticket
    paper itself used Glorot normal) and zero biases, or with `bias_init='pytorch'` the biases
    PyTorch drew, U(±1/√fan_in), which OpenLTH keeps.
    """
    model = LeNet300100(num_classes, in_channels * image_size * image_size)
    kaiming_normal_init(model, bias_init=bias_init)
    return model
