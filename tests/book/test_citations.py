"""The book and the code cite only what a reader can open (style guide, "Citations").

A reader has the paper, the authors' public code (github.com/ejmichaud/precision-ml), published literature and this
repository. Internal working documents (a reproduction spec with its numbered pitfalls, research notes on methods)
and the numbers of the project's issues are none of these, so a reference to them fails here: state the fact
itself, or cite the paper (section, figure, equation), a file of the authors' code, a publication or a page of this
book (book/appendix_discrepancies.md lists where the paper and its code disagree).
"""

from __future__ import annotations

import re

from pml import paths

FORBIDDEN = re.compile(
    r"spec\s*§"  # "spec §11"
    r"|spec\s+pitfall"  # "spec pitfall 13"
    r"|\bspec\s+fig"  # "spec Fig. 7"
    r"|\bthe\s+spec\b"  # "the spec reports"
    r"|pitfalls?\s*\d"  # "pitfall 6", "pitfalls 14-16"
    r"|reproduction[- ]spec"  # "reproduction-spec", "reproduction spec"
    r"|precision-methods"  # the methods notes
    r"|\bissues?\s*#?\s*\d"  # "issue 6", "issue #6"
    r"|\bthe\s+issue(?:'s|:|\s+asks)",  # "the target", "the issue asks"
    re.IGNORECASE,
)

# References inside string literals that the code uses (messages, values): the results store
# keys a task by its modules' code, docstrings and comments excluded, so editing these would invalidate stored
# results. They wait for the next change to that code. Each entry: (path, the exact text on the offending line).
# Remove an entry together with its text; the test fails on a stale entry.
KNOWN_IN_CODE_LITERALS: set[tuple[str, str]] = set()


def scanned_files():
    root = paths.repo_root()
    files = sorted((root / "book").glob("*.md"))
    files += sorted(p for p in (root / "pml").rglob("*.py") if "__pycache__" not in p.parts)
    files += sorted((root / "pml" / "book" / "claimsets").glob("*.yaml"))
    files += [root / "README.md", root / "CONTRIBUTING.md"]
    return [p for p in files if p.exists()]


def find_hits():
    """(path, line number, matched text, stripped line) for every forbidden reference."""
    root = paths.repo_root()
    hits = []
    for path in scanned_files():
        rel = path.relative_to(root).as_posix()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for match in FORBIDDEN.finditer(line):
                hits.append((rel, number, match.group(0), line.strip()))
    return hits


def _excepted(hit) -> bool:
    return (hit[0], hit[3]) in KNOWN_IN_CODE_LITERALS


def test_the_scan_covers_book_code_claims_and_readme():
    rel = {p.relative_to(paths.repo_root()).as_posix() for p in scanned_files()}
    assert {"README.md", "CONTRIBUTING.md", "pml/book/claims.py", "pml/book/claimsets/06_beyond.yaml",
            "book/appendix_discrepancies.md"} <= rel


def test_the_pattern_catches_what_it_should_and_nothing_else():
    for bad in ("spec §11", "spec pitfall 13", "spec Fig. 7", "the spec reports", "(pitfall 6)", "pitfalls 14-16",
                "reproduction-spec §1", "Reproduction spec", "precision-methods §5(a)1", "issue 6 target",
                "Issue #12", "issues 3", "the issue's criterion", "the issue asks for"):
        assert FORBIDDEN.search(bad), bad
    for fine in ("spec.n_params", "for spec in layout", "a MethodSpec", "Section 4.2", "§1.3", "spectrum",
                 "issues a warning", "the issue of precision", "#4c72b0"):
        assert not FORBIDDEN.search(fine), fine


def test_no_reference_to_documents_readers_cannot_open():
    hits = find_hits()
    left = [hit for hit in hits if not _excepted(hit)]
    report = "\n".join(f"{path}:{number}: {found!r} in: {line}" for path, number, found, line in left)
    assert not left, f"cite the paper, the authors' code, the literature or a book page instead:\n{report}"
    stale = KNOWN_IN_CODE_LITERALS - {(hit[0], hit[3]) for hit in hits}
    assert not stale, f"stale exceptions, remove them from KNOWN_IN_CODE_LITERALS: {sorted(stale)}"
