"""Eq. 1: the soft FP/FN fractions, the λn schedule and the level term."""
import pytest
import torch

from vertebra.losses import InstanceLossConfig, instance_loss, lambda_n, soft_fp_fn_fractions


def test_lambda_schedule_endpoints_and_monotone():
    assert lambda_n(0, 100) == pytest.approx(0.05)
    assert lambda_n(100, 100) == pytest.approx(1.0)
    values = [lambda_n(n, 100) for n in range(0, 101, 5)]
    assert values == sorted(values)
    assert lambda_n(500, 100) == pytest.approx(1.0)             # stays at the end value after n_max
    assert lambda_n(37, 100) == lambda_n(37, 100)               # a pure function of the step


def test_fractions_on_tiny_masks():
    t = torch.zeros(2, 1, 2, 2, 2)
    t[0, 0, 0, 0, 0] = 1                                        # one target voxel in sample 0; sample 1 empty
    perfect = t.clone()
    fp, fn = soft_fp_fn_fractions(perfect, t)
    assert fp.tolist() == [0, 0] and fn.tolist() == [0, 0]
    fp, fn = soft_fp_fn_fractions(torch.ones_like(t), t)
    assert fp.tolist() == [1, 1] and fn.tolist() == [0, 0]      # all background wrongly on; nothing missed
    fp, fn = soft_fp_fn_fractions(torch.zeros_like(t), t)
    assert fp.tolist() == [0, 0] and fn.tolist() == [1, 0]      # an empty patch has nothing to miss


def test_empty_patch_still_has_a_gradient():
    logits = torch.zeros(1, 1, 4, 4, 4, requires_grad=True)
    out = {"segmentation": logits, "level": torch.tensor([3.0], requires_grad=True)}
    batch = {"target": torch.zeros(1, 1, 4, 4, 4), "level": torch.tensor([0.0])}
    loss, terms = instance_loss(out, batch, 0, InstanceLossConfig(n_max=10))
    loss.backward()
    assert logits.grad.abs().sum() > 0 and terms["fn_frac"] == 0


def test_level_term_weight_and_completeness():
    cfg = InstanceLossConfig(n_max=10, spacing_mm=2.0)
    assert cfg.level_weight == pytest.approx(1000 / 30_000)   # the same at every spacing
    t = torch.zeros(1, 1, 4, 4, 4)
    seg = torch.full_like(t, -50.0)                             # predicts nothing: fp = 0, fn = 0
    base = {"segmentation": seg, "level": torch.tensor([22.0])}
    batch = {"target": t, "level": torch.tensor([20.0]), "complete": torch.tensor([1.0])}
    loss, terms = instance_loss(base, batch, 0, cfg)
    assert loss.item() == pytest.approx(2 * cfg.level_weight, rel=1e-5)
    assert "completeness_bce" not in terms
    loss2, terms2 = instance_loss({**base, "completeness": torch.tensor([0.0])}, batch, 0, cfg)
    assert terms2["completeness_bce"] == pytest.approx(0.6931, abs=1e-3) and loss2 > loss


def test_bad_config_is_rejected():
    with pytest.raises(ValueError):
        InstanceLossConfig(lambda_start=0.0)


def test_voxel_counts_in_vertebra_volumes_weigh_fp_and_fn_voxels_alike_at_the_end():
    t = torch.zeros(1, 1, 8, 8, 8)
    t[..., :2, :2, :2] = 1                                       # 8 target voxels
    cfg = InstanceLossConfig(n_max=10, spacing_mm=2.0)
    v = cfg.vertebra_voxels
    assert v == pytest.approx(30_000 / 8)
    over = t.clone()
    over[..., 4:6, 4:6, 4:6] = 1                                 # 8 extra voxels: pure false positives
    under = t.clone()
    under[..., 0, :2, :2] = 0                                    # 4 target voxels missed
    fp, fn = soft_fp_fn_fractions(over, t, v)
    assert fp.item() == pytest.approx(8 / v) and fn.item() == 0
    fp, fn = soft_fp_fn_fractions(under, t, v)
    assert fp.item() == 0 and fn.item() == pytest.approx(4 / v)
    # at the last step (λn = 1) one wrong voxel costs the same either way; at step 0 a FP costs 0.05

    def loss(prob, step):
        out = {"segmentation": torch.logit(prob.clamp(1e-7, 1 - 1e-7)), "level": torch.tensor([0.0])}
        return instance_loss(out, {"target": t, "level": torch.tensor([0.0])}, step, cfg)[0].item()
    one_fp = t.clone(); one_fp[..., 7, 7, 7] = 1
    one_fn = t.clone(); one_fn[..., 0, 0, 0] = 0
    assert loss(one_fp, 10) == pytest.approx(loss(one_fn, 10), rel=1e-3)
    assert loss(one_fp, 0) == pytest.approx(0.05 * loss(one_fn, 0), rel=1e-3)


def test_background_reference_is_still_available():
    cfg = InstanceLossConfig(n_max=10, fp_reference="background")
    t = torch.zeros(1, 1, 2, 2, 2); t[..., 0, 0, 0] = 1
    out = {"segmentation": torch.full_like(t, 50.0), "level": torch.tensor([0.0])}
    _, terms = instance_loss(out, {"target": t, "level": torch.tensor([0.0])}, 0, cfg)
    assert terms["fp_frac"] == pytest.approx(1.0) and terms["fn_frac"] == pytest.approx(0.0)
    with pytest.raises(ValueError):
        InstanceLossConfig(fp_reference="patch")
