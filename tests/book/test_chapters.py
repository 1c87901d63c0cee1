"""Every chapter executed with papermill at the smoke profile, in book order (the report last)."""

import json
import re

import nbformat
import pytest

from pml import paths
from pml.book import claims, params, runner

PROFILE = "smoke"


@pytest.mark.chapters
@pytest.mark.parametrize("stem", params.chapters())
def test_chapter_executes_at_smoke(stem):
    result = runner.run_chapter(stem, PROFILE)
    nb = nbformat.read(result.notebook, as_version=4)
    assert nb.metadata["papermill"]["parameters"]["profile"] == PROFILE
    declared = claims.for_chapter(stem)
    if declared:
        payload = json.loads((paths.claims_dir(PROFILE) / f"{stem}.json").read_text())
        assert set(payload["measured"]) == {c.id for c in declared}
        for row in payload["verdicts"]:
            assert row["verdict"] in (claims.REPRODUCED, claims.NOT_REPRODUCED, claims.NOT_CHECKED)
    source = params.source_path(stem).read_text()
    for name in re.findall(r"(?:publish|savefig)\([^\n]*?\"(fig\d\d[a-z]?_[a-z0-9_]+)\"", source):
        assert (paths.figures_dir(PROFILE) / f"{name}.png").exists(), f"{stem}: figure {name}.png was not written"
