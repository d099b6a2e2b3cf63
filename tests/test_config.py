"""The one configuration validator: dataclasses from parsed YAML mappings, checked against type hints."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from pda_train.config import (
    DEFAULT_PRESET,
    PRESETS,
    ConfigError,
    LossWeights,
    Preset,
    Schedule,
    check_value,
    from_mapping,
)


@dataclass(frozen=True)
class Inner:
    size: int = 1
    ratio: float = 0.5

    def __post_init__(self) -> None:
        if self.size > 10:
            raise ValueError(f"size must be <= 10, got {self.size}")


@dataclass(frozen=True)
class Outer:
    inner: Inner = Inner()
    sizes: tuple[int, ...] = ()
    pair: tuple[float, float] = (0.0, 1.0)
    mode: Literal["a", "b"] = "a"
    table: dict[Literal["x", "y"], float] = field(default_factory=dict)
    path: str = ""
    flag: bool = False


def test_values_convert_by_type_hint() -> None:
    got = from_mapping(
        Outer,
        {
            "inner": {"ratio": 2},
            "sizes": [1, 2, 3],
            "pair": [1, 2.5],
            "mode": "b",
            "table": {"x": 1},
            "path": Path("/a"),
            "flag": True,
        },
    )
    assert got == Outer(Inner(1, 2.0), (1, 2, 3), (1.0, 2.5), "b", {"x": 1.0}, "/a", True)
    assert type(got.inner.ratio) is float and type(got.pair[0]) is float  # ints pass for floats, as floats
    assert from_mapping(Outer, None) == Outer()


def test_nested_sections_override_their_base() -> None:
    base = Outer(inner=Inner(size=7, ratio=0.1), mode="b")
    got = from_mapping(Outer, {"inner": {"ratio": 0.2}}, base=base)
    assert got == Outer(inner=Inner(size=7, ratio=0.2), mode="b")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"nope": 1}, "top.nope: unknown key (known: inner, sizes, pair, mode, table, path, flag)"),
        ({"inner": 3}, "top.inner: expected a mapping, got int"),
        ({"inner": {"size": 11}}, "top.inner: size must be <= 10, got 11"),
        ({"inner": {"size": True}}, "top.inner.size: expected int, got bool (True)"),
        ({"sizes": [1, "2"]}, "top.sizes.1: expected int, got str ('2')"),
        ({"pair": [1.0]}, "top.pair: expected 2 values, got 1 ([1.0])"),
        ({"pair": "0.5"}, "top.pair: expected a list, got str ('0.5')"),
        ({"mode": "c"}, "top.mode: 'c' is not one of a, b"),
        ({"table": {"z": 1}}, "top.table.z: 'z' is not one of x, y"),
        ({"table": {"x": "1"}}, "top.table.x: expected float, got str ('1')"),
        ({"flag": 1}, "top.flag: expected bool, got int (1)"),
    ],
)
def test_errors_name_the_dotted_key(value: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        from_mapping(Outer, value, "top")
    assert str(err.value) == message


def test_top_level_errors_have_no_leading_dot() -> None:
    with pytest.raises(ConfigError, match=r"^nope: unknown key"):
        from_mapping(Outer, {"nope": 1})
    with pytest.raises(ConfigError, match=r"^expected a mapping, got list$"):
        from_mapping(Outer, [1])
    with pytest.raises(ConfigError, match=r"^x: expected int, got float \(1\.5\)$"):
        check_value("x", 1.5, int)


def test_preset_names_its_base() -> None:
    assert Preset.from_dict({}) == PRESETS[DEFAULT_PRESET]
    paper = Preset.from_dict({"name": "paper", "losses": {"cam": 0}})
    assert paper.model == PRESETS["paper"].model and paper.losses == LossWeights(cam=0.0)
    assert Preset.from_dict(paper.to_dict()) == paper
    tiny = Preset.from_dict({"schedule": {"iterations": [1, 2, 3]}})
    assert tiny.schedule == Schedule(**{**PRESETS["tiny"].schedule.__dict__, "iterations": (1, 2, 3)})
    with pytest.raises(ConfigError, match=r"^name: expected str, got int \(5\)$"):
        Preset.from_dict({"name": 5})
