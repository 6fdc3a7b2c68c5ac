"""Trained instance models on disk: one file holding the network(s), the grid and the traversal settings.

A bundle holds one model per traversal direction it was trained for: ``{"down": ...}`` for a top-down
model, ``{"up": ...}`` for bottom-up, both for fix (a) (a top-down and a bottom-up model combined) or
for a bidirectional model used both ways; with fix (d) it also holds the context network
(`vertebra.instance.context`), its view and its level calibration; and the ordering rule (Eq. 2, or
fix (e)'s monotone labelling). Weights are stored as float16 (the quick instance model is
~1.4 M parameters, 2.8 MB; the context network 0.14 M) and restored as float32.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..errors import InputError
from ..models.context_net import ContextNet, ContextNetConfig
from ..models.instance_unet import InstanceUNet, InstanceUNetConfig
from .context import ContextConfig, ContextModel
from .ordering import OrderingConfig
from .traversal import TraversalConfig

#: the default weights of `vertebra label-spine`: the quick row "instance-fix-edge-context-ordering" (fix
#: (b)'s walk, fix (d)'s levels, fix (e)'s ordering; `vertebra.reproduce.PACKAGED_WEIGHT_ROWS`)
DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "instance_quick.pt"

FORMAT = "vertebra-instance-1"


@dataclass
class InstanceBundle:
    """Networks by direction ("down" / "up"), with what is needed to run them on a new scan."""

    models: dict[str, InstanceUNet]
    spacing_mm: float
    traversal: TraversalConfig
    #: the training row's parameters (mode, fixes, scale, seed, run_id), kept for provenance
    params: dict = field(default_factory=dict)
    #: fix (d): the network that reads each found vertebra's level from a wide view (None: the paper's
    #: levels, from the instance U-Net's own head)
    context: ContextModel | None = None
    #: how the pieces are labelled: Eq. 2 (the paper) or fix (e)'s monotone labelling
    ordering: OrderingConfig = field(default_factory=OrderingConfig)
    #: the walk's pieces keep only voxels denser than this (HU; `pipeline.restrict_to_bone`), None: all
    mask_floor_hu: float | None = None

    def __post_init__(self):
        if not self.models or set(self.models) - {"down", "up"}:
            raise ValueError(f"models must be keyed by 'down' and/or 'up', got {sorted(self.models)}")

    def save(self, path: str | Path) -> Path:
        from ..results import write_bytes_atomic
        import io
        state = {"format": FORMAT, "spacing_mm": self.spacing_mm, "traversal": asdict(self.traversal),
                 "params": self.params,
                 "models": {d: {"config": m.config.to_dict(),
                                "state_dict": _half(m.state_dict())}
                            for d, m in self.models.items()}}
        if self.context is not None:
            state["context"] = {"config": self.context.config.to_dict(), "net": self.context.net.config.to_dict(),
                                "state_dict": _half(self.context.net.state_dict()),
                                "calibration": [self.context.level_scale, self.context.level_offset]}
        state["ordering"] = self.ordering.to_dict()
        state["mask_floor_hu"] = self.mask_floor_hu
        buffer = io.BytesIO()
        torch.save(state, buffer)
        return write_bytes_atomic(path, buffer.getvalue())


def load_bundle(path: str | Path | None = None, device: str = "cpu") -> InstanceBundle:
    """Read a bundle written by `InstanceBundle.save` (default: the packaged quick weights)."""
    path = Path(path) if path is not None else DEFAULT_WEIGHTS
    if not path.is_file():
        raise InputError("instance weights not found (train the 'instance' row or pass --weights)", path)
    try:
        state = torch.load(path, map_location=device, weights_only=False)
    except Exception as exc:  # a truncated or foreign file
        raise InputError(f"is not a readable weights file ({exc})", path) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise InputError(f"is not an instance-model bundle (expected format {FORMAT!r})", path)
    models = {}
    for direction, entry in state["models"].items():
        # bundles written before the level head had a scale used none (scale 1)
        model = InstanceUNet(InstanceUNetConfig(**{"level_scale": 1.0, **entry["config"]}))
        model.load_state_dict(_float(entry["state_dict"]))
        models[direction] = model.to(device).eval()
    context = None
    if state.get("context") is not None:
        entry = state["context"]
        config = ContextConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in entry["config"].items()})
        net = ContextNet(ContextNetConfig(**entry["net"]), config.box_zyx)
        net.load_state_dict(_float(entry["state_dict"]))
        scale, offset = entry.get("calibration", (1.0, 0.0))       # bundles before calibration: none
        context = ContextModel(net.to(device).eval(), config, float(scale), float(offset))
    # bundles written before the traversal read the context network's own threshold held a copy of it;
    # those written before the first box could sit on the first slices had its edge on the scan's edge
    traversal = {"first_box_z": "edge",
                 **{k: v for k, v in state["traversal"].items() if k != "first_box_min_probability"}}
    return InstanceBundle(models, float(state["spacing_mm"]), TraversalConfig(**traversal),
                          dict(state.get("params", {})), context, OrderingConfig(**state.get("ordering", {})),
                          state.get("mask_floor_hu"))


def _half(state_dict: dict) -> dict:
    return {k: v.detach().cpu().half() if v.is_floating_point() else v.cpu() for k, v in state_dict.items()}


def _float(state_dict: dict) -> dict:
    return {k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()}
