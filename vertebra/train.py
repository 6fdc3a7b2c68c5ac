"""One plain training loop for every network in the project (the direct U-Net, the FCNN, the instance U-Net).

The loop is written so that a run is a pure function of its configuration:

* ``sample_batch(step)`` must return the same batch for the same step (seed it from ``(config.seed, step)``);
* before each step the torch global RNG is reseeded from ``(config.seed, step)``, so dropout masks are a
  function of the step too;
* a checkpoint (model, optimiser, completed steps, log so far) is written atomically to
  ``run_dir/checkpoint.pt`` every ``checkpoint_every`` steps and at the end; when ``run_dir`` already holds
  one, training resumes from it. Stopped-and-resumed therefore equals uninterrupted, bit for bit on CPU.

The paper trains with Adam (§2.2: batch 4, about 100,000 iterations for the direct U-Net; §2.3: batch 6,
about 50,000 for the instance U-Net). Data loading overlaps with the step: a background thread prepares
``sample_batch(step + 1)`` while ``step`` runs, and the time the loop waited for it is logged (``wait_s``).
"""
from __future__ import annotations

import csv
import io
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from .results import write_bytes_atomic

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
LOG_NAME = "train_log.csv"


@dataclass(frozen=True)
class TrainConfig:
    """How long and how fast to train. Defaults follow the paper (Adam, learning rate 1e-4)."""

    iterations: int
    batch_size: int
    learning_rate: float = 1e-4
    #: the learning rate falls linearly from ``learning_rate`` at the first step to this fraction of it
    #: at the last (1.0: constant, as the paper's runs); a function of the step, so resume stays exact
    final_lr_fraction: float = 1.0
    seed: int = 0
    checkpoint_every: int = 50
    validate_every: int = 100
    device: str = "auto"  # "auto" → CUDA when present, else CPU
    #: store 3D activations channels-last (N, D, H, W, C): about 1.5-3x faster on CPU for small-channel
    #: 3D convolutions (measured in benchmarks/bench_unet.py); numbers are unchanged up to rounding
    channels_last: bool = True

    def __post_init__(self):
        if self.iterations < 0 or self.batch_size < 1:
            raise ValueError(f"iterations must be >= 0 and batch_size >= 1, got {self.iterations}, "
                             f"{self.batch_size}")
        if not 0 < self.final_lr_fraction <= 1:
            raise ValueError(f"final_lr_fraction must lie in (0, 1], got {self.final_lr_fraction}")
        if self.checkpoint_every < 1 or self.validate_every < 1:
            raise ValueError("checkpoint_every and validate_every must be >= 1")


@dataclass
class TrainResult:
    """What a finished (or stopped) run leaves behind. The model itself is trained in place."""

    steps_done: int
    resumed_from_step: int
    seconds: float
    log: list[dict] = field(default_factory=list)
    checkpoint_path: Path | None = None
    log_path: Path | None = None

    @property
    def last_validation(self) -> dict:
        """The metrics of the last validation in the log ({} when none ran)."""
        for row in reversed(self.log):
            vals = {k: v for k, v in row.items() if k.endswith("_val") or k.startswith("val_")}
            if vals:
                return vals
        return {}


def step_seed(seed: int, step: int) -> int:
    """A 63-bit seed that depends only on (seed, step); used for batches and dropout alike."""
    return int(np.random.SeedSequence([int(seed), int(step)]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def learning_rate_at(config: TrainConfig, step: int) -> float:
    """The learning rate of step ``step`` (0-based): linear from ``learning_rate`` to
    ``final_lr_fraction`` of it at the last step."""
    progress = step / max(config.iterations - 1, 1)
    return config.learning_rate * (1.0 - (1.0 - config.final_lr_fraction) * progress)


def train(model: torch.nn.Module,
          sample_batch: Callable[[int], dict],
          loss_fn: Callable[[torch.nn.Module, dict, int], tuple[torch.Tensor, dict]],
          config: TrainConfig,
          run_dir: str | Path,
          validate: Callable[[torch.nn.Module], dict] | None = None,
          stop_after: int | None = None) -> TrainResult:
    """Train ``model`` in place with Adam for ``config.iterations`` steps, resuming from ``run_dir``.

    Args:
        sample_batch: ``step -> dict of tensors``; a pure function of the step.
        loss_fn: ``(model, batch, step) -> (loss, {term: float})``; may depend on the step (λn of Eq. 1).
        validate: ``model -> {metric: float}``, called in eval mode without gradients every
            ``validate_every`` steps and after the last step.
        stop_after: stop (with a checkpoint) once this many steps are done, as if interrupted; used to
            test exact resume.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in [*run_dir.glob(f".{CHECKPOINT_NAME}.*.tmp"), *run_dir.glob(f".{LOG_NAME}.*.tmp")]:
        stale.unlink()  # a write cut short by a kill; the file it was to replace is intact
    device = resolve_device(config.device)
    layout = torch.channels_last_3d if config.channels_last else torch.contiguous_format
    model.to(device, memory_format=layout)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    ckpt_path, log_path = run_dir / CHECKPOINT_NAME, run_dir / LOG_NAME

    start, history = 0, []
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start, history = int(state["step"]), list(state["log"])
        if state.get("config", {}).get("seed", config.seed) != config.seed:
            log.warning("resuming %s with seed %s, but it was started with seed %s",
                        ckpt_path, config.seed, state["config"]["seed"])
        log.info("resuming from %s at step %d", ckpt_path, start)
    end = config.iterations if stop_after is None else min(config.iterations, stop_after)

    def save_checkpoint(done: int) -> None:
        _torch_save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                            "step": done, "log": history, "config": asdict(config)}, ckpt_path)
        _write_log_csv(history, log_path)

    started = time.perf_counter()
    model.train()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch") as pool:
        pending = pool.submit(sample_batch, start) if start < end else None
        for step in tqdm(range(start, end), initial=start, total=config.iterations, desc="train",
                         leave=False, disable=None):
            t0 = time.perf_counter()
            batch = pending.result()
            wait_s = time.perf_counter() - t0
            pending = pool.submit(sample_batch, step + 1) if step + 1 < end else None

            torch.manual_seed(step_seed(config.seed, step))
            batch = {k: _to_device(v, device, layout) for k, v in batch.items()}
            optimizer.zero_grad(set_to_none=True)
            loss, terms = loss_fn(model, batch, step)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at step {step}")
            loss.backward()
            if config.final_lr_fraction != 1.0:
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate_at(config, step)
            optimizer.step()

            row = {"step": step + 1, "loss": float(loss.detach()), **{k: float(v) for k, v in terms.items()}}
            done = step + 1
            if validate is not None and (done % config.validate_every == 0 or done == config.iterations):
                model.eval()
                with torch.no_grad():
                    row.update({k: float(v) for k, v in validate(model).items()})
                model.train()
            row["wait_s"] = wait_s
            row["seconds"] = time.perf_counter() - t0
            history.append(row)
            if done % config.checkpoint_every == 0 or done == end:
                save_checkpoint(done)
    if start >= end and not log_path.exists():
        _write_log_csv(history, log_path)
    model.eval()
    return TrainResult(steps_done=max(start, end), resumed_from_step=start,
                       seconds=time.perf_counter() - started, log=history,
                       checkpoint_path=ckpt_path, log_path=log_path)


def _to_device(value, device: torch.device, layout: torch.memory_format):
    """A batch entry on the device; 5-D float tensors (B, C, D, H, W) in the model's memory layout."""
    if not torch.is_tensor(value):
        return value
    value = value.to(device, non_blocking=True)
    if value.dim() == 5 and value.is_floating_point():
        value = value.contiguous(memory_format=layout)
    return value


def _torch_save_atomic(obj, path: Path) -> None:
    """torch.save to a temporary file beside ``path``, then rename it over ``path``."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def _write_log_csv(history: list[dict], path: Path) -> None:
    """The training log as CSV: step, loss, loss terms, validation metrics, wait_s, seconds."""
    columns: list[str] = []
    for row in history:
        columns += [k for k in row if k not in columns]
    for k in ("wait_s", "seconds"):  # timings last
        if k in columns:
            columns.remove(k)
            columns.append(k)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns or ["step", "loss"], restval="")
    writer.writeheader()
    writer.writerows(history)
    write_bytes_atomic(path, text.getvalue().encode())


def read_log_csv(path: str | Path) -> list[dict]:
    """The training log back as a list of dicts of floats (empty cells dropped)."""
    with open(path, newline="", encoding="utf-8") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]
