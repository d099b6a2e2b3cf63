"""The stage plan as pure functions: every plan's stages, their portrait-domain weights, the phases; and the
step benchmark timing the trainer's own step."""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import pytest
from conftest import REPO

from pda_data.stream.domains import PORTRAIT_DOMAINS
from pda_train.manifest import Experiment, experiment_from_dict
from pda_train.training import steps
from pda_train.training.plan import (
    STAGES,
    aux_phase,
    gan_phase,
    learning_rates,
    plan_stages,
    stage_weights,
    stream_seed,
)


def _exp(plan: str = "full", **data: Any) -> Experiment:
    return experiment_from_dict(
        {
            "data": {"shards": "/x", **data},
            "plan": plan,
            "schedule": {"iterations": [10, 6, 4]},
            "aux": {"detector_steps": 3, "classifier_steps": 2},
            "stage1": {"ldn_only": 0.2, "psn_only": 0.3},
        }
    )


def test_paper_stage_mixes() -> None:
    assert stage_weights(0, 0.5) == {}
    assert stage_weights(1, 0.5) == {"coser": 1.0}
    assert stage_weights(3, 0.0) == pytest.approx({"coser": 2 / 3, "human": 1 / 3})  # no zero-weight domain
    assert stage_weights(2, 0.25) == {"coser": 0.75, "aug": 0.25}
    assert stage_weights(3, 0.5) == pytest.approx({"coser": 1 / 3, "aug": 1 / 3, "human": 1 / 3})
    with pytest.raises(ValueError, match="data stage must be"):
        stage_weights(4, 0.5)


_AUG = 0.4  # a manifest value other than the default, so the plan must read it from the experiment


@pytest.mark.parametrize(
    ("plan", "expected"),
    [
        (
            "full",
            {
                "aux": {},
                "1": {"coser": 1.0},
                "2": {"coser": 1 - _AUG, "aug": _AUG},
                "3": {"coser": (1 - _AUG) * 2 / 3, "aug": _AUG * 2 / 3, "human": 1 / 3},
            },
        ),
        ("coser", {"aux": {}, "1": {"coser": 1.0}, "2": {"coser": 1.0}, "3": {"coser": 1.0}}),
        (
            "coser_aug",
            {"aux": {}, "1": {"coser": 1.0}, "2": {"coser": 1 - _AUG, "aug": _AUG},
             "3": {"coser": 1 - _AUG, "aug": _AUG}},
        ),
        (
            "coser_human",
            {"aux": {}, "1": {"coser": 1.0}, "2": {"coser": 1.0}, "3": {"coser": 2 / 3, "human": 1 / 3}},
        ),
        ("baseline", {"aux": {}, "1": {"human": 1.0}, "2": {"human": 1.0}, "3": {"human": 1.0}}),
        (
            "single_stage",
            {"aux": {}, "1": {"coser": (1 - _AUG) * 2 / 3, "aug": _AUG * 2 / 3, "human": 1 / 3}},
        ),
    ],
)
def test_every_plan_fills_its_stage_weights(plan: str, expected: dict[str, dict[str, float]]) -> None:
    got = plan_stages(_exp(plan, aug_prob=_AUG))
    assert [s.name for s in got] == list(expected)
    for stage in got:
        assert stage.weights == pytest.approx(expected[stage.name])
        assert set(stage.weights) <= set(PORTRAIT_DOMAINS)
    assert [s.human_full_losses for s in got] == [plan == "baseline" and s.name != "aux" for s in got]
    # Every Table 4 data row runs the same schedule as full: the three stages' steps, back to back.
    segments = [k for s in got for k in s.segments]
    assert segments == [1, 2, 3] and sum(s.steps for s in got if s.name != "aux") == 10 + 6 + 4


@pytest.mark.parametrize("plan", ["full", "coser", "coser_aug", "coser_human", "baseline", "single_stage"])
def test_every_plan_has_fulls_phases_and_learning_rates(plan: str) -> None:
    # Step by step over the whole run, every plan trains in the same phase at the same rates as full.
    def trace(name: str) -> list[tuple[str, tuple[float, float]]]:
        exp = _exp(name)
        return [(gan_phase(s, k, exp, True), learning_rates(s, k, exp))
                for s in plan_stages(exp) if s.name != "aux" for k in range(s.steps)]

    got, full = trace(plan), trace("full")
    assert got == full and len(got) == 20
    sc = _exp().preset.schedule
    assert full[0] == ("ldn", (sc.lr_stage1, sc.lr_stage1)) and full[10] == ("joint", (sc.lr_ldn, sc.lr_psn))
    assert full[16][1] == (sc.lr_ldn, sc.lr_psn)
    assert full[19][1] == pytest.approx((sc.lr_ldn / 4, sc.lr_psn / 4))  # stage 3: step 3 of 4, linear decay


def test_manifest_weights_replace_a_stage_mix_only() -> None:
    got = {s.name: s.weights for s in plan_stages(_exp(weights={"3": {"human": 2.0}}))}
    assert got["3"] == {"human": 2.0} and got["2"] == {"coser": 0.5, "aug": 0.5}


def test_phases_and_seeds_are_pure_functions_of_the_step() -> None:
    exp = _exp()
    s1, s2 = (s for s in plan_stages(exp) if s.name in ("1", "2"))
    assert [gan_phase(s1, k, exp, True) for k in range(10)] == ["ldn"] * 2 + ["psn"] * 3 + ["joint"] * 5
    assert [gan_phase(s1, k, exp, False) for k in range(10)] == ["psn"] * 3 + ["joint"] * 7
    assert {gan_phase(s2, k, exp, True) for k in range(6)} == {"joint"}
    assert [aux_phase(k, exp) for k in range(7)] == ["detector"] * 3 + ["structure"] * 2 + ["highlight"] * 2
    seeds = {stream_seed(1, stage, step, rank) for stage in STAGES for step in (0, 5) for rank in (0, 1)}
    assert len(seeds) == 16 and stream_seed(1, "2", 5, 0) == stream_seed(1, "2", 5, 0)


def test_bench_step_times_the_trainers_gan_step(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    spec = importlib.util.spec_from_file_location("bench_step", REPO / "tools" / "bench_step.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    calls = []
    real = steps.gan_step

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[6] if len(args) > 6 else kwargs.get("phase"))
        return real(*args, **kwargs)

    monkeypatch.setattr(steps, "gan_step", counted)
    bench.main(["--sizes", "128", "--steps", "1", "--warmup", "1", "--blocks", "1", "--channels", "4"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # One warm-up, one timed and one peak-memory step, each the trainer's own step.
    assert calls == ["joint", "joint", "joint"]
    assert 0 < result["peak_mem_gb_128"] < 1 and result["baseline_peak_mem_gb_128"] > 0
    assert result["ours"] == "pda_train.training.steps.gan_step"
    for key in ("ratio_128", "ours_s_128", "ugatit_s_128", "seconds_128", "baseline_seconds_128"):
        assert result[key] > 0
    assert result["ratio_128"] == pytest.approx(result["ours_s_128"] / result["ugatit_s_128"], rel=0.01)
