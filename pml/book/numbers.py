"""Numbers a chapter's text shows: glued under a prefix, so ``{glue:text}`pl_1a_n_train``` reads the measured value."""

from __future__ import annotations

from typing import Any, Mapping


def glue_all(mapping: Mapping[str, Any], prefix: str = "", convert=None) -> None:
    """Glue every value of ``mapping`` under ``prefix + key`` for ``{glue:text}`` (not displayed).

    Parameters
    ----------
    mapping : Mapping[str, Any] or pml.engine.NotComputed
        Names and values, as the experiments' ``*_numbers`` summaries return them; a summary of a step a stored
        build lacks (a NotComputed) glues nothing, and the text's values it would have set read "(not computed)".
    prefix : str, optional
        Prepended to each key (the chapter's glue namespace, such as ``"pl_"``).
    convert : callable, optional
        Applied to each value before it is glued (``float``, or a change of unit); not to a value a stored build
        lacks, which is glued as it is and reads "(not computed)" in the text.
    """
    from myst_nb import glue

    from pml.engine.partial import is_missing

    if is_missing(mapping):  # a summary of a step a stored build lacks: its keys read "(not computed)" in the text
        return
    for key, value in mapping.items():
        glue(f"{prefix}{key}", value if convert is None or is_missing(value) else convert(value), display=False)
