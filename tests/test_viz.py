"""Pictures: orthogonal slices with labels, and the 3D view that always carries a PNG."""
import numpy as np
import pytest

from vertebra.image import Geometry, Volume
from vertebra.viz import L1_RGB, View3D, label_colours, marked_orthoslices, orthoslices, view3d


@pytest.fixture
def scan():
    rng = np.random.default_rng(0)
    ct = rng.normal(0, 20, (20, 16, 12)).astype(np.int16)
    labels = np.zeros(ct.shape, np.uint8)
    labels[4:8, 6:10, 4:8] = 19
    labels[10:14, 6:10, 4:8] = 20
    ct[labels > 0] = 400
    geom = Geometry(spacing_mm=(2.0, 2.0, 3.0), origin_mm=(-10.0, 5.0, 100.0))
    return Volume(ct, geom), Volume(labels, geom)


def test_l1_is_red_and_background_transparent():
    table = label_colours(28)
    assert tuple(table[20, :3]) == L1_RGB and table[0, 3] == 0
    assert len({tuple(table[k, :3]) for k in range(18, 23)}) == 5


def test_orthoslices_draws_three_planes_through_l1(scan):
    import matplotlib.pyplot as plt

    image, labels = scan
    fig = orthoslices(image, labels)
    assert [ax.get_title() for ax in fig.axes] == ["axial", "sagittal", "coronal"]
    axial = fig.axes[0].images[1].get_array()
    assert (axial == 20).any()  # the default point is the centre of L1
    point = image.index_to_world([[5, 8, 6]])[0]
    fig2 = orthoslices(image, labels, point_mm=point)
    assert (fig2.axes[0].images[1].get_array() == 19).any()
    plt.close("all")


def test_orthoslices_rejects_a_label_map_on_another_grid(scan):
    image, labels = scan
    with pytest.raises(ValueError, match="differ in shape"):
        orthoslices(image, Volume(labels.array[1:], labels.geometry))


def test_marked_orthoslices_tolerates_a_missing_prediction(scan):
    import matplotlib.pyplot as plt

    image, labels = scan
    assert len(marked_orthoslices(image, labels, None).axes) == 3
    fig = marked_orthoslices(image, labels, image.index_to_world([[12, 8, 6]])[0])
    assert fig.axes[1].lines
    plt.close("all")


def test_view3d_always_has_a_png(scan):
    image, labels = scan
    view = view3d(image, labels, interactive=False)
    assert view._repr_png_().startswith(b"\x89PNG")
    bundle = view._repr_mimebundle_()
    assert bundle["image/png"] == view.png and View3D.WIDGET_MIME not in bundle


def test_a_widget_adds_its_view_beside_the_png():
    class FakeWidget:
        model_id = "abc"

    bundle = View3D(b"\x89PNG", FakeWidget())._repr_mimebundle_()
    assert bundle[View3D.WIDGET_MIME]["model_id"] == "abc" and bundle["image/png"] == b"\x89PNG"
