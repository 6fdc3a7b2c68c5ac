"""Figures of the tool's stages on one scan (for the pseudo-mask notebook and the book).

Every function takes a `PseudoMaskResult` and returns a matplotlib Figure. Sagittal views show the
canonical (LPS) grid: index z grows superiorly, so images are drawn with the head at the top.
"""
from __future__ import annotations


import numpy as np
import matplotlib.pyplot as plt
from matplotlib.colors import ListedColormap

from .pipeline import PseudoMaskResult

_WINDOW = dict(cmap="gray", vmin=-250, vmax=1000)


def _label_cmap(n: int) -> ListedColormap:
    rng = np.random.default_rng(3)
    colours = rng.uniform(0.25, 1.0, (max(n, 1) + 1, 4))
    colours[:, 3] = 0.55
    colours[0] = (0, 0, 0, 0)
    return ListedColormap(colours)


def _sagittal_x(result: PseudoMaskResult) -> int:
    return int(round(np.median(result.centreline.yx_index[:, 1])))


def _aspect(result: PseudoMaskResult) -> float:
    sz, sy, _ = result.canonical.spacing_zyx
    return sz / sy


def centreline_figure(result: PseudoMaskResult) -> plt.Figure:
    """Sagittal slice through the canal with the detections and the fitted centreline."""
    x = _sagittal_x(result)
    fig, ax = plt.subplots(figsize=(4, 7))
    ax.imshow(result.canonical.array[:, :, x], origin="lower", aspect=_aspect(result), **_WINDOW)
    c = result.candidates
    ax.plot(c.zyx[:, 1], c.zyx[:, 0], ".", color="orange", ms=3, label="canal candidates")
    line = result.centreline
    ax.plot(line.yx_index[:, 0], line.z_index, "-", color="cyan", lw=1.5, label="centreline")
    ends = line.yx_index[:, 0] + 12 * line.anterior_yx[:, 0] / result.canonical.spacing_zyx[1]
    ax.plot(ends[::8], line.z_index[::8], ">", color="lime", ms=3, label="towards the body")
    ax.set_title(f"sagittal slice x = {x}")
    ax.legend(loc="lower right", fontsize=7)
    ax.set_axis_off()
    return fig


def straightened_figure(result: PseudoMaskResult) -> plt.Figure:
    """The curved planar reformation: mid-sagittal (s, u) and coronal (s, v) planes, discs marked."""
    st = result.straightened
    mid_v, mid_u = len(st.v_mm) // 2, int(np.argmin(np.abs(st.u_mm - np.median(result.profile.body_u_mm))))
    fig, axes = plt.subplots(1, 2, figsize=(7, 7), sharey=True)
    extent_u = (st.u_mm[0], st.u_mm[-1], st.s_mm[0], st.s_mm[-1])
    extent_v = (st.v_mm[0], st.v_mm[-1], st.s_mm[0], st.s_mm[-1])
    axes[0].imshow(st.array[:, :, mid_v], origin="lower", extent=extent_u, **_WINDOW)
    axes[1].imshow(st.array[:, mid_u, :], origin="lower", extent=extent_v, **_WINDOW)
    for ax in axes:
        for s in result.profile.discs_mm:
            ax.axhline(s, color="red", lw=0.6)
    axes[0].set(xlabel="u (mm, anterior +)", ylabel="s (mm along the centreline)", title="straightened, sagittal")
    axes[1].set(xlabel="v (mm, lateral)", title="straightened, through the bodies")
    return fig


def profile_figure(result: PseudoMaskResult) -> plt.Figure:
    """The density profile along the centreline and the discs the programme chose."""
    p = result.profile
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.plot(p.s_mm, p.bone_weight, color="0.6", label="bone weight")
    ax.plot(p.s_mm, p.normalised, color="k", label="normalised")
    for k, s in enumerate(p.discs_mm):
        ax.axvline(s, color="red", lw=0.8, label="disc" if k == 0 else None)
    ax.set(xlabel="s (mm along the centreline)", ylabel="body window", ylim=(0, 1.1))
    ax.legend(loc="upper right", fontsize=7)
    return fig


def watershed_figure(result: PseudoMaskResult) -> plt.Figure:
    """Sagittal view of the watershed segments before and after the oversegment merge."""
    x = _sagittal_x(result)
    before, after = result.watershed.before, result.watershed.after
    fig, axes = plt.subplots(1, 2, figsize=(7, 7))
    for ax, lab, title in ((axes[0], before, f"watershed: {len(np.unique(before)) - 1} segments"),
                           (axes[1], after, f"after the merge: {int(after.max())} vertebrae")):
        sl = lab[:, :, x]
        ax.imshow(result.canonical.array[:, :, x], origin="lower", aspect=_aspect(result), **_WINDOW)
        ax.imshow(np.ma.masked_equal(sl % 50, 0) if lab.max() else sl, origin="lower", aspect=_aspect(result),
                  cmap=_label_cmap(50), vmin=0, vmax=50, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    return fig
