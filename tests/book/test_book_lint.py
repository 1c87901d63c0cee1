"""Structure rules for chapters (style guide §5.8): checked statically, in milliseconds."""

import ast
import re
import subprocess
import sys

import jupytext
import pytest

from pml import paths
from pml.book import params

CHAPTERS = params.chapters()
ALLOWED_IMPORTS = ("pml", "numpy", "myst_nb")
FORBIDDEN_CALLS = {"seed", "manual_seed", "chdir", "set_default_dtype", "set_default_device"}


def code_cells(stem):
    return [c for c in jupytext.read(params.source_path(stem), fmt="md:myst").cells if c.cell_type == "code"]


def test_no_notebooks_under_book():
    assert not list(paths.book_dir().rglob("*.ipynb"))


@pytest.mark.parametrize("stem", CHAPTERS)
def test_header_keeps_tags(stem):
    text = params.source_path(stem).read_text()
    assert "cell_metadata_filter" not in text.split("---", 2)[1]
    assert "kernelspec" in text


@pytest.mark.parametrize("stem", CHAPTERS)
def test_parameters_cell_first_and_literal(stem):
    defaults = params.chapter_parameters(stem)  # raises on a missing tag or a non-literal
    assert defaults["profile"] == "paper", "defaults are the paper's settings"


@pytest.mark.parametrize("stem", CHAPTERS)
def test_papermill_reads_every_parameter(stem):
    """papermill parses each line of the parameters cell itself (a comment holding "=" defeats it and it then calls
    an injected parameter unknown): every parameter must come out, under its name."""
    from papermill.translators import PythonTranslator

    defaults = params.chapter_parameters(stem)
    source = next(c.source for c in code_cells(stem) if "parameters" in c.metadata.get("tags", []))
    assert [p.name for p in PythonTranslator.inspect({"source": source})] == list(defaults)


@pytest.mark.parametrize("stem", CHAPTERS)
def test_chapter_code_defines_nothing_and_stays_small(stem):
    cells = code_cells(stem)
    assert len(cells) <= 20
    for index, cell in enumerate(cells):
        source = cell.source
        assert not re.search(r"^\s*[!%]", source, re.M), "no shell escapes or magics"
        assert "sys.path" not in source and not re.search(r"[\"']/(home|root|tmp|Users|work)/", source)
        tree = ast.parse(source)
        for node in ast.walk(tree):
            assert not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)), "define in pml"
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                assert all(n.split(".")[0] in ALLOWED_IMPORTS for n in names), names
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                assert node.func.attr not in FORBIDDEN_CALLS, f"{node.func.attr} in {stem}"
        if index > 0:  # the parameters cell holds one literal per line
            assert len(source.strip().splitlines()) <= 12, f"a code cell of {stem} is longer than ~10 lines"


def _glue_key_patterns(stem):
    patterns = []
    for cell in code_cells(stem):
        for node in ast.walk(ast.parse(cell.source)):
            glue_all = isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "glue_all"
            if glue_all and len(node.args) >= 2:  # params.glue_all(mapping, prefix): any key after the prefix
                node = ast.Call(func=ast.Name("glue"), args=[ast.JoinedStr([node.args[1], ast.Name("key")])],
                                keywords=[])
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "glue" and node.args:
                key = node.args[0]
                if isinstance(key, ast.Constant):
                    patterns.append(re.escape(key.value))
                elif isinstance(key, ast.JoinedStr):
                    parts = [v for p in key.values for v in (p.values if isinstance(p, ast.JoinedStr) else [p])]
                    patterns.append("".join(re.escape(p.value) if isinstance(p, ast.Constant) else ".+" for p in parts))
    return patterns


@pytest.mark.parametrize("stem", CHAPTERS)
def test_every_glue_reference_is_glued(stem):
    text = params.source_path(stem).read_text()
    refs = set(re.findall(r"\{glue:(?:text|figure|md|math|any)\}`([^`:]+)", text))
    refs |= set(re.findall(r"```\{glue:figure\}\s+(\S+)", text))
    patterns = _glue_key_patterns(stem)
    for ref in refs:
        assert any(re.fullmatch(p, ref) for p in patterns), f"{stem}: {{glue}} reference {ref!r} is never glued"


def test_figure_names_are_unique_across_the_book():
    names = []
    for stem in CHAPTERS:
        names += re.findall(r"(?:publish|savefig)\([^\n]*?\"(fig\d\d[a-z]?_[a-z0-9_]+)\"", params.source_path(stem).read_text())
    assert len(names) == len(set(names)), names


def _pml_modules():
    root = paths.repo_root() / "pml"
    return sorted(
        "pml." + ".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        for p in root.rglob("*.py")
    )


def test_pml_imports_have_no_side_effects():
    probe = (
        "import importlib, json, sys, numpy as np, matplotlib, torch\n"
        "before = (dict(matplotlib.rcParams), np.random.get_state()[1].tolist(), str(torch.get_default_dtype()), "
        "torch.random.get_rng_state().tolist())\n"
        "for name in sys.argv[1:]:\n"
        "    importlib.import_module(name)\n"
        "after = (dict(matplotlib.rcParams), np.random.get_state()[1].tolist(), str(torch.get_default_dtype()), "
        "torch.random.get_rng_state().tolist())\n"
        "print(json.dumps([b == a for b, a in zip(before, after)]))\n"
    )
    modules = [m for m in _pml_modules() if m not in ("pml.cli",)]
    proc = subprocess.run([sys.executable, "-c", probe, *modules], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[true, true, true, true]"
