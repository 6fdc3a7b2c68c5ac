"""Trained instance models on disk: one file holding the network(s), the grid and the traversal settings.

A bundle holds one model per traversal direction it was trained for: ``{"down": ...}`` for a top-down
model, ``{"up": ...}`` for bottom-up, both for fix (a) (a top-down and a bottom-up model combined) or
for a bidirectional model used both ways. Weights are stored as float16 (the quick model is ~1.4 M
parameters, 2.8 MB) and restored as float32.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..errors import InputError
from ..models.instance_unet import InstanceUNet, InstanceUNetConfig
from .traversal import TraversalConfig

#: the default weights of `vertebra label-spine`, trained on the quick row "instance"
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

    def __post_init__(self):
        if not self.models or set(self.models) - {"down", "up"}:
            raise ValueError(f"models must be keyed by 'down' and/or 'up', got {sorted(self.models)}")

    def save(self, path: str | Path) -> Path:
        from ..results import write_bytes_atomic
        import io
        state = {"format": FORMAT, "spacing_mm": self.spacing_mm, "traversal": asdict(self.traversal),
                 "params": self.params,
                 "models": {d: {"config": m.config.to_dict(),
                                "state_dict": {k: v.detach().cpu().half() if v.is_floating_point() else v.cpu()
                                               for k, v in m.state_dict().items()}}
                            for d, m in self.models.items()}}
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
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in entry["state_dict"].items()})
        models[direction] = model.to(device).eval()
    return InstanceBundle(models, float(state["spacing_mm"]), TraversalConfig(**state["traversal"]),
                          dict(state.get("params", {})))
