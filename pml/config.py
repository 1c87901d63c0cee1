"""Frozen dataclass configs with a stable hash (tasks and sweeps are configs, see :mod:`pml.engine`)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, TypeVar

T = TypeVar("T", bound="Config")


def _canonical(value: Any) -> Any:
    """A JSON-able, order-stable form of a config value."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, float):
        return float.hex(value)  # exact: 0.1 and 0.1000000000000001 hash differently
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if hasattr(value, "item"):  # numpy scalar
        return _canonical(value.item())
    raise TypeError(f"config values must be plain data, got {type(value).__name__}: {value!r}")


@dataclasses.dataclass(frozen=True)
class Config:
    """Base class: subclasses are frozen dataclasses of plain values (numbers, strings, tuples)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def stable_hash(self) -> str:
        """SHA-256 of the canonical JSON of the class name and every field."""
        payload = json.dumps({"type": type(self).__name__, "fields": _canonical(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()

    @classmethod
    def from_dict(cls: type[T], values: dict[str, Any]) -> T:
        """Build a config; unknown keys are an error that names the valid ones."""
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - valid)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; valid: {sorted(valid)}")
        converted = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**converted)
