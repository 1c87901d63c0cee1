"""Sweeps as tasks: the unit of paper-scale work, its cache key, its store and where it runs.

A :class:`Task` is a frozen config whose ``run`` returns plain data; a :class:`Sweep` yields tasks and assembles the
result a chapter draws. Results live in a :class:`Store` keyed by the task's config, the code it runs and the library
versions; :func:`compute` runs what is missing (in process or on Dask) and :func:`run` does that for a sweep. Each
chapter's module ``pml.experiments.<slug>`` has ``steps(params) -> {step name: Sweep}``, which the chapter draws from
and ``pml plan``/``pml compute`` submit. Importing this package does not import Dask."""

from pml.engine.executor import Report, TaskFailures, compute, materialize, run  # noqa: F401
from pml.engine.partial import NotComputed, is_missing  # noqa: F401
from pml.engine.store import Store  # noqa: F401
from pml.engine.tasks import Sweep, Task, graph  # noqa: F401
