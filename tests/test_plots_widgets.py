import pytest

from diffnb import plots, widgets


def make(title="demo", label=True):
    fig, ax = plots.figure()
    ax.plot([0, 1], [0, 1])
    ax.set_title(title)
    if label:
        ax.set_xlabel("x")
        ax.set_ylabel("y")
    return fig


def test_show_is_deterministic_and_hashes_the_png():
    a, b = plots.show(make()), plots.show(make())
    assert a.png == b.png and a.sha == b.sha
    assert a.png.startswith(b"\x89PNG") and "sha256:" + a.sha in repr(a)
    assert plots.show(make("other")).sha != a.sha


def test_show_refuses_unlabelled_axes():
    with pytest.raises(ValueError, match=r"every plotted axis needs an x and a y label"):
        plots.show(make(label=False))


def test_frame_slider_html_is_stable_and_self_contained():
    frames = {"1": plots.show(make("a")), "2": plots.show(make("b"))}
    one, two = widgets.frame_slider(frames, "step", name="demo"), widgets.frame_slider(frames, "step", name="demo")
    assert one._repr_html_() == two._repr_html_()
    html = one._repr_html_()
    assert html.count("data:image/png;base64,") == 3  # two frames in the script, the first one shown
    assert 'id="demo-range"' in html and "http" not in html


def test_frame_slider_bad_input():
    with pytest.raises(TypeError, match=r"frames must be a non-empty dict"):
        widgets.frame_slider({})
    with pytest.raises(TypeError, match=r"frames\['a'\] must be a plots.Figure"):
        widgets.frame_slider({"a": 1})
    with pytest.raises(ValueError, match=r"name must start with a letter"):
        widgets.frame_slider({"a": plots.show(make())}, name="1 bad")


# --- live: the ipywidgets explorer ------------------------------------------------------------------
@pytest.fixture
def shown(monkeypatch):
    """Capture what ``live`` displays instead of sending it to a frontend."""
    import IPython.display

    out = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: out.extend(objs))
    return out


def test_live_displays_an_interactive_widget_and_returns_none(shown):
    import ipywidgets

    calls = []

    def render(eta=0.0, steps=10):
        calls.append((eta, steps))
        return plots.show(make(f"eta={eta}, steps={steps}"))

    result = widgets.live(render, eta=(0.0, 1.0, 0.5), steps=[10, 20])
    assert result is None  # a cell ending with live(...) prints no repr
    explorer = shown[-1]
    assert isinstance(explorer, ipywidgets.interactive)
    assert {w.description for w in explorer.kwargs_widgets} == {"eta", "steps"}
    # the initial render happened once, and its figure was displayed
    assert calls == [(0.5, 10)] and isinstance(shown[0], plots.Figure)
    # moving a control renders again with the new value
    slider = next(w for w in explorer.kwargs_widgets if w.description == "eta")
    slider.value = 1.0
    assert calls[-1] == (1.0, 10) and shown[-1].title == "eta=1.0, steps=10"


def test_live_bad_input(shown):
    with pytest.raises(TypeError, match=r"render must be callable, got int"):
        widgets.live(3, eta=(0.0, 1.0))
    with pytest.raises(ValueError, match=r"controls must name at least one widget"):
        widgets.live(lambda: None)
    assert shown == []


def test_colour_bars_and_image_axes_need_no_labels():
    import numpy as np

    fig, axes = plots.figure(2)
    im = axes[0].imshow(np.eye(3))
    axes[0].set_xlabel("$x$")
    axes[0].set_ylabel("$t$")
    fig.colorbar(im, ax=axes[0])
    axes[1].imshow(np.eye(3))
    axes[1].axis("off")
    assert plots.show(fig).png  # neither the colour bar nor the axis-less image needs labels
    fig, ax = plots.figure()
    ax.imshow(np.eye(3))
    with pytest.raises(ValueError, match="needs an x and a y label"):
        plots.show(fig)


def test_show_and_density_vs_histogram_refuse_bad_input_by_name():
    import matplotlib.pyplot as plt
    import torch

    from diffnb import toy

    with pytest.raises(TypeError, match=r"fig must be a matplotlib Figure \(from plots.figure\), got NoneType"):
        plots.show(None)
    with pytest.raises(TypeError, match=r"title must be a str or None"):
        plots.show(make(), title=3)
    fig, ax = plots.figure()
    x, mix = torch.zeros(10, 1, dtype=torch.float64), toy.seed_mixture_1d()
    two_d = toy.GaussianMixture(torch.ones(1), torch.zeros(1, 2), torch.ones(1, 2))
    for call, error, message in [
        (lambda: plots.density_vs_histogram(None, x, mix), TypeError, r"ax must be a matplotlib Axes"),
        (lambda: plots.density_vs_histogram(ax, "x", mix), TypeError, r"samples must be a torch.Tensor, got str"),
        (lambda: plots.density_vs_histogram(ax, x * float("nan"), mix), ValueError, r"samples must be finite"),
        (lambda: plots.density_vs_histogram(ax, torch.zeros(10, 2, dtype=torch.float64), mix), ValueError,
         r"samples must have shape \(n,\) or \(n, 1\)"),
        (lambda: plots.density_vs_histogram(ax, x, None), TypeError, r"mixture must be a mixture with log_prob"),
        (lambda: plots.density_vs_histogram(ax, x, two_d), ValueError, r"mixture must be 1-D, got dim=2"),
        (lambda: plots.density_vs_histogram(ax, x, mix, bins=0), ValueError, r"bins must be at least 1"),
        (lambda: plots.density_vs_histogram(ax, x, mix, label=None), TypeError, r"label must be a str"),
        (lambda: plots.density_vs_histogram(ax, x, mix, x_range=1.0), TypeError, r"x_range must be a \(lo, hi\)"),
        (lambda: plots.density_vs_histogram(ax, x, mix, x_range=(1.0, 0.0)), ValueError,
         r"x_range must be finite with lo < hi"),
    ]:
        with pytest.raises(error, match=message):
            call()
    plt.close(fig)


def test_slider_html_checks_its_parts():
    f = plots.show(make())
    for args, error, message in [
        ((None, ["a"], [f]), TypeError, r"html_text must be a str, got NoneType"),
        (("<p>", "x", [f]), TypeError, r"labels must be an iterable"),
        (("<p>", ["a"], None), TypeError, r"figures must be an iterable"),
        (("<p>", [], []), ValueError, r"labels must name at least one frame"),
        (("<p>", ["a", "b"], [f]), ValueError, r"figures must hold one plots.Figure per label \(2\), got 1"),
        (("<p>", [1], [f]), TypeError, r"labels\[0\] must be a str"),
        (("<p>", ["a"], ["x"]), TypeError, r"figures\[0\] must be a plots.Figure"),
    ]:
        with pytest.raises(error, match=message):
            widgets.SliderHTML(*args)
    with pytest.raises(TypeError, match=r"start must be an int"):
        widgets.frame_slider({"a": f}, start=0.0)
    with pytest.raises(TypeError, match=r"label must be a str"):
        widgets.frame_slider({"a": f}, label=None)
