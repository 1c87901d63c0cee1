"""One module per chapter: frozen ``Config`` dataclasses and pure ``run(cfg) -> Result`` functions.

Chapters call them through :func:`pml.cache.load_or_run`, so a re-run with unchanged inputs is instant.
"""
