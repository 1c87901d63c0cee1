from dataclasses import dataclass

import pytest

from pml.config import Config


@dataclass(frozen=True)
class Cfg(Config):
    n: int = 3
    lr: float = 1e-3
    sizes: tuple[int, ...] = (1, 2)
    name: str = "x"


def test_hash_is_stable_and_sensitive_to_every_field():
    base = Cfg().stable_hash()
    assert base == Cfg().stable_hash()
    assert len({base, Cfg(n=4).stable_hash(), Cfg(lr=1e-4).stable_hash(), Cfg(sizes=(1, 3)).stable_hash(),
                Cfg(name="y").stable_hash()}) == 5


def test_float_hash_is_exact():
    assert Cfg(lr=0.1).stable_hash() != Cfg(lr=0.1 + 1e-17 * 8).stable_hash()


def test_from_dict_round_trip_and_unknown_field():
    cfg = Cfg(n=7, sizes=(4,))
    assert Cfg.from_dict(cfg.to_dict() | {"sizes": [4]}) == cfg
    with pytest.raises(ValueError, match="unknown Cfg field.*'bogus'.*valid"):
        Cfg.from_dict({"bogus": 1})


def test_non_plain_values_are_rejected():
    @dataclass(frozen=True)
    class Bad(Config):
        obj: object = object()

    with pytest.raises(TypeError, match="plain data"):
        Bad().stable_hash()
