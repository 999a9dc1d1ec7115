import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import dlpt  # noqa: E402
from dlpt import plot  # noqa: E402
from dlpt.train import History  # noqa: E402


def test_curves_draws_one_line_per_run():
    ax = plot.curves({"a": History(loss=[3.0, 2.0, 1.0]), "b": [(10, 1.0), (20, 0.5)], "c": torch.ones(5)}, log=True)
    assert [line.get_label() for line in ax.get_lines()] == ["a", "b", "c"]
    assert list(ax.get_lines()[1].get_xdata()) == [10, 20]
    assert ax.get_yscale() == "log"
    plt.close("all")


def test_curves_smooths_with_a_moving_average():
    ax = plot.curves({"a": [0.0, 2.0, 0.0, 2.0]}, smooth=2)
    assert list(ax.get_lines()[0].get_ydata()) == [1.0, 1.0, 1.0]
    plt.close("all")


def test_curves_refuses_bad_input():
    with pytest.raises(ValueError, match="empty"):
        plot.curves({})
    with pytest.raises(ValueError, match=r"\(T, 2\)"):
        plot.curves({"a": torch.zeros(3, 3)})


@pytest.mark.parametrize("shape", [(6, 8, 8), (6, 1, 8, 8), (6, 3, 8, 8)])
def test_image_grid_accepts_grey_and_colour(shape):
    fig = plot.image_grid(torch.rand(shape), titles=list("abcdef"), ncols=4)
    assert len(fig.axes) == 8 and fig.axes[0].get_title() == "a"
    plt.close("all")


def test_image_grid_refuses_bad_shapes_and_titles():
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        plot.image_grid(torch.rand(2, 2, 8, 8))
    with pytest.raises(ValueError, match="titles"):
        plot.image_grid(torch.rand(2, 8, 8), titles=["x"])


def test_heatmap_labels_and_annotates():
    ax = plot.heatmap(torch.tensor([[0.1, 0.9], [0.5, 0.5]]), row_labels=["r1", "r2"], col_labels=["c1", "c2"])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["c1", "c2"]
    assert sorted(t.get_text() for t in ax.texts) == ["0.10", "0.50", "0.50", "0.90"]
    with pytest.raises(ValueError, match="2-D"):
        plot.heatmap(torch.zeros(3))
    with pytest.raises(ValueError, match="row_labels"):
        plot.heatmap(torch.zeros(2, 2), row_labels=["a"])
    plt.close("all")


def test_show_prints_source_outside_a_notebook(capsys):
    dlpt.show(dlpt.practice.standardize)
    assert capsys.readouterr().out.startswith("def standardize(x_train")


def test_show_refuses_objects_without_source():
    with pytest.raises(TypeError, match="cannot show"):
        dlpt.show(3)


def test_explore_draws_the_start_values_once_outside_a_notebook():
    calls = []
    plot.explore(lambda lr, depth: calls.append((lr, depth)), {"lr": [0.1, 1.0], "depth": [2, 4]},
                 start={"lr": 1.0, "depth": 2})
    assert calls == [(1.0, 2)]


def test_explore_refuses_a_start_that_is_not_an_option():
    with pytest.raises(ValueError, match=r"start\['lr'\] must be one of the options \[0.1, 1.0\]"):
        plot.explore(lambda lr: None, {"lr": [0.1, 1.0]}, start={"lr": 0.5})


def test_audio_plots_one_row_per_clip_and_checks_its_input(monkeypatch):
    shown = []
    monkeypatch.setattr(plt, "show", lambda: shown.append(plt.gcf()))
    clips = torch.sin(torch.linspace(0, 100, 800)).repeat(3, 1) * 0.5
    dlpt.plot.audio(clips, 8000, titles=["a", "b", "c"], seconds=0.05)
    axes = shown[-1].axes
    assert [ax.get_title() for ax in axes] == ["a", "b", "c"]
    assert len(axes[0].lines[0].get_xdata()) == 400  # 0.05 s at 8 kHz
    with pytest.raises(ValueError, match=r"\(T,\) or \(N, T\)"):
        dlpt.plot.audio(torch.zeros(2, 2, 5), 8000)
    with pytest.raises(ValueError, match="2 titles for 3 waveforms"):
        dlpt.plot.audio(clips, 8000, titles=["a", "b"])
    plt.close("all")
