"""The model zoo: every registered model is built, run and round-tripped; parameter counts pin
each architecture against its published form."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from omegaconf import OmegaConf
from torch import nn

from sparsify.config import ModelConfig
from sparsify.errors import UserError
from sparsify.models import MODELS, build_model, builder_kwargs

CONF_MODEL_DIR = Path(__file__).resolve().parents[1] / "conf" / "model"

ZOO = {
    "lenet300_100", "conv2", "conv4", "conv6", "vgg11", "vgg16",
    "resnet20", "resnet32", "resnet56", "resnet18", "resnet50",
}  # fmt: skip

# (in_channels, image_size): 8×8 grey digits and 32×32 colour CIFAR images
SHAPES = [(1, 8), (3, 32)]


def build(
    name: str, num_classes: int = 10, in_channels: int = 3, image_size: int = 32, **kwargs
) -> nn.Module:
    return build_model(ModelConfig(name=name, kwargs=kwargs), num_classes, in_channels, image_size)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registry_holds_exactly_the_zoo():
    assert set(MODELS.names()) == ZOO


def test_every_registered_model_has_a_config_file_and_every_config_file_a_model():
    files = {path.stem for path in CONF_MODEL_DIR.glob("*.yaml")}
    assert files == set(MODELS.names())
    for name in files:
        assert OmegaConf.to_container(OmegaConf.load(CONF_MODEL_DIR / f"{name}.yaml")) == {
            "name": name
        }


@pytest.mark.parametrize("in_channels, image_size", SHAPES)
@pytest.mark.parametrize("name", MODELS.names())
def test_forward_gives_logits_and_backward_reaches_every_conv_and_linear_weight(
    name, in_channels, image_size
):
    torch.manual_seed(0)
    # Zero-initialised residual branches pass no gradient to their last conv at the first step,
    # by design (see the next test); switch it off to check that every weight is reachable.
    kwargs = {"zero_init_residual": False} if "zero_init_residual" in builder_kwargs(name) else {}
    model = build(name, num_classes=7, in_channels=in_channels, image_size=image_size, **kwargs)
    x = torch.randn(2, in_channels, image_size, image_size)
    logits = model(x)
    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()
    logits.square().mean().backward()
    for module_name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            grad = module.weight.grad
            assert grad is not None, module_name
            assert grad.abs().sum() > 0, module_name


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_torchvision_resnets_start_with_zero_initialised_residual_branches(name):
    model = build(name)
    last_bns = [
        m.bn3 if hasattr(m, "bn3") else m.bn2
        for m in model.modules()
        if isinstance(
            m, (torchvision.models.resnet.BasicBlock, torchvision.models.resnet.Bottleneck)
        )
    ]
    assert last_bns and all(torch.all(bn.weight == 0) for bn in last_bns)
    off = build(name, zero_init_residual=False)
    assert all(torch.all(m.weight == 1) for m in off.modules() if isinstance(m, nn.BatchNorm2d))
    with pytest.raises(UserError, match="zero_init_residual"):
        build(name, zero_init_residual="yes")


@pytest.mark.parametrize("name", MODELS.names())
def test_a_one_pixel_image_is_accepted_because_pools_stop_at_1x1(name):
    model = build(name, in_channels=1, image_size=1)
    assert model(torch.randn(2, 1, 1, 1)).shape == (2, 10)


@pytest.mark.parametrize("name", MODELS.names())
def test_state_dict_round_trips_into_a_fresh_model(name):
    torch.manual_seed(0)
    source = build(name, in_channels=1, image_size=8).eval()
    torch.manual_seed(1)
    target = build(name, in_channels=1, image_size=8).eval()
    target.load_state_dict(source.state_dict())
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(source(x), target(x))


# (name, num_classes, in_channels, image_size, parameters incl. biases and BatchNorm affine)
PARAMETER_COUNTS = [
    ("lenet300_100", 10, 1, 28, 266_610),  # 784·300+300 + 300·100+100 + 100·10+10
    ("conv2", 10, 3, 32, 4_301_642),  # Frankle & Carbin: 4.3 M
    ("conv4", 10, 3, 32, 2_425_930),  # Frankle & Carbin: 2.4 M
    ("conv6", 10, 3, 32, 2_262_602),  # from the layer list (the paper's table says 1.7 M)
    ("vgg11", 10, 3, 32, 9_231_114),
    ("vgg16", 10, 3, 32, 14_728_266),  # OpenLTH cifar_vgg_16: 14.7 M
    ("resnet20", 10, 3, 32, 272_474),  # He et al.: 0.27 M
    ("resnet32", 10, 3, 32, 466_906),  # He et al.: 0.46 M
    ("resnet56", 10, 3, 32, 855_770),  # He et al.: 0.85 M
    ("resnet18", 1000, 3, 224, 11_689_512),  # torchvision's documented count
    ("resnet18", 10, 3, 32, 11_173_962),  # the usual CIFAR ResNet-18
    ("resnet50", 1000, 3, 224, 25_557_032),  # torchvision's documented count
    ("resnet50", 10, 3, 32, 23_520_842),
]


@pytest.mark.parametrize("name, num_classes, in_channels, image_size, expected", PARAMETER_COUNTS)
def test_parameter_count_pins_the_architecture(
    name, num_classes, in_channels, image_size, expected
):
    model = build(name, num_classes=num_classes, in_channels=in_channels, image_size=image_size)
    assert count_parameters(model) == expected


def test_every_registered_model_has_a_pinned_parameter_count():
    assert {row[0] for row in PARAMETER_COUNTS} == set(MODELS.names())


def test_unknown_kwarg_is_refused_naming_the_valid_ones():
    with pytest.raises(UserError, match=r"depth.*valid: batchnorm_init, bias_init, width"):
        build("resnet20", depth=20)
    with pytest.raises(UserError, match=r"dropout.*valid: bias_init"):
        build("lenet300_100", dropout=0.5)
    with pytest.raises(UserError, match=r"dropout.*valid: none"):
        build("conv4", dropout=0.5)


def test_shape_arguments_cannot_be_set_through_kwargs():
    # they come from the dataset; letting the config override them would hide a mismatch
    cfg = ModelConfig(name="resnet20", kwargs={"num_classes": 100})
    with pytest.raises(UserError, match=r"num_classes.*valid: batchnorm_init, bias_init, width"):
        build_model(cfg, 10, 3, 32)


def test_kwargs_from_an_omegaconf_node_are_accepted():
    cfg = OmegaConf.structured(ModelConfig(name="resnet20", kwargs={"width": 8}))
    model = build_model(cfg, 10, 3, 32)
    assert model.conv.weight.shape == (8, 3, 3, 3)


def test_cifar_resnet_width_scales_all_three_stages():
    model = build("resnet20", width=32)
    assert model.conv.weight.shape[0] == 32
    assert model.fc.weight.shape == (10, 128)


@pytest.mark.parametrize("width", [0, -4, 2.5, True, "16"])
def test_cifar_resnet_rejects_a_width_that_is_not_a_positive_integer(width):
    with pytest.raises(UserError, match="width must be a positive integer"):
        build("resnet20", width=width)


def test_an_image_without_pixels_is_refused():
    with pytest.raises(UserError, match="side >= 1"):
        build("resnet20", image_size=0)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
@pytest.mark.parametrize("image_size", [8, 32, 63])
def test_torchvision_resnet_gets_the_cifar_stem_below_64_pixels(name, image_size):
    model = build(name, in_channels=1, image_size=image_size)
    assert model.conv1.kernel_size == (3, 3)
    assert model.conv1.stride == (1, 1)
    assert model.conv1.padding == (1, 1)
    assert model.conv1.in_channels == 1
    assert isinstance(model.maxpool, nn.Identity)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_torchvision_resnet_keeps_the_imagenet_stem_from_64_pixels(name):
    model = build(name, in_channels=1, image_size=64)
    assert model.conv1.kernel_size == (7, 7)
    assert model.conv1.stride == (2, 2)
    assert model.conv1.in_channels == 1
    assert isinstance(model.maxpool, nn.MaxPool2d)


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_torchvision_resnet_keeps_torchvision_parameter_names(name):
    reference = getattr(torchvision.models, name)(weights=None, num_classes=10)
    small = build(name, in_channels=1, image_size=32)
    assert list(small.state_dict()) == list(reference.state_dict())


def test_conv_n_skips_a_pool_once_the_map_is_1x1():
    # conv6 on 4×4: 4 → 2 → 1, the third pool would shrink 1×1 to 0×0
    model = build("conv6", in_channels=1, image_size=4)
    pools = [m for m in model.features if isinstance(m, nn.MaxPool2d)]
    assert len(pools) == 2
    assert model.classifier[0].in_features == 256


def test_vgg16_skips_its_fourth_pool_on_8x8_digits():
    model = build("vgg16", in_channels=1, image_size=8)
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.features) == 3


@pytest.mark.parametrize("name", ["lenet300_100", "conv4", "vgg11", "resnet20"])
def test_own_architectures_use_kaiming_normal_weights_and_zero_biases(name):
    torch.manual_seed(0)
    model = build(name)
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            fan_in = module.weight[0].numel()
            if module.weight.numel() >= 10_000:  # enough samples for a stable std
                expected = (2.0 / fan_in) ** 0.5
                assert module.weight.std().item() == pytest.approx(expected, rel=0.1)
            if module.bias is not None:
                assert torch.count_nonzero(module.bias) == 0


@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_declares_its_classifier_head_and_it_can_be_replaced(name):
    """timm's default_cfgs rule: the declared head exists, is the linear layer that produces the
    class scores, and can be swapped for a head of another number of classes."""
    from sparsify.models import head_name, input_size, replace_head

    side = input_size(name)
    assert isinstance(side, int) and side in (28, 32, 224)
    model = build(name, num_classes=7, in_channels=3, image_size=8).eval()
    head = model.get_submodule(head_name(name))
    assert isinstance(head, nn.Linear) and head.out_features == 7
    assert f"{head_name(name)}.weight" in model.state_dict()
    x = torch.randn(2, 3, 8, 8)
    features = {}
    head.register_forward_hook(lambda m, inp, out: features.update(x=inp[0], y=out))
    with torch.no_grad():
        logits = model(x)
    assert torch.equal(features["y"], logits)  # the head's output is the model's output
    new = replace_head(model, name, 3)
    assert model.get_submodule(head_name(name)) is new and new.in_features == head.in_features
    with torch.no_grad():
        assert model(x).shape == (2, 3)
