"""Benchmark: the direct U-Net's training step and inference against MONAI's BasicUNet with matched
features and input (goal: at least as fast), and our convolution throughput against the machine's
fp32 matrix-multiply rate (goal: at least half of it).

Both networks have five levels of (f, 2f, 4f, 8f, 16f) channels, two 3x3x3 convolutions a level, group
normalisation, dropout 0.3 and leaky ReLU, transposed-convolution upsampling and skip concatenation
(about 1.4 M parameters at f = 8). FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode`;
the reference rate is a 2048 x 2048 fp32 `torch.mm` timed in the same rounds. Variants tried, all in
the same interleaved rounds: the default (fp32, contiguous), channels-last 3D memory format, bf16
autocast on top of channels-last (with all threads and with one), one thread instead of all (on a
shared machine a second thread that waits for a busy core can cost more than it brings), and a batch
of 4 in channels-last (more work per convolution call). `torch.compile` is not timed here: its first
call alone takes minutes on two cores (see `notes` in the result).

Two views of the throughput besides the whole network's: the convolution kernels alone (the network's
FLOPs over the time `torch.profiler` books to convolution ops, the rest being group normalisation,
activations, copies and concatenation), and the same network at the paper scale's width (16 base
features instead of the quick scale's 8), where each convolution call has twice the channels.

    python -m benchmarks.run_all --only unet [--quick]
"""
from __future__ import annotations

import contextlib

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks import median, ratio, seconds_summary, time_interleaved
from vertebra.experiments import get_scale
from vertebra.models.unet import UNet3D, UNetConfig

MATMUL_N = 2048

NOTES = [
    "torch.compile (inductor, channels-last, training step, quick scale, batch 2) was timed once by "
    "hand on the 2-core machine under load: first call 189 s, then 6.0 s a step against 6.5 s "
    "uncompiled (about 1.08x). Not worth minutes of compilation per run, so not used or timed here.",
    "MONAI's BasicUNet takes one num_groups for all layers (1 here); ours keeps 16 channels a group, "
    "so its deeper layers have 2-8 groups. The cost of group normalisation does not depend on that.",
    "The library trains and predicts in fp32 channels-last 3D (`TrainConfig.channels_last`), the "
    "fastest fp32 setting here. bf16 autocast is bit-exact from run to run at a fixed thread count "
    "(checked at 1 and 2 threads, 3 Adam steps, batch 2, quick grid) but not bit-identical to fp32, and "
    "its speed depends on bf16 hardware (Intel AMX, AVX-512 BF16; the result's provenance names this "
    "CPU's), so results would differ between machines: it is measured, not used.",
    "FLOP/s fractions divide by the fp32 matmul rate even for bf16 runs: a CPU with bf16 units (AMX or "
    "AVX-512 BF16) multiplies bf16 faster than fp32, so a bf16 network can exceed the fp32 reference (a "
    "fraction above 1).",
    "torch.jit.freeze + optimize_for_inference (the oneDNN/mkldnn inference path) cannot script the "
    "U-Net as written (the skip list's size is not static), so it is not timed.",
]


def _monai_unet(features: int, out_channels: int):
    from monai.networks.nets import BasicUNet

    f = features
    return BasicUNet(spatial_dims=3, in_channels=1, out_channels=out_channels,
                     features=(f, 2 * f, 4 * f, 8 * f, 16 * f, f),
                     act=("leakyrelu", {"negative_slope": 0.01, "inplace": True}),
                     norm=("group", {"num_groups": 1}), dropout=0.3)


def _with_threads(fn, threads: int | None):
    """`fn` run with `threads` intra-op threads (None: as set), the setting restored afterwards."""
    if threads is None:
        return fn

    def wrapped():
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return fn()
        finally:
            torch.set_num_threads(before)
    return wrapped


def _step_functions(model, x, y, *, channels_last: bool, bf16: bool, threads: int | None = None,
                    batch: int = 1):
    """(train_step, inference) closures for one model in one setting; `batch` copies of the input."""
    x, y = x.repeat(batch, 1, 1, 1, 1), y.repeat(batch, 1, 1, 1)
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
        x = x.to(memory_format=torch.channels_last_3d)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext

    def train_step():
        model.train()
        optimiser.zero_grad(set_to_none=True)
        with autocast():
            logits = model(x)
        torch.nn.functional.cross_entropy(logits.float(), y).backward()
        optimiser.step()

    def inference():
        model.eval()
        with torch.inference_mode(), autocast():
            model(x)

    return _with_threads(train_step, threads), _with_threads(inference, threads)


def _flops(model, x, y) -> tuple[int, int]:
    """FLOPs of one training step (forward + backward) and of one inference."""
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(model(x), y).backward()
    train = counter.get_total_flops()
    model.zero_grad(set_to_none=True)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return train, counter.get_total_flops()


def _convolution_share(fn) -> float:
    """Share of the self CPU time of one call of `fn` that the profiler books to convolution ops."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    return sum(e.self_cpu_time_total for e in events if "conv" in e.key.lower()) / max(total, 1)


def run(quick: bool = False) -> dict:
    try:
        import monai
    except ImportError:
        return {"skipped": "MONAI is not installed (pip install -e '.[bench]')"}
    scale = get_scale("smoke" if quick else "quick")
    torch.manual_seed(0)
    config = UNetConfig(num_classes=1, features=scale.direct_features)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 1, *scale.direct_shape_zyx, generator=generator)
    y = torch.randint(0, 2, (1, *scale.direct_shape_zyx), generator=generator)

    # name: (network, channels-last, bf16 autocast, threads (None: all), batch)
    variants = {"ours_fp32": ("ours", False, False, None, 1), "monai_fp32": ("monai", False, False, None, 1),
                "ours_channels_last": ("ours", True, False, None, 1),
                "monai_channels_last": ("monai", True, False, None, 1),
                "ours_channels_last_bf16": ("ours", True, True, None, 1),
                "ours_channels_last_1thread": ("ours", True, False, 1, 1),
                "ours_channels_last_bf16_1thread": ("ours", True, True, 1, 1),
                "ours_channels_last_batch2": ("ours", True, False, None, 2),
                "ours_channels_last_batch4": ("ours", True, False, None, 4),
                "paper_width_channels_last_batch4": ("paper_width", True, False, None, 4),
                "paper_width_channels_last_bf16_batch4": ("paper_width", True, True, None, 4)}
    paper_config = UNetConfig(num_classes=1, features=get_scale("paper").direct_features)
    train, infer = {}, {}
    for name, (kind, channels_last, bf16, threads, batch) in variants.items():
        model = (UNet3D(config) if kind == "ours" else UNet3D(paper_config) if kind == "paper_width"
                 else _monai_unet(config.features, config.out_channels))
        train[name], infer[name] = _step_functions(model, x, y, channels_last=channels_last,
                                                   bf16=bf16, threads=threads, batch=batch)
    a, b = torch.randn(MATMUL_N, MATMUL_N), torch.randn(MATMUL_N, MATMUL_N)
    matmul = {"matmul_fp32": lambda: torch.mm(a, b)}
    matmul["matmul_fp32_1thread"] = _with_threads(lambda: torch.mm(a, b), 1)

    # five rounds of every training step (about 7 s a round at the quick width): with one round, the
    # training ratios moved by a third between two runs on a quiet machine
    train_s = time_interleaved({**train, **matmul}, rounds=5)
    infer_s = time_interleaved({**infer, **matmul}, rounds=7)
    t_train = {k: median(v) for k, v in train_s.items()}
    t_infer = {k: median(v) for k, v in infer_s.items()}
    def peak(name):  # best matmul rate of the rounds, FLOP/s
        return 2 * MATMUL_N ** 3 / min(min(train_s[name]), min(infer_s[name]))
    peaks = {None: peak("matmul_fp32"), 1: peak("matmul_fp32_1thread")}
    train_flops, infer_flops = _flops(UNet3D(config), x, y)
    paper_train_flops, paper_infer_flops = _flops(UNet3D(paper_config), x, y)
    conv_share = {"train": _convolution_share(train["ours_channels_last_batch4"]),
                  "infer": _convolution_share(infer["ours_channels_last_batch4"])}

    def fraction(times, flops, name):  # FLOP/s of variant `name` / fp32 matmul FLOP/s at its threads
        return flops * variants[name][4] / times[name] / peaks[variants[name][3]]

    def best_fraction(times, flops, names=("ours_fp32", "ours_channels_last", "ours_channels_last_1thread",
                                           "ours_channels_last_batch4")):
        # our fastest setting among `names`
        fractions = {name: fraction(times, flops, name) for name in names}
        name = max(fractions, key=fractions.get)
        return fractions[name], name
    train_fraction, train_best = best_fraction(t_train, train_flops)
    infer_fraction, infer_best = best_fraction(t_infer, infer_flops)
    bf16_names = ("ours_channels_last_bf16", "ours_channels_last_bf16_1thread")
    train_bf16, train_bf16_best = best_fraction(t_train, train_flops, bf16_names)
    infer_bf16, infer_bf16_best = best_fraction(t_infer, infer_flops, bf16_names)
    peak_goal = None if quick else 0.5  # the smoke-sized net is bound by overheads, not FLOPs
    ratios = [
        ratio("train_vs_monai_fp32", t_train["monai_fp32"] / t_train["ours_fp32"], 1.0,
              "MONAI / ours seconds per training step, both fp32 contiguous (defaults)"),
        ratio("train_vs_monai_channels_last", t_train["monai_channels_last"]
              / t_train["ours_channels_last"], 1.0, "same, both channels-last 3D"),
        ratio("infer_vs_monai_fp32", t_infer["monai_fp32"] / t_infer["ours_fp32"], 1.0,
              "MONAI / ours seconds per inference (inference_mode), both fp32 contiguous"),
        ratio("infer_vs_monai_channels_last", t_infer["monai_channels_last"]
              / t_infer["ours_channels_last"], 1.0, "same, both channels-last 3D"),
        ratio("train_fraction_of_matmul_peak", train_fraction, peak_goal,
              f"training-step FLOP/s ({train_best}) / fp32 {MATMUL_N}^2 matmul FLOP/s, same threads"),
        ratio("infer_fraction_of_matmul_peak", infer_fraction, peak_goal,
              f"inference FLOP/s ({infer_best}) / fp32 matmul FLOP/s, same threads"),
        ratio("train_fraction_of_matmul_peak_quick_batch",
              fraction(t_train, train_flops, "ours_channels_last_batch2"), None,
              "training-step FLOP/s at the quick rows' own batch of 2 (ours_channels_last_batch2) / fp32 "
              "matmul FLOP/s: the setting `make reproduce` trains with"),
        ratio("train_fraction_of_matmul_peak_bf16", train_bf16, None,
              f"training-step FLOP/s with bf16 autocast ({train_bf16_best}) / fp32 matmul FLOP/s, same threads"),
        ratio("infer_fraction_of_matmul_peak_bf16", infer_bf16, None,
              f"inference FLOP/s with bf16 autocast ({infer_bf16_best}) / fp32 matmul FLOP/s, same threads"),
        ratio("train_conv_kernels_fraction_of_matmul_peak",
              fraction(t_train, train_flops, "ours_channels_last_batch4") / conv_share["train"], None,
              "training-step FLOP/s (ours_channels_last_batch4) over the time the profiler books to "
              f"convolution ops ({conv_share['train']:.0%} of the step)"),
        ratio("infer_conv_kernels_fraction_of_matmul_peak",
              fraction(t_infer, infer_flops, "ours_channels_last_batch4") / conv_share["infer"], peak_goal,
              f"the same for inference (convolutions {conv_share['infer']:.0%} of the time)"),
        ratio("paper_width_train_fraction_of_matmul_peak",
              fraction(t_train, paper_train_flops, "paper_width_channels_last_batch4"), None,
              f"training-step FLOP/s at the paper's width ({paper_config.features} base features), "
              "channels-last, batch 4 / fp32 matmul FLOP/s"),
        ratio("paper_width_infer_fraction_of_matmul_peak",
              fraction(t_infer, paper_infer_flops, "paper_width_channels_last_batch4"), peak_goal,
              "inference FLOP/s at the paper's width, channels-last, batch 4 / fp32 matmul FLOP/s"),
        ratio("paper_width_infer_fraction_of_matmul_peak_bf16",
              fraction(t_infer, paper_infer_flops, "paper_width_channels_last_bf16_batch4"), None,
              "the same with bf16 autocast / fp32 matmul FLOP/s"),
        ratio("batch4_speedup_train", 4 * t_train["ours_channels_last"] / t_train["ours_channels_last_batch4"],
              None, "4 x seconds of one scan / seconds of a batch of 4 (channels-last, all threads)"),
        ratio("batch4_speedup_infer", 4 * t_infer["ours_channels_last"] / t_infer["ours_channels_last_batch4"],
              None, "4 x seconds of one scan / seconds of a batch of 4 (channels-last, all threads)"),
        ratio("ours_best_vs_monai_default_train",
              t_train["monai_fp32"] / min(v for k, v in t_train.items()
                                          if k.startswith("ours") and variants[k][4] == 1), None,
              "MONAI as it comes / our fastest training setting"),
        ratio("channels_last_speedup_train", t_train["ours_fp32"] / t_train["ours_channels_last"],
              None, "ours contiguous / channels-last"),
        ratio("channels_last_speedup_infer", t_infer["ours_fp32"] / t_infer["ours_channels_last"],
              None, "ours contiguous / channels-last"),
        ratio("bf16_speedup_train", t_train["ours_channels_last"] / t_train["ours_channels_last_bf16"],
              None, "ours channels-last fp32 / with bf16 autocast"),
        ratio("bf16_speedup_infer", t_infer["ours_channels_last"] / t_infer["ours_channels_last_bf16"],
              None, "ours channels-last fp32 / with bf16 autocast"),
        ratio("all_threads_vs_one_train", t_train["ours_channels_last_1thread"]
              / t_train["ours_channels_last"], None, "one thread / all threads (channels-last)"),
        ratio("all_threads_vs_one_infer", t_infer["ours_channels_last_1thread"]
              / t_infer["ours_channels_last"], None, "one thread / all threads (channels-last)"),
    ]
    context = {"scale": scale.name, "input_shape_bczyx": list(x.shape), "features": config.features,
               "torch_threads": torch.get_num_threads(), "monai_version": monai.__version__,
               "matmul_fp32_gflops": round(peaks[None] / 1e9, 1),
               "matmul_fp32_1thread_gflops": round(peaks[1] / 1e9, 1),
               "train_gflop_per_step": round(train_flops / 1e9, 2),
               "infer_gflop": round(infer_flops / 1e9, 2), "paper_width_features": paper_config.features,
               "paper_width_train_gflop_per_step": round(paper_train_flops / 1e9, 2),
               "paper_width_infer_gflop": round(paper_infer_flops / 1e9, 2),
               "convolution_share_of_time": {k: round(v, 3) for k, v in conv_share.items()},
               "train_seconds": seconds_summary(train_s), "infer_seconds": seconds_summary(infer_s)}
    return {"benchmark": "unet", "quick": quick, "ratios": ratios, "context": context, "notes": NOTES}
