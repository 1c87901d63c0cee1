"""Sweeps as tasks: the unit of paper-scale work, its cache key, its store and where it runs.

A :class:`Task` is a small frozen config whose ``run`` is a pure function returning plain data; a :class:`Sweep`
yields its tasks and assembles the result a chapter draws. Results live in a :class:`Store` keyed by the task's
config, the source of the ``pml`` modules it imports and the numerical library versions. :func:`compute` runs
what is missing, in process or on a Dask cluster; :func:`run` does that for a sweep and assembles its result.

Each chapter's module ``pml.experiments.<slug>`` has ``steps(params) -> {step name: Sweep}``, built from the
chapter's parameter values: the chapter draws from it and ``pml plan``/``pml compute`` submit from it.
:mod:`pml.engine.cluster` opens the Dask cluster of a command (``--workers``, ``--scheduler``, ``$PML_SCHEDULER``),
:mod:`pml.engine.plan` counts and prices the tasks of a set of steps, :mod:`pml.engine.archive` packs, unpacks and
verifies portable results archives. Importing this package does not import Dask.
"""

from pml.engine.executor import Report, TaskFailures, compute, materialize, run  # noqa: F401
from pml.engine.partial import NotComputed, is_missing  # noqa: F401
from pml.engine.store import Store  # noqa: F401
from pml.engine.tasks import Sweep, Task, graph  # noqa: F401
