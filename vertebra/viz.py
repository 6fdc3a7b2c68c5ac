"""Pictures of a scan: three orthogonal slices, and a 3D view that always has a PNG.

Arrays are (z, y, x) as in `vertebra.image.Volume`; points are world (x, y, z) mm, LPS. With the
identity direction of the phantom, index x runs from the patient's right to left and y from anterior
to posterior, so an axial slice shows the patient's right on the image's left (the radiological
convention) and sagittal/coronal slices are drawn with the head at the top.

Grey values are shown through a HU window: by default -200 to 1000 HU (bone and soft tissue both
readable; the paper's direct U-Net clips to 100-1000 HU, Section 2.2, and the instance method to
-100-2000 HU, Section 2.1). Vertebra labels use VerSe numbering (`vertebra.labels`); L1 (20) is
always drawn in the same red so that every figure of the book (Figures 2 and 3) reads alike.

`view3d` returns an itkwidgets viewer when the optional extra `vertebra[view3d]` is installed and a
kernel with a network shows it; it always carries a PNG (maximum intensity projections with the
labels on top), which is what the static book shows.
"""
from __future__ import annotations

import io
import logging

import numpy as np

from .image import Volume

log = logging.getLogger(__name__)

#: default grey window in HU (lower, upper)
WINDOW_HU = (-200.0, 1000.0)
L1_LABEL = 20
L1_RGB = (0.90, 0.10, 0.10)


def label_colours(max_label: int = 255) -> np.ndarray:
    """An RGBA table (max_label + 1, 4): 0 transparent, L1 red, the other labels from a cycle.

    >>> label_colours(30)[20][:3].tolist() == list(L1_RGB)
    True
    """
    from matplotlib import colormaps

    cycle = colormaps["tab20"].colors
    table = np.zeros((max_label + 1, 4))
    for label in range(1, max_label + 1):
        table[label, :3] = cycle[(label * 7) % len(cycle)]
        table[label, 3] = 1.0
    if max_label >= L1_LABEL:
        table[L1_LABEL, :3] = L1_RGB
    return table


def label_cmap(max_label: int = 255):
    """A matplotlib ListedColormap for integer label images (use with vmin=0, vmax=max_label)."""
    from matplotlib.colors import ListedColormap

    return ListedColormap(label_colours(max_label), name="vertebra_labels")


def _slices_at(vol: Volume, index_zyx) -> dict:
    """The three planes through `index_zyx`: name → (2D array, physical aspect, flip rows)."""
    z, y, x = index_zyx
    sx, sy, sz = vol.geometry.spacing_mm
    a = vol.array
    return {"axial": (a[z], sy / sx, False),       # rows y, columns x
            "sagittal": (a[:, :, x], sz / sy, True),   # rows z, columns y
            "coronal": (a[:, y, :], sz / sx, True)}    # rows z, columns x


def _default_point_index(image: Volume, labels: Volume | None) -> np.ndarray:
    if labels is not None and np.any(labels.array == L1_LABEL):
        return np.argwhere(labels.array == L1_LABEL).mean(axis=0)
    if labels is not None and np.any(labels.array):
        return np.argwhere(labels.array > 0).mean(axis=0)
    return (np.asarray(image.array.shape) - 1) / 2.0


def orthoslices(image: Volume, labels: Volume | None = None, point_mm=None, *,
                window_hu=WINDOW_HU, alpha: float = 0.45, title: str | None = None, axes=None):
    """Axial, sagittal and coronal slices through `point_mm` (world x, y, z), labels overlaid.

    `point_mm` defaults to the centre of L1 in `labels` (label 20), else of all labels, else the
    centre of the scan. `labels` must share the image's grid. Returns the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    if labels is not None and labels.array.shape != image.array.shape:
        raise ValueError(f"labels {labels.array.shape} and image {image.array.shape} differ in shape")
    if point_mm is None:
        index = _default_point_index(image, labels)
    else:
        index = image.world_to_index([point_mm])[0]
    index = np.clip(np.round(index).astype(int), 0, np.asarray(image.array.shape) - 1)

    if axes is None:
        fig, axes = plt.subplots(1, 3, figsize=(10, 4), constrained_layout=True)
    else:
        fig = axes[0].figure
    grey = _slices_at(image, index)
    over = _slices_at(labels, index) if labels is not None else {}
    max_label = int(labels.array.max()) if labels is not None and labels.array.size else 0
    cmap = label_cmap(max(max_label, L1_LABEL))
    for ax, name in zip(axes, ("axial", "sagittal", "coronal")):
        plane, aspect, head_up = grey[name]
        origin = "lower" if head_up else "upper"
        ax.imshow(plane, cmap="gray", vmin=window_hu[0], vmax=window_hu[1], aspect=aspect,
                  origin=origin, interpolation="nearest")
        if name in over:
            lab = over[name][0]
            ax.imshow(np.ma.masked_equal(lab, 0), cmap=cmap, vmin=0, vmax=cmap.N - 1, alpha=alpha,
                      aspect=aspect, origin=origin, interpolation="nearest")
        ax.set_title(name)
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    return fig


def projections(image: Volume, labels: Volume | None = None, *, window_hu=WINDOW_HU,
                title: str | None = None):
    """Coronal and sagittal maximum intensity projections, labels projected on top (a static 3D view)."""
    import matplotlib.pyplot as plt

    sx, sy, sz = image.geometry.spacing_mm
    fig, axes = plt.subplots(1, 2, figsize=(7, 5), constrained_layout=True)
    max_label = int(labels.array.max()) if labels is not None and labels.array.size else 0
    cmap = label_cmap(max(max_label, L1_LABEL))
    for ax, axis, aspect, name in ((axes[0], 1, sz / sx, "coronal"), (axes[1], 2, sz / sy, "sagittal")):
        ax.imshow(image.array.max(axis=axis), cmap="gray", vmin=window_hu[0], vmax=window_hu[1],
                  aspect=aspect, origin="lower", interpolation="nearest")
        if labels is not None:
            lab = labels.array.max(axis=axis)
            ax.imshow(np.ma.masked_equal(lab, 0), cmap=cmap, vmin=0, vmax=cmap.N - 1, alpha=0.6,
                      aspect=aspect, origin="lower", interpolation="nearest")
        ax.set_title(f"{name} projection")
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    return fig


def marked_orthoslices(image: Volume, labels: Volume | None, predicted_mm, *, title: str | None = None,
                       window_hu=WINDOW_HU):
    """`orthoslices` through the true L1 with a cross at a predicted L1 centroid (world x, y, z mm).

    Used for the failure gallery: the colours show the true labels, the cross where a method put L1.
    """
    fig = orthoslices(image, labels, None, window_hu=window_hu, title=title)
    if predicted_mm is None or not np.all(np.isfinite(predicted_mm)):
        return fig
    z, y, x = image.world_to_index([predicted_mm])[0]
    for ax, (col, row) in zip(fig.axes, ((x, y), (y, z), (x, z))):
        ax.plot([col], [row], marker="x", color="yellow", markersize=12, mew=3)
    return fig


def figure_png(fig, dpi: int = 80) -> bytes:
    """PNG bytes of a matplotlib figure (the figure is closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


class View3D:
    """A display object: the itkwidgets viewer when available, and always a PNG.

    In a live notebook with itkwidgets the widget is shown; the book is built with
    `nb_mime_priority_overrides` that drop the widget MIME type, so it shows the PNG and loads no
    widget script.
    """

    WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

    def __init__(self, png: bytes, widget=None):
        self.png = png
        self.widget = widget

    def _repr_png_(self) -> bytes:
        return self.png

    def _repr_mimebundle_(self, include=None, exclude=None):
        data = {"image/png": self.png, "text/plain": "<3D view: PNG" + (" + widget>" if self.widget else ">")}
        if self.widget is not None:
            bundle = getattr(self.widget, "_repr_mimebundle_", None)
            if bundle is not None:
                extra = bundle()
                data.update(extra[0] if isinstance(extra, tuple) else extra)
            elif getattr(self.widget, "model_id", None):
                data[self.WIDGET_MIME] = {"version_major": 2, "version_minor": 0,
                                          "model_id": self.widget.model_id}
        return data


def _itk_viewer(image: Volume, labels: Volume | None):
    try:
        import itkwidgets  # optional extra: vertebra[view3d]
    except ImportError:
        return None
    try:
        kwargs = {"label_image": labels.array} if labels is not None else {}
        return itkwidgets.view(image.array, **kwargs)
    except Exception as exc:  # a broken optional viewer must not cost the picture
        log.warning("itkwidgets could not show the volume (%s); showing the PNG only", exc)
        return None


def view3d(image: Volume, labels: Volume | None = None, *, window_hu=WINDOW_HU,
           title: str | None = None, interactive: bool = True) -> View3D:
    """A 3D view of `image` with `labels`: itkwidgets if installed (and `interactive`), PNG always."""
    png = figure_png(projections(image, labels, window_hu=window_hu, title=title))
    widget = _itk_viewer(image, labels) if interactive else None
    return View3D(png, widget)
