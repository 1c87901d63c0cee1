"""One module per chapter: its tasks and sweeps (:mod:`pml.engine`), its result classes and ``steps(params)``.

``steps`` builds every expensive step of the chapter from the chapter's parameter values; the chapter runs each with
:func:`pml.engine.run`, and ``pml plan``/``pml compute`` submit the same tasks to a cluster."""
