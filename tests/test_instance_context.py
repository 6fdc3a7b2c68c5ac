"""Fix (d): the context network's samples, its use in the labelling, and its place in the weights file."""
import numpy as np
import pytest
import torch

from vertebra.instance.context import ContextConfig, ContextModel, ContextSampler, context_box, context_loss
from vertebra.instance.ordering import OrderingConfig
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


class BiasedContext(ContextModel):
    """Reads every vertebra's level as 0.8 · true − 1 (squeezed towards the middle and too high up)."""

    def __init__(self, scale=1.0, offset=0.0):
        super().__init__(ContextNet(ContextNetConfig(features=2), CONFIG.box_zyx), CONFIG, scale, offset)

    def read(self, scan, centres_mm):
        index = np.rint(scan.volume(scan.image_hu).world_to_index(np.asarray(centres_mm, float).reshape(-1, 3)))
        levels = scan.target_levels()
        true = np.array([levels.get(int(scan.labels[tuple(i.astype(int))]), 0) for i in index], float)
        return (0.8 * true - 1.0) * self.level_scale + self.level_offset, np.ones(len(true))


def test_calibration_undoes_a_linear_bias_and_travels_in_the_bundle(toy, tmp_path):
    from vertebra.instance.context import calibrate_levels, level_errors
    scan = toy[2]
    biased = BiasedContext()
    assert level_errors(biased, [scan]).mean() > 3
    fitted = calibrate_levels(biased, [scan])
    assert fitted.level_scale == pytest.approx(1.25) and fitted.level_offset == pytest.approx(1.25)
    assert level_errors(BiasedContext(fitted.level_scale, fitted.level_offset), [scan]).max() < 1e-9
    bundle = InstanceBundle({"down": InstanceUNet(InstanceUNetConfig(features=4))}, 4.0,
                            TraversalConfig(patch_voxels=32), {"run_id": "t"},
                            ContextModel(fitted.net, CONFIG, fitted.level_scale, fitted.level_offset),
                            OrderingConfig("monotone", sigma=1.0))
    again = load_bundle(bundle.save(tmp_path / "w.pt"))
    assert (again.context.level_scale, again.context.level_offset) == (fitted.level_scale, fitted.level_offset)
    assert again.ordering == OrderingConfig("monotone", sigma=1.0)
    # bundles written before calibration and fix (e): no calibration, Eq. 2
    state = torch.load(tmp_path / "w.pt", weights_only=False)
    del state["ordering"], state["context"]["calibration"]
    torch.save(state, tmp_path / "old.pt")
    old = load_bundle(tmp_path / "old.pt")
    assert (old.context.level_scale, old.context.level_offset) == (1.0, 0.0) and old.ordering == OrderingConfig()


def test_monotone_rule_merges_a_vertebra_cut_in_two(toy):
    """A walk that cut L2 in two: Eq. 2 gives the halves two labels and shifts L1 onto L2; fix (e)
    gives them one label, one entry, and L1 stays on L1."""
    from vertebra.image import Geometry
    from vertebra.instance.pipeline import _relabel
    from vertebra.instance.scan import PreparedScan

    instances = np.zeros((40, 8, 8), np.int16)
    reads = [19.0, 20.0, 21.0, 21.0, 22.0, 23.0, 24.0]          # T12 L1 L2 (two halves) L3 L4 L5
    z = 40
    for i, height in enumerate([6, 6, 3, 3, 6, 6, 6]):
        z -= height
        instances[z:z + height, 2:6, 2:6] = i + 1
    scan = PreparedScan(np.zeros(instances.shape, np.int16), Geometry(spacing_mm=(2.0,) * 3))
    evidence = [{"levels": [r], "completeness": [None]} for r in reads]
    eq2 = _relabel(instances, evidence, scan)[1]
    assert [e["label"] for e in eq2].index(20) == 2 and len(eq2) == 7
    labels, entries, ordering = _relabel(instances, evidence, scan, OrderingConfig("monotone", sigma=1.0))
    assert [e["label"] for e in entries] == [19, 20, 21, 22, 23, 24]
    l2 = entries[2]
    assert l2["pieces"] == 2 and l2["volume_cm3"] == round(6 * 16 * 8 / 1000, 2)
    assert (labels[(instances == 3) | (instances == 4)] == 21).all()
    assert l2["z_range_mm"][1] - l2["z_range_mm"][0] == pytest.approx(12.0)


def test_fix_e_needs_the_context_levels(tmp_path):
    from vertebra.instance.run import run_row
    with pytest.raises(ValueError, match="fix_context_levels"):
        run_row({"fix_monotone_ordering": True, "scale": "smoke"}, tmp_path, train_cases=[], test_cases=[])


def test_label_spine_asks_the_context_network_where_to_start(toy):
    """With a context network and the bone-peak first box, the walk's candidates are judged (one read,
    in world mm, near the top of the scan) before the pieces are."""
    traversal = TraversalConfig(patch_voxels=32, scan_stride_voxels=16, min_bone_cm3=0.5, first_box="bone_peaks",
                                first_box_slab_mm=80.0)
    context = FixedContext(top=10.0, floor_mm=-1e9)
    reads = []
    read = context.read
    context.read = lambda scan, centres: (reads.append(np.asarray(centres).reshape(-1, 3)), read(scan, centres))[1]
    result = label_spine(InstanceBundle({"down": Oracle("down")}, 4.0, traversal, context=context), toy[0])
    candidates, pieces = reads
    assert 1 <= len(candidates) <= traversal.first_box_candidates and len(pieces) == len(result.levels)
    assert candidates[:, 2].min() > pieces[:, 2].mean()           # the first box lies at the top (world z)


def test_spine_judge_calls_a_point_a_vertebra_at_the_context_networks_own_threshold():
    """The first box and the labelling share one threshold (`ContextConfig.min_vertebra_probability`):
    the judge gives 0 to a point the context network does not call a vertebra."""
    from vertebra.image import Geometry
    from vertebra.instance.pipeline import context_judge
    from vertebra.instance.scan import PreparedScan

    class Fixed(ContextModel):
        def read(self, scan, centres_mm):
            return np.zeros(len(centres_mm)), np.array([0.2, 0.49, 0.5, 0.9])[:len(centres_mm)]

    scan = PreparedScan(np.zeros((8, 8, 8), np.int16), Geometry(spacing_mm=(4.0,) * 3))
    context = Fixed(ContextNet(ContextNetConfig(features=2), CONFIG.box_zyx), CONFIG)
    judge = context_judge(context, scan, scan)
    assert CONFIG.min_vertebra_probability == 0.5
    assert judge(np.zeros((4, 3))).tolist() == [0.0, 0.0, 0.5, 0.9]
