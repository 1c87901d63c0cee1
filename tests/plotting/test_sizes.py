"""Tests of the figure sizes of pml.plotting: text a reader can read in the book's page (at least MIN_TEXT_PX CSS px
high in the text column of a 1280-px browser window)."""

from __future__ import annotations

import pytest

from pml import plotting
from pml.plotting import CONTENT_PX, MIN_TEXT_PX, PAGE_WIDTH, SMALL_PT


def test_page_width_shows_the_smallest_font_legibly():
    assert PAGE_WIDTH * plotting.CSS_PX_PER_IN == pytest.approx(CONTENT_PX)
    assert plotting.text_px(SMALL_PT, PAGE_WIDTH) >= MIN_TEXT_PX
    # A figure wider than the column is scaled down to it: twice as wide, half the size.
    assert plotting.text_px(SMALL_PT, 2 * PAGE_WIDTH) == pytest.approx(plotting.text_px(SMALL_PT, PAGE_WIDTH) / 2)
    # A figure narrower than the column at the saving resolution is shown at its own size.
    dpi = plotting.STYLE["savefig.dpi"]
    narrow = 0.5 * CONTENT_PX / dpi
    assert plotting.text_px(10, narrow) == pytest.approx(10 * dpi / 72)


def test_page_figure_is_as_wide_as_the_page():
    with plotting.style():
        fig, axes = plotting.page_figure(ncols=3, nrows=2, height=2.5)
    assert axes.shape == (2, 3)
    assert fig.get_figwidth() == pytest.approx(PAGE_WIDTH)
    assert fig.get_figheight() == pytest.approx(5.0)


def test_smallest_text_finds_tick_labels_legends_and_notes():
    with plotting.style():
        fig, axes = plotting.page_figure(ncols=2)
        left, right = axes[0]
        left.plot([1, 2], [3, 4], label="a curve")
        left.legend()
        px, text = plotting.smallest_text(fig)
        assert px == pytest.approx(plotting.text_px(SMALL_PT, PAGE_WIDTH))  # tick labels and the legend
        right.text(0.5, 0.5, "tiny note", fontsize=5)
        assert plotting.smallest_text(fig) == (pytest.approx(plotting.text_px(5, PAGE_WIDTH)), "tiny note")
        right.set_visible(False)  # a hidden panel shows nothing
        assert plotting.smallest_text(fig)[0] == pytest.approx(px)


def test_styled_refuses_an_illegible_figure():
    @plotting.styled
    def plot_wide():
        fig, axes = plotting.new_figure(ncols=3, width=4.0)  # 12 inches wide: scaled to 7/12 in the page
        axes[0, 0].plot([1, 2], [1, 2])
        return fig

    @plotting.styled
    def plot_small_note():
        fig, axes = plotting.page_figure()
        axes[0, 0].text(0.5, 0.5, "a note in 6 points", fontsize=6)
        return fig

    with pytest.raises(ValueError, match=r"plot_wide: text .* shows 7\.0 px high in the book's page"):
        plot_wide()
    with pytest.raises(ValueError, match="'a note in 6 points' shows 8.0 px"):
        plot_small_note()

    @plotting.styled
    def plot_fine():
        fig, axes = plotting.page_figure(ncols=2)
        axes[0, 0].plot([1, 2], [1, 2], label="x")
        plotting.figure_legend(fig, axes[0])
        return fig

    assert plotting.smallest_text(plot_fine())[0] >= MIN_TEXT_PX


def test_figure_legend_and_notes():
    with plotting.style():
        fig, axes = plotting.page_figure(ncols=2)
        for ax in axes[0]:
            ax.plot([1, 2], [1, 2], label="shared")
        axes[0, 1].plot([1, 2], [2, 1], label="right only")
        plotting.figure_legend(fig, axes[0])
        assert [t.get_text() for t in fig.legends[0].get_texts()] == ["shared", "right only"]

        plotting.figure_notes(fig, [("A", []), ("B", [])])
        assert fig.get_supxlabel() == ""  # nothing is missing: no note
        long = [f"ReLU depth {k}: widths 819, 3276, 13107, 52428 (4.5 CPU-hours)" for k in (2, 3, 4)]
        plotting.figure_notes(fig, [("Z.001", long), ("I.8.14", [])])
        note = fig.get_supxlabel()
        assert note.startswith("not computed (hollow markers):\nZ.001: ReLU depth 2: widths 819")
        assert "I.8.14" not in note
        assert max(len(line) for line in note.splitlines()) < 110  # wrapped to the figure's width
        assert " ".join(note.split()).count("CPU-hours") == 3
        assert plotting.smallest_text(fig)[0] >= MIN_TEXT_PX


def test_figure_texts_lists_what_a_reader_reads_but_tick_labels():
    with plotting.style():
        fig, axes = plotting.page_figure(ncols=2)
        axes[0, 0].plot([1, 2], [1, 2], label="a curve")
        axes[0, 0].set_title("left\npanel")
        axes[0, 1].text(0.5, 0.5, "inside")
        plotting.figure_legend(fig, axes[0])
        plotting.figure_notes(fig, [("B", ["widths 1, 2 (1 CPU-hour)"])])
        texts = plotting.figure_texts(fig)
    assert {"left panel", "inside", "a curve"} <= set(texts)
    assert any("B: widths 1, 2 (1 CPU-hour)" in t for t in texts)
    assert not any(t.replace(".", "").isdigit() for t in texts)  # no tick labels
