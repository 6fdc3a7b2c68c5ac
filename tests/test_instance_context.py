"""Fix (d): the context network's samples, its use in the labelling, and its place in the weights file."""
import numpy as np
import pytest
import torch

from vertebra.instance.context import ContextConfig, ContextModel, ContextSampler, context_box, context_loss
from vertebra.instance.pipeline import label_spine
from vertebra.instance.scan import prepare_scan
from vertebra.instance.toy import toy_spine
from vertebra.instance.traversal import TraversalConfig
from vertebra.instance.weights import InstanceBundle, load_bundle
from vertebra.models.context_net import ContextNet, ContextNetConfig
from vertebra.models.instance_unet import InstanceUNet, InstanceUNetConfig

from test_instance import Oracle

#: 8 mm voxels: a 256 x 128 x 128 mm box is 32 x 16 x 16
CONFIG = ContextConfig(spacing_mm=8.0)


@pytest.fixture(scope="module")
def toy():
    image, labels = toy_spine(np.random.default_rng(0), first_label=17, count=6)
    return image, labels, prepare_scan(image, labels, spacing_mm=8.0)


def test_box_edges_must_split_into_16():
    assert CONFIG.box_zyx == (32, 16, 16)
    with pytest.raises(ValueError, match="multiple of 16"):
        ContextConfig(spacing_mm=3.0)


def test_box_is_padded_with_the_window_floor_outside_the_scan(toy):
    scan = toy[2]
    box = context_box(scan, (0, 0, 0), CONFIG.box_zyx)
    assert box.shape == (1, 32, 16, 16) and box.dtype == np.float32
    assert box[0, 0, 0, 0] == 0.0                    # outside: −100 HU → 0
    assert 0.0 <= box.min() and box.max() <= 1.0


def test_samples_are_a_function_of_the_step_and_read_the_target_at_the_centre(toy):
    scan = toy[2]
    sampler = ContextSampler([scan], CONFIG, batch_size=16, seed=3)
    a, b, c = sampler(5), sampler(5), sampler(6)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["image"], c["image"])
    assert a["image"].shape == (16, 1, 32, 16, 16)
    on = a["vertebra"] > 0.5
    assert torch.all((a["level"] > 0) == on)             # a level exactly where the centre is on a vertebra
    assert set(a["level"][on].tolist()) <= set(range(17, 23))
    many = torch.cat([sampler(s)["vertebra"] for s in range(20)])
    assert 0.5 < float(many.mean()) < 0.95               # both kinds occur (25 % drawn off the vertebrae)


def test_loss_counts_the_level_only_on_vertebrae():
    out = {"level": torch.tensor([20.0, 5.0]), "vertebra": torch.tensor([10.0, -10.0])}
    batch = {"level": torch.tensor([21.0, 0.0]), "vertebra": torch.tensor([1.0, 0.0])}
    loss, terms = context_loss(out, batch, ContextConfig())
    assert terms["level_abs_err"] == pytest.approx(1.0)
    assert float(loss) == pytest.approx(1.0 + terms["vertebra_bce"], rel=1e-5)


class FixedContext(ContextModel):
    """Answers level = ``top`` − z / 32 mm (one level per 32 mm, the toy's pitch) and "vertebra"
    everywhere except below ``floor_mm``."""

    def __init__(self, top, floor_mm):
        super().__init__(ContextNet(ContextNetConfig(features=2), CONFIG.box_zyx), CONFIG)
        self.top, self.floor_mm = top, floor_mm

    def level(self, z_mm):
        return self.top - np.asarray(z_mm) / 32.0

    def read(self, scan, centres_mm):
        centres_mm = np.asarray(centres_mm, float).reshape(-1, 3)
        self.seen = centres_mm
        return self.level(centres_mm[:, 2]), (centres_mm[:, 2] > self.floor_mm).astype(float)


def test_context_levels_replace_the_head_and_pieces_off_the_spine_leave(toy):
    image = toy[0]
    traversal = TraversalConfig(patch_voxels=32, scan_stride_voxels=16, min_bone_cm3=0.5)
    plain = label_spine(InstanceBundle({"down": Oracle("down")}, 4.0, traversal), image)
    zs = sorted(v["centroid_mm"][2] for v in plain.levels)
    floor = (zs[0] + zs[1]) / 2                             # the lowest piece is "not a vertebra"
    context = FixedContext(top=12.3 + zs[-1] / 32.0, floor_mm=floor)  # the top piece reads 12.3
    result = label_spine(InstanceBundle({"down": Oracle("down")}, 4.0, traversal, context=context), image)
    assert len(context.seen) == 6 and len(result.levels) == 5
    # the kept pieces are 32 mm apart, so their context levels are nearly consecutive from 12.3, and
    # Eq. 2 follows them (the instance head said 20 for every piece: labels 18..22 in the plain run)
    got = [v["level_predicted"] for v in result.levels]
    assert got == pytest.approx([float(context.level(v["centroid_mm"][2])) for v in result.levels], abs=1e-3)
    assert list(result.ordering.levels) == [int(round(g)) for g in got] == [12, 13, 14, 15, 16]
    assert all(v["level_head"] == 20.0 and v["vertebra_probability"] == 1.0 for v in result.levels)
    lowest = min(plain.levels, key=lambda v: v["centroid_mm"][2])
    assert lowest["label"] > 0 and np.count_nonzero(result.mask.array) < np.count_nonzero(plain.mask.array)


def test_bundle_keeps_the_context_network(tmp_path):
    torch.manual_seed(0)
    net = ContextNet(ContextNetConfig(features=2), CONFIG.box_zyx)
    bundle = InstanceBundle({"down": InstanceUNet(InstanceUNetConfig(features=4))}, 4.0,
                            TraversalConfig(patch_voxels=32), {"run_id": "t"}, ContextModel(net, CONFIG))
    again = load_bundle(bundle.save(tmp_path / "w.pt"))
    assert again.context is not None and again.context.config == CONFIG
    x = torch.rand(2, 1, *CONFIG.box_zyx)
    with torch.no_grad():
        assert torch.allclose(net.eval()(x)["level"], again.context.net(x)["level"], atol=5e-2)
    without = load_bundle(InstanceBundle({"down": InstanceUNet(InstanceUNetConfig(features=4))}, 4.0,
                                         TraversalConfig(patch_voxels=32)).save(tmp_path / "plain.pt"))
    assert without.context is None
