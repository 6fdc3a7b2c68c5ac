"""The shared training loop: exact resume, logs, checkpoints (tiny model, a few steps)."""
from __future__ import annotations

import pytest
import torch

from dataclasses import replace

from vertebra.train import TrainConfig, learning_rate_at, read_log_csv, step_seed, train


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv3d(1, 4, 3, padding=1)
        self.drop = torch.nn.Dropout3d(0.3)
        self.head = torch.nn.Conv3d(4, 1, 1)

    def forward(self, x):
        return self.head(self.drop(torch.relu(self.conv(x))))


def make_model():
    torch.manual_seed(0)
    return TinyNet()


def sample_batch(step: int) -> dict:
    g = torch.Generator().manual_seed(step_seed(7, step))
    x = torch.randn(2, 1, 6, 6, 6, generator=g)
    return {"image": x, "target": (x > 0.5).float()}


def loss_fn(model, batch, step):
    out = model(batch["image"])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(out, batch["target"])
    return bce, {"bce": bce.item(), "lambda_n": step / 10}


def validate(model):
    b = sample_batch(10_000)
    return {"dice_val": float(torch.sigmoid(model(b["image"])).mean())}


CONFIG = TrainConfig(iterations=7, batch_size=2, learning_rate=1e-2, seed=3, checkpoint_every=2,
                     validate_every=3)


@pytest.mark.parametrize("final_lr_fraction", [1.0, 0.05])
def test_stop_and_resume_is_bit_identical(tmp_path, final_lr_fraction):
    config = replace(CONFIG, final_lr_fraction=final_lr_fraction)
    whole = make_model()
    train(whole, sample_batch, loss_fn, config, tmp_path / "whole", validate=validate)

    parts = make_model()
    first = train(parts, sample_batch, loss_fn, config, tmp_path / "parts", validate=validate, stop_after=3)
    assert first.steps_done == 3
    resumed = make_model()  # a fresh process: weights come from the checkpoint only
    second = train(resumed, sample_batch, loss_fn, config, tmp_path / "parts", validate=validate)
    assert second.resumed_from_step == 3 and second.steps_done == 7
    for (name, a), (_, b) in zip(whole.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name
    logs_whole = read_log_csv(tmp_path / "whole" / "train_log.csv")
    logs_parts = read_log_csv(tmp_path / "parts" / "train_log.csv")
    assert [r["loss"] for r in logs_whole] == [r["loss"] for r in logs_parts]


def test_crash_resumes_from_last_checkpoint(tmp_path):
    whole = make_model()
    train(whole, sample_batch, loss_fn, CONFIG, tmp_path / "whole")

    def crashing(step):
        if step == 5:
            raise RuntimeError("disk full")
        return sample_batch(step)

    with pytest.raises(RuntimeError):
        train(make_model(), crashing, loss_fn, CONFIG, tmp_path / "crash")
    resumed = make_model()
    result = train(resumed, sample_batch, loss_fn, CONFIG, tmp_path / "crash")
    assert result.resumed_from_step == 4
    for a, b in zip(whole.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def test_log_has_terms_validation_and_timing(tmp_path):
    result = train(make_model(), sample_batch, loss_fn, CONFIG, tmp_path, validate=validate)
    rows = read_log_csv(tmp_path / "train_log.csv")
    assert [r["step"] for r in rows] == list(range(1, 8))
    assert {"loss", "bce", "lambda_n", "wait_s", "seconds"} <= set(rows[0])
    assert [r["step"] for r in rows if "dice_val" in r] == [3, 6, 7]
    assert "dice_val" in result.last_validation
    assert not list(tmp_path.glob("*.tmp"))


def test_finished_run_is_not_retrained(tmp_path):
    train(make_model(), sample_batch, loss_fn, CONFIG, tmp_path)
    again = train(make_model(), sample_batch, loss_fn, CONFIG, tmp_path)
    assert again.resumed_from_step == 7 and again.steps_done == 7


def test_learning_rate_falls_linearly_to_the_final_fraction():
    config = replace(CONFIG, iterations=11, final_lr_fraction=0.1)
    rates = [learning_rate_at(config, s) for s in range(11)]
    assert rates[0] == pytest.approx(1e-2) and rates[-1] == pytest.approx(1e-3)
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert learning_rate_at(CONFIG, 5) == CONFIG.learning_rate          # default: constant


def test_decay_changes_training_and_constant_matches_the_default(tmp_path):
    runs = {}
    for name, fraction in (("default", None), ("constant", 1.0), ("decay", 0.05)):
        model = make_model()
        config = CONFIG if fraction is None else replace(CONFIG, final_lr_fraction=fraction)
        train(model, sample_batch, loss_fn, config, tmp_path / name)
        runs[name] = model.state_dict()
    assert all(torch.equal(runs["default"][k], runs["constant"][k]) for k in runs["default"])
    assert not all(torch.equal(runs["default"][k], runs["decay"][k]) for k in runs["default"])


def test_config_rejects_nonsense():
    with pytest.raises(ValueError):
        TrainConfig(iterations=1, batch_size=1, final_lr_fraction=0.0)
    with pytest.raises(ValueError):
        TrainConfig(iterations=-1, batch_size=1)
