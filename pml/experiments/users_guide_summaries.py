"""Chapter 5's tables and numbers, for a build from the results store as for any other.

The summaries of :mod:`pml.experiments.users_guide` that ``book/05_users_guide.md`` shows, each returning the
:class:`pml.engine.NotComputed` it is given (a step a stored build lacks, :mod:`pml.engine.partial`) instead of failing:
a table then reads as a note, its numbers read "(not computed)" and the claims are not judged. They wrap
:mod:`pml.experiments.users_guide` rather than change it: its source is part of its tasks' cache keys."""

from __future__ import annotations

from pml.engine.partial import passes_missing
from pml.experiments import users_guide as ug

__all__ = ["claim_values", "csv_numbers", "csv_transcript", "study_numbers", "study_table"]

study_table = passes_missing(ug.study_table)
study_numbers = passes_missing(ug.study_numbers)
csv_transcript = passes_missing(ug.csv_transcript)
csv_numbers = passes_missing(ug.csv_numbers)
claim_values = passes_missing(ug.claim_values)
