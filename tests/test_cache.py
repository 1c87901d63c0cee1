from dataclasses import dataclass

import pytest

from pml import cache
from pml.config import Config

CALLS = []


@dataclass(frozen=True)
class Cfg(Config):
    x: int = 1


def square(cfg: Cfg) -> int:
    CALLS.append(cfg.x)
    return cfg.x**2


def test_round_trip_and_reuse(tmp_path):
    CALLS.clear()
    assert cache.load_or_run(square, Cfg(x=3), root=tmp_path) == 9
    assert cache.load_or_run(square, Cfg(x=3), root=tmp_path) == 9
    assert CALLS == [3]
    assert cache.load_or_run(square, Cfg(x=4), root=tmp_path) == 16
    assert CALLS == [3, 4]
    assert cache.load_or_run(square, Cfg(x=3), root=tmp_path, force=True) == 9
    assert CALLS == [3, 4, 3]
    assert not list(tmp_path.rglob("*.tmp"))


def test_source_change_is_a_new_key(tmp_path, monkeypatch):
    first = cache.entry_path(square, Cfg(), tmp_path)
    monkeypatch.setattr(cache, "source_hash", lambda: "changed")
    assert cache.entry_path(square, Cfg(), tmp_path) != first


def test_mismatched_entry_is_not_served(tmp_path):
    CALLS.clear()
    cache.load_or_run(square, Cfg(x=5), root=tmp_path)
    path = cache.entry_path(square, Cfg(x=5), tmp_path)
    import pickle

    stored = pickle.loads(path.read_bytes())
    stored["meta"]["source_hash"] = "stale"
    stored["result"] = -1
    path.write_bytes(pickle.dumps(stored))
    assert cache.load_or_run(square, Cfg(x=5), root=tmp_path) == 25
    assert CALLS == [5, 5]


def test_config_type_is_checked(tmp_path):
    with pytest.raises(TypeError, match="Config"):
        cache.load_or_run(square, {"x": 1}, root=tmp_path)
