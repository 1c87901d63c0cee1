"""The one table type (pml.experiments.tables.Table), the chapters' glue helper and the self-applying plot style."""

from __future__ import annotations

import sys
import types

import pytest

from pml import plotting
from pml.book import numbers
from pml.experiments.tables import MarkdownText, Table


def test_html_escapes_headings_and_cells_and_keeps_the_css_class():
    table = Table(("a<b", "c"), [("x & y", '"q"'), ("<td>", "2")], css_class="pml-claims")
    out = table._repr_html_()
    assert out.startswith('<table class="pml-claims"><thead>')
    assert "<th>a&lt;b</th>" in out and "<td>x &amp; y</td>" in out and "<td>&lt;td&gt;</td>" in out
    assert "&quot;q&quot;" in out and out.count("<tr>") == 3
    assert Table(("a",), [("1",)]).html().startswith('<table class="pml-table">')


def test_markdown_is_a_pipe_table_with_escaped_pipes():
    table = Table(("problem", "`method`"), [("x²", "**best**"), ("|D|", "")])
    lines = table._repr_markdown_().splitlines()
    assert lines == ["| problem | `method` |", "|---|---|", "| x² | **best** |", r"| \|D\| |  |"]


def test_text_aligns_columns_under_a_rule():
    table = Table(("name", "value"), [("a", "1.5"), ("longer name", "2")])
    lines = str(table).splitlines()
    assert lines[0] == "name         value"
    assert lines[1] == "-----------  -----"
    assert lines[2] == "a            1.5"
    assert lines[3] == "longer name  2"
    assert repr(table) == str(table)
    starts = {line.index(cell) for line, cell in zip(lines[2:], ("1.5", "2"))}
    assert starts == {lines[0].index("value")}


def test_cells_become_strings_and_a_ragged_row_is_an_error():
    assert Table(("n",), [(3,)]).rows == (("3",),)
    with pytest.raises(ValueError, match="one per column"):
        Table(("a", "b"), [("1",)])


def test_markdown_text_is_shown_as_is():
    block = MarkdownText("```text\n$ pml fit\n```")
    assert block._repr_markdown_() == str(block) == "```text\n$ pml fit\n```"


def test_claim_table_renders_through_table():
    from pml.book import claims

    out = claims.ClaimTable([])._repr_html_()
    assert out == Table(claims.ClaimTable.columns, [], css_class="pml-claims").html()


def test_glue_all_glues_every_value_with_prefix_and_conversion(monkeypatch):
    calls = []
    fake = types.ModuleType("myst_nb")
    fake.glue = lambda name, value, display=True: calls.append((name, value, display))
    monkeypatch.setitem(sys.modules, "myst_nb", fake)
    numbers.glue_all({"a": 1, "b": 2.5}, "ch_")
    numbers.glue_all({"t": 7200}, "cost_", lambda v: v / 3600)
    assert calls == [("ch_a", 1, False), ("ch_b", 2.5, False), ("cost_t", 2.0, False)]


def test_figures_made_outside_a_style_block_get_the_book_style(tmp_path, monkeypatch):
    import matplotlib

    from pml import paths

    monkeypatch.setitem(matplotlib.rcParams, "axes.grid", False)
    monkeypatch.setitem(matplotlib.rcParams, "legend.frameon", True)

    @plotting.styled
    def plot_example():
        fig, axes = plotting.new_figure()
        axes[0, 0].plot([0, 1], [0, 1], label="line")
        axes[0, 0].legend()
        return fig

    fig = plot_example()
    ax = fig.axes[0]
    assert not ax.spines["top"].get_visible() and not ax.spines["right"].get_visible()
    assert any(line.get_visible() for line in ax.xaxis.get_gridlines())
    assert not ax.get_legend().get_frame_on()
    assert matplotlib.rcParams["axes.grid"] is False  # nothing leaks out of the figure's construction

    monkeypatch.setattr(paths, "figures_dir", lambda profile: tmp_path / profile)
    out = plotting.savefig(fig, "fig_example", "smoke")
    from PIL import Image

    width, _ = Image.open(out).size
    assert width == pytest.approx(4.2 * plotting.STYLE["savefig.dpi"], abs=2)


def test_every_book_figure_function_is_styled():
    import importlib
    import inspect

    for name in ("beyond", "introduction", "nonlinear", "optimization", "piecewise_linear", "users_guide"):
        module = importlib.import_module(f"pml.plotting.{name}")
        plots = [f for n, f in vars(module).items() if n.startswith("plot_") and inspect.isfunction(f)]
        assert plots, name
        unstyled = [f.__name__ for f in plots if getattr(f, "__wrapped__", None) is None]
        assert not unstyled, f"pml.plotting.{name}: not decorated with @styled: {unstyled}"
