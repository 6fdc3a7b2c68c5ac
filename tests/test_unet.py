"""Shapes and configuration of the direct U-Net and the FCNN baseline."""
from __future__ import annotations

import pytest
import torch

from vertebra.experiments import get_scale
from vertebra.models import FCNN, FCNNConfig, UNet3D, UNetConfig
from vertebra.models.unet import group_count


@pytest.mark.parametrize("num_classes", [1, 2, 3])
@pytest.mark.parametrize("shape", [(16, 16, 16), (32, 16, 48)])
def test_unet_output_shape(num_classes, shape):
    net = UNet3D(UNetConfig(num_classes=num_classes, features=4)).eval()
    out = net(torch.zeros(2, 1, *shape))
    assert out.shape == (2, num_classes + 1, *shape)


def test_paper_defaults():
    cfg = UNetConfig()
    assert (cfg.features, cfg.dropout, cfg.group_size) == (16, 0.3, 16)
    assert UNetConfig.for_scale(get_scale("quick"), 3).features == get_scale("quick").direct_features


@pytest.mark.parametrize("channels,groups", [(4, 1), (8, 1), (16, 1), (32, 2), (256, 16)])
def test_group_rule(channels, groups):
    assert group_count(channels) == groups


def test_every_block_has_groupnorm_dropout_leakyrelu():
    net = UNet3D(UNetConfig(features=4))
    kinds = {type(m).__name__ for m in net.modules()}
    assert {"GroupNorm", "Dropout3d", "LeakyReLU"} <= kinds
    assert all(m.p == 0.3 for m in net.modules() if isinstance(m, torch.nn.Dropout3d))


def test_bad_configs_rejected():
    with pytest.raises(ValueError):
        UNetConfig(num_classes=4)
    with pytest.raises(AssertionError):
        UNet3D(UNetConfig(features=4))(torch.zeros(1, 1, 20, 16, 16))


def test_dropout_is_the_only_randomness_and_follows_the_seed():
    net = UNet3D(UNetConfig(features=4))
    x = torch.randn(1, 1, 16, 16, 16)
    torch.manual_seed(1)
    a = net(x)
    torch.manual_seed(1)
    assert torch.equal(a, net(x))
    net.eval()
    assert torch.equal(net(x), net(x))


def test_fcnn_regresses_one_distance_per_subvolume():
    net = FCNN(FCNNConfig(features=4))
    assert net(torch.zeros(3, 1, 32, 48, 48)).shape == (3,)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d)]
    assert len(convs) == 6
