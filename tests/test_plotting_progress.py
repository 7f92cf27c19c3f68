"""Shared figure style and progress output."""

import io

import numpy as np

from neurodag.plotting import figure, save_figure
from neurodag.progress import progress


def test_save_figure_writes_a_png(tmp_path):
    fig, ax = figure()
    ax.imshow(np.eye(4))
    ax.set(xlabel="neuron", ylabel="neuron", title="identity")
    path = save_figure(fig, tmp_path / "deep" / "fig.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["fig.png"]


def test_progress_counts_to_total(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    assert list(progress(range(3), desc="worms", unit="worm")) == [0, 1, 2]
    assert "worms" in stream.getvalue()
    assert "3/3" in stream.getvalue()
