"""What the book runner tells the kernel of the chapter it executes, through one environment variable.

Besides the parameter values papermill injects: which of them came from the command line (``pml run -p``, named in the
claim table), every parameter value of the run, and the execution settings ``threads`` and ``device`` (which change
where and how fast tasks run, never their results or keys). Outside the runner :func:`current` gives the defaults: no
overrides, one thread, the CPU."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

RUN_ENV = "PML_RUN"
EXECUTION_DEFAULTS = {"threads": 1, "device": "cpu"}


@dataclasses.dataclass(frozen=True)
class RunContext:
    """One chapter run as the runner describes it to the kernel."""

    profile: str | None = None
    run: str | None = None
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    parameters: dict[str, Any] = dataclasses.field(default_factory=dict)
    threads: int = EXECUTION_DEFAULTS["threads"]
    device: str = EXECUTION_DEFAULTS["device"]

    def execution(self) -> dict[str, Any]:
        """The execution settings, ``{"threads": ..., "device": ...}``."""
        return {"threads": self.threads, "device": self.device}

    def to_env(self) -> str:
        return json.dumps(dataclasses.asdict(self))


def current() -> RunContext:
    """The context the runner set for this process (``$PML_RUN``), or the defaults outside the runner."""
    raw = os.environ.get(RUN_ENV)
    return RunContext(**json.loads(raw)) if raw else RunContext()


def plain(value: Any) -> Any:
    """``value`` as plain Python data, recursively (papermill would inject a tuple as its text)."""
    if hasattr(value, "tolist") and type(value).__module__ == "numpy":
        return plain(value.tolist())
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def show(value: Any) -> str:
    """A value for a message: the Python literal of :func:`plain` (``3.0``, never ``np.float64(3.0)``)."""
    return repr(plain(value))


def describe_overrides(overrides: dict[str, Any]) -> str:
    """``name=value, ...`` of command-line overrides, values as Python literals."""
    return ", ".join(f"{name}={show(value)}" for name, value in overrides.items())
