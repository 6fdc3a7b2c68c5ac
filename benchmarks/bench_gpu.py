"""Benchmark: the paper-scale networks on a CUDA device, in absolute seconds (skipped without one).

What a reader with a GPU waits on at the paper's sizes (§3.1, §3.2): one training step and one inference
of the direct U-Net (whole scan resampled to 192x128x128, 16 base features, batch 4, cross-entropy,
Adam) and of the instance U-Net (128³ patches of image + instance memory, batch 6, Eq. 1's loss,
Adam; inference: one patch, as a traversal pass). Steps are timed after warm-up, with
``torch.cuda.synchronize`` around each call; the median of a few is kept, with the peak GPU memory of
each. Absolute times only: there is no second library in the run to hold a ratio against, apart from
the same step in bf16 autocast (reported as a ratio without a goal).

    python -m benchmarks.run_all --only gpu
"""
from __future__ import annotations

import contextlib

import torch

from benchmarks import median, ratio, seconds_summary, time_interleaved


def _synchronised(fn):
    def wrapped():
        fn()
        torch.cuda.synchronize()
    return wrapped


def _direct_steps(scale, device, generator):
    from vertebra.models.unet import UNet3D, UNetConfig

    model = UNet3D(UNetConfig.for_scale(scale, num_classes=1)).to(device)
    x = torch.randn(scale.direct_batch, 1, *scale.direct_shape_zyx, generator=generator).to(device)
    y = torch.randint(0, 2, (scale.direct_batch, *scale.direct_shape_zyx), generator=generator).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)

    def train(autocast):
        model.train()
        optimiser.zero_grad(set_to_none=True)
        with autocast():
            logits = model(x)
        torch.nn.functional.cross_entropy(logits.float(), y).backward()
        optimiser.step()

    return train, _inference_step(model, x[:1])


def _inference_step(model, x):
    """One forward pass of `model` on `x` in eval and inference mode, under a given autocast."""
    def infer(autocast):
        model.eval()
        with torch.inference_mode(), autocast():
            model(x)
    return infer


def _instance_steps(scale, device, generator):
    from vertebra.losses import InstanceLossConfig, instance_loss
    from vertebra.models.instance_unet import InstanceUNet, InstanceUNetConfig

    model = InstanceUNet(InstanceUNetConfig.for_scale(scale)).to(device)
    edge = scale.instance_patch
    x = torch.rand(scale.instance_batch, 2, edge, edge, edge, generator=generator).to(device)
    batch = {"target": (torch.rand(scale.instance_batch, 1, edge, edge, edge, generator=generator) > 0.9)
             .float().to(device),
             "level": torch.randint(0, 25, (scale.instance_batch,), generator=generator).float().to(device)}
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_config = InstanceLossConfig(spacing_mm=scale.instance_spacing_mm)

    def train(autocast):
        model.train()
        optimiser.zero_grad(set_to_none=True)
        with autocast():
            out = model(x)
        out = {k: (v.float() if v is not None else None) for k, v in out.items()}
        instance_loss(out, batch, 0, loss_config)[0].backward()
        optimiser.step()

    return train, _inference_step(model, x[:1])


def _peak_mib(fn) -> float:
    torch.cuda.reset_peak_memory_stats()
    fn()
    return round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)


def run(quick: bool = False) -> dict:
    if not torch.cuda.is_available():
        return {"benchmark": "gpu", "skipped": "no CUDA device"}
    from vertebra.experiments import get_scale

    scale = get_scale("paper")
    device = torch.device("cuda")
    generator = torch.Generator().manual_seed(0)
    fp32 = contextlib.nullcontext

    def bf16():
        return torch.autocast("cuda", dtype=torch.bfloat16)

    candidates, peaks = {}, {}
    for name, make in (("direct", _direct_steps), ("instance", _instance_steps)):
        train, infer = make(scale, device, generator)
        for kind, step in (("train", train), ("infer", infer)):
            for precision, autocast in (("fp32", fp32), ("bf16", bf16)):
                fn = _synchronised(lambda step=step, autocast=autocast: step(autocast))
                candidates[f"{name}_{kind}_{precision}"] = fn
                peaks[f"{name}_{kind}_{precision}"] = _peak_mib(fn)
    seconds = time_interleaved(candidates, rounds=3 if quick else 10, warmup=2)
    t = {k: median(v) for k, v in seconds.items()}
    ratios = [ratio(f"{name}_{kind}_bf16_speedup", t[f"{name}_{kind}_fp32"] / t[f"{name}_{kind}_bf16"], None,
                    f"{name} {kind} seconds fp32 / bf16 autocast")
              for name in ("direct", "instance") for kind in ("train", "infer")]
    return {"benchmark": "gpu", "quick": quick, "device": torch.cuda.get_device_name(0), "ratios": ratios,
            "seconds_median": {k: round(v, 4) for k, v in t.items()}, "peak_gpu_mib": peaks,
            "seconds": seconds_summary(seconds),
            "sizes": {"direct_batch_zyx": [scale.direct_batch, *scale.direct_shape_zyx],
                      "direct_features": scale.direct_features,
                      "instance_batch_patch": [scale.instance_batch, scale.instance_patch],
                      "instance_features": scale.instance_features}}
