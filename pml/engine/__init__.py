"""Sweeps as tasks: the unit of paper-scale work, its cache key, its store and where it runs.

A :class:`Task` is a small frozen config whose ``run`` is a pure function returning plain data; a :class:`Sweep`
yields its tasks and assembles the result a chapter draws. Results live in a :class:`Store` keyed by the task's
config, the source of the ``pml`` modules it imports and the numerical library versions. :func:`compute` runs
what is missing, in process or on a Dask cluster; :func:`run` does that for a sweep and assembles its result.

Each chapter's module ``pml.experiments.<slug>`` has ``steps(params) -> {step name: Sweep}``, built from the
chapter's parameter values: the chapter draws from it and ``pml plan``/``pml compute`` submit from it.
Importing this package does not import Dask.
"""

from pml.engine.executor import TaskFailures, compute, run  # noqa: F401
from pml.engine.store import Store  # noqa: F401
from pml.engine.tasks import Sweep, Task  # noqa: F401
