"""Benchmark: what one scan costs at inference (§2.2, §2.3), and how that grows with the scan's length.

1. Direct method, whole scan (goal: ≤ 1.5 x one bare U-Net forward pass). On the first `ctc_test`
   scans: read the CT file, `vertebra.direct.find_l1` (canonical orientation, resample the whole scan
   to the network grid, window, U-Net, largest L1 component, mask back on the scan's grid, BMD
   estimate), write the mask and the JSON record: the same steps as ``vertebra find-l1``. Timed in the
   same interleaved rounds as the bare forward pass of the same network on the same grid (with
   ``torch.no_grad``), so that load on the machine hits both alike. Stages are also timed one by one
   (read, resample, network, largest component, map back, BMD, write) to show where the rest goes.
2. Scan length. One long chest-abdomen-pelvis phantom (``cap``) is cropped around L1 to 100 ... 600 mm
   craniocaudally; on every crop both methods run end to end (`find_l1` and the instance method's
   `label_spine` with the mask mapped back). Seconds against length go to a plot,
   ``<out_dir>/inference_scan_length.png`` (``results/benchmarks`` by default). The direct method resamples any scan to one grid,
   so its network cost does not grow; the instance traversal visits every vertebra in the field of
   view, so its cost should grow roughly with the number of vertebrae in it.

Peak memory is the peak resident set of this process during the call (Linux ``VmHWM`` after resetting
it through ``/proc/self/clear_refs``); it includes the interpreter and torch (`baseline_rss_mib`).
Weights: trained ones when present (see `direct_model`, `benchmarks.bench_instance.instance_bundle`),
else untrained networks of the scale: the timing of a forward pass does not depend on the weights; what
an untrained traversal finds, and so how many passes it makes, does (the result records the source).

    python -m benchmarks.run_all --only inference [--quick]
"""
from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks import median, ratio, seconds_summary, time_interleaved

log = logging.getLogger(__name__)

SCAN_LENGTHS_MM = (100, 200, 300, 400, 500, 600)
TARGET_OVERHEAD = 1.5
PLOT_NAME = "inference_scan_length.png"
#: trained direct weights, in order of preference (the quick hand-44 row, then the packaged default)
DIRECT_WEIGHTS = (Path("results/runs/unet-l1-hand-44/weights.pt"),)


def _rss_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_memory_mib(fn):
    """(fn(), peak resident MiB of this process during the call) on Linux, None for the peak elsewhere.

    The kernel's peak counter is reset just before the call, so the peak is that of the call, but it
    includes what the process already held (interpreter, torch, memory the allocator kept)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        return fn(), None
    out = fn()
    peak = _rss_kib("VmHWM")
    return out, (None if peak is None else round(peak / 1024, 1))


def direct_model(scale):
    """(model, meta, source): trained weights when present, else an untrained U-Net of the scale."""
    from vertebra.direct import DEFAULT_WEIGHTS, load_model
    from vertebra.models.unet import UNet3D, UNetConfig

    for path in (*DIRECT_WEIGHTS, DEFAULT_WEIGHTS):
        if path.is_file():
            model, meta = load_model(path)
            return model, meta, str(path)
    torch.manual_seed(0)
    model = UNet3D(UNetConfig.for_scale(scale)).eval()
    return model, {"shape_zyx": list(scale.direct_shape_zyx), "run_id": "untrained"}, "untrained"


def _direct_stages(ct_file: Path, model, meta, folder: Path) -> dict:
    """The steps of ``vertebra find-l1`` one by one (seconds), to show where the time outside the network
    goes: the same library calls as `whole_scan_direct`, with a clock between them."""
    from vertebra.direct import find_l1_on_grid, l1_bmd_hu, network_input
    from vertebra.direct_training import predict_probabilities
    from vertebra.image import Volume
    from vertebra.io import canonical_view, read_scan, to_canonical, write_image
    from vertebra.preprocess import mask_from_shape

    t0 = time.perf_counter()
    scan = read_scan(ct_file)
    t1 = time.perf_counter()
    canonical, how = to_canonical(scan, contiguous=False)
    image, geometry = network_input(canonical, meta["shape_zyx"])
    t2 = time.perf_counter()
    probs = predict_probabilities(model, image)
    t3 = time.perf_counter()
    finding = find_l1_on_grid(probs, geometry)
    t4 = time.perf_counter()
    mask = np.zeros(scan.array.shape, bool)
    mask_canonical = mask_from_shape(finding.mask, canonical.array.shape, out=canonical_view(mask, how))
    t5 = time.perf_counter()
    l1_bmd_hu(canonical, mask_canonical)
    t6 = time.perf_counter()
    write_image(Volume(mask.view(np.uint8), how.source), folder / "stage_mask.nii.gz")
    t7 = time.perf_counter()
    return {"read_s": t1 - t0, "resample_s": t2 - t1, "network_s": t3 - t2, "largest_component_s": t4 - t3,
            "map_back_s": t5 - t4, "bmd_s": t6 - t5, "write_s": t7 - t6}


def whole_scan_direct(ct_file: Path, model, meta, folder: Path) -> dict:
    """``vertebra find-l1`` without the command line: read, find L1, write mask and record."""
    from vertebra.direct import find_l1
    from vertebra.io import read_scan, write_image
    from vertebra.results import write_json_atomic

    scan = read_scan(ct_file)
    mask, record = find_l1(scan, model, meta)
    write_image(mask, folder / "l1_mask.nii.gz")
    write_json_atomic(folder / "l1.json", record)
    return record


def paper_grid_overhead(ct_file: Path, seed: int = 0) -> dict:
    """Whole scan / forward pass with an untrained U-Net of the paper's grid and width (one round: a
    forward pass takes seconds on a CPU)."""
    from vertebra.experiments import get_scale
    from vertebra.models.unet import UNet3D, UNetConfig

    scale = get_scale("paper")
    torch.manual_seed(seed)
    model = UNet3D(UNetConfig.for_scale(scale)).eval()
    meta = {"shape_zyx": list(scale.direct_shape_zyx), "run_id": "untrained"}
    forward = bare_forward(model, scale.direct_shape_zyx, torch.Generator().manual_seed(seed))
    with tempfile.TemporaryDirectory() as tmp:
        seconds = time_interleaved({"whole_scan": lambda: whole_scan_direct(ct_file, model, meta, Path(tmp)),
                                    "forward": forward}, rounds=1)
    return {"shape_zyx": meta["shape_zyx"], "features": model.config.features,
            "whole_scan_s": median(seconds["whole_scan"]), "forward_s": median(seconds["forward"]),
            "ratio": median(seconds["whole_scan"]) / median(seconds["forward"])}


def bare_forward(model, shape_zyx, generator: torch.Generator):
    x = torch.randn(1, 1, *shape_zyx, generator=generator)

    def forward():
        with torch.no_grad():
            model(x)
    return forward


def crop_length(image, length_mm: float, centre_z_mm: float):
    """The slab of `image` (z, y, x; axial slices along z) `length_mm` long around world z `centre_z_mm`."""
    from vertebra.image import Geometry, Volume

    dz = image.geometry.spacing_mm[2]
    n = min(image.array.shape[0], int(round(length_mm / dz)))
    centre = int(round(image.world_to_index([[0.0, 0.0, centre_z_mm]])[0][0]))
    z0 = int(np.clip(centre - n // 2, 0, image.array.shape[0] - n))
    origin = image.index_to_world([[z0, 0, 0]])[0]
    return Volume(np.ascontiguousarray(image.array[z0:z0 + n]),
                  Geometry(image.geometry.spacing_mm, tuple(origin), image.geometry.direction))


def scan_length_series(model, meta, bundle, rounds: int, seed: int = 0) -> list[dict]:
    """Seconds of both methods on crops of one long `cap` phantom, SCAN_LENGTHS_MM long."""
    from vertebra.direct import find_l1
    from vertebra.instance.pipeline import label_spine
    from vertebra.phantom.case import generate_case

    case = generate_case(np.random.default_rng([seed, 600]), protocol="cap", site="cap_train", spacing_mm=2.0)
    image = case.image
    rows = []
    for length in SCAN_LENGTHS_MM:
        crop = crop_length(image, length, case.meta["l1_centroid_mm"][2])
        last: dict = {}

        def instance(crop=crop, last=last):
            last["labelling"] = label_spine(bundle, crop)
        seconds = time_interleaved({"direct": lambda: find_l1(crop, model, meta), "instance": instance},
                                   rounds=rounds, warmup=0)
        labelling = last["labelling"]
        rows.append({"length_mm": round(crop.array.shape[0] * crop.geometry.spacing_mm[2], 1),
                     "shape_zyx": list(crop.array.shape), "direct_s": median(seconds["direct"]),
                     "instance_s": median(seconds["instance"]), "instance_passes": labelling.passes,
                     "instance_vertebrae": len(labelling.levels)})
        log.info("scan length %s mm: direct %.2f s, instance %.2f s", length, rows[-1]["direct_s"],
                 rows[-1]["instance_s"])
    return rows


def plot_scan_length(rows: list[dict], path: Path, title: str) -> Path:
    """Seconds against scan length for both methods, written atomically as a PNG."""
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vertebra.results import write_bytes_atomic

    lengths = [r["length_mm"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(lengths, [r["direct_s"] for r in rows], "o-", label="direct U-Net (find_l1)")
    ax.plot(lengths, [r["instance_s"] for r in rows], "s-", label="instance traversal (label_spine)")
    for r in rows:
        ax.annotate(f"{r['instance_passes']}", (r["length_mm"], r["instance_s"]), textcoords="offset points",
                    xytext=(0, 6), ha="center", fontsize=7)
    ax.set_xlabel("scan length, craniocaudal (mm)")
    ax.set_ylabel("seconds per scan (median)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return write_bytes_atomic(path, buffer.getvalue())


def _short(source: str) -> str:
    """A weights source for a plot title: the run's folder name, or 'untrained'."""
    return Path(source).parent.name or source


def run(quick: bool = False, out_dir: str | Path = Path("results") / "benchmarks",
        n_scans: int | None = None, seed: int = 0) -> dict:
    from vertebra.experiments import get_scale
    from vertebra.io import case_files, read_scan
    from vertebra.phantom import cohort

    from benchmarks.bench_instance import instance_bundle

    scale = get_scale("quick")
    n_scans = n_scans or (2 if quick else 5)
    rounds = 2 if quick else 3
    model, meta, source = direct_model(scale)
    baseline = round((_rss_kib("VmRSS") or 0) / 1024, 1)
    forward = bare_forward(model, tuple(meta["shape_zyx"]), torch.Generator().manual_seed(seed))
    per_scan = []
    with tempfile.TemporaryDirectory() as tmp:
        for case_dir in cohort("ctc_test", spacing_mm=scale.phantom_spacing_mm, n=n_scans, seed=seed):
            case_dir = Path(case_dir)
            ct_file = case_files(case_dir, case_dir.name.removeprefix("sub-"))["ct"]
            out = Path(tmp) / case_dir.name
            out.mkdir()
            seconds = time_interleaved({"whole_scan": lambda: whole_scan_direct(ct_file, model, meta, out),
                                        "forward": forward}, rounds=rounds)
            _, peak_whole = peak_memory_mib(lambda: whole_scan_direct(ct_file, model, meta, out))
            _, peak_forward = peak_memory_mib(forward)
            stages = _direct_stages(ct_file, model, meta, out)
            per_scan.append({"case": case_dir.name, "shape_zyx": list(read_scan(ct_file).array.shape),
                             "whole_scan_s": median(seconds["whole_scan"]), "forward_s": median(seconds["forward"]),
                             "ratio": median(seconds["whole_scan"]) / median(seconds["forward"]),
                             "peak_mib_whole_scan": peak_whole, "peak_mib_forward": peak_forward,
                             "stages_s": {k: round(v, 4) for k, v in stages.items()},
                             "seconds": seconds_summary(seconds)})
    overhead = float(np.median([r["ratio"] for r in per_scan]))
    paper_grid = None if quick else paper_grid_overhead(ct_file, seed)

    bundle, bundle_source = instance_bundle(scale)
    series = scan_length_series(model, meta, bundle, rounds=1 if quick else 2, seed=seed)
    plot_scan_length(series, Path(out_dir) / PLOT_NAME,
                     f"weights: direct {_short(source)}, instance {_short(bundle_source)}; quick scale, 2 mm")
    first, last = series[0], series[-1]
    ratios = [
        ratio("direct_whole_scan_vs_forward", overhead, TARGET_OVERHEAD,
              "seconds of read + find_l1 + write on a CTC scan / one bare U-Net forward pass on its grid "
              "(median over scans)", higher_is_better=False),
        ratio("direct_growth_100_to_600mm", last["direct_s"] / first["direct_s"], None,
              f"find_l1 seconds at {last['length_mm']:g} mm / at {first['length_mm']:g} mm"),
        ratio("instance_growth_100_to_600mm", last["instance_s"] / first["instance_s"], None,
              f"label_spine seconds at {last['length_mm']:g} mm / at {first['length_mm']:g} mm "
              f"({first['instance_passes']} -> {last['instance_passes']} network passes)"),
        ratio("instance_vs_direct_at_600mm", last["instance_s"] / last["direct_s"], None,
              f"label_spine / find_l1 seconds on the {last['length_mm']:g} mm crop"),
    ]
    if paper_grid is not None:
        ratios.append(ratio("direct_whole_scan_vs_forward_paper_grid", paper_grid["ratio"], None,
                            "the same on the last scan with an untrained network of the paper's size "
                            f"({paper_grid['shape_zyx']}, {paper_grid['features']} features): context, "
                            "the cost outside the network does not grow with it"))
    stage_means = {k: round(float(np.mean([r["stages_s"][k] for r in per_scan])), 4)
                   for k in per_scan[0]["stages_s"]}
    return {"benchmark": "inference", "quick": quick, "ratios": ratios, "weights_direct": source,
            "weights_instance": bundle_source, "direct_grid_zyx": list(meta["shape_zyx"]),
            "baseline_rss_mib": baseline, "per_scan": per_scan, "direct_stages_s_mean": stage_means,
            "peak_mib_whole_scan": max(r["peak_mib_whole_scan"] or 0 for r in per_scan),
            "peak_mib_forward": max(r["peak_mib_forward"] or 0 for r in per_scan),
            "scan_length": series, "paper_grid": paper_grid, "plots": [PLOT_NAME]}
