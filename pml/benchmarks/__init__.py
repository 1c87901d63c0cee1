"""Benchmarks that print figures (speed and memory targets live here, never in timed tests).

Each module has ``run(...) -> dict`` (the measured figures) and ``format(result) -> str``; ``pml bench NAME`` runs one
and prints it."""
