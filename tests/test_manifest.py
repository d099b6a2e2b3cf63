"""Experiment manifests: shipped files validate, bad ones fail naming file and key, plans map to stages."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from shard_world import anime_annotations, portrait_folder, synth_folder
from typer.testing import CliRunner

from pda_data.shards.pack import pack
from pda_data.synthesis.options import FusionOptions
from pda_train.cli import app
from pda_train.config import DEFAULT_PRESET, get_preset
from pda_train.manifest import (
    MANIFEST_KEYS,
    DataSpec,
    Experiment,
    ExperimentError,
    experiment_from_dict,
    load_experiment,
    write_resolved,
)
from pda_train.training.plan import aux_phase, plan_stages, stage1_phase
from pda_train.training.tracking import read_metrics

MANIFESTS = Path(__file__).resolve().parents[1] / "manifests"


def _write(tmp_path: Path, data: object, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


SHARDS = {"shards": "s"}
S = {"data": SHARDS}  # the one required key
SHIPPED = sorted(p.name for p in MANIFESTS.glob("*.yaml"))


def test_every_shipped_manifest_is_tested() -> None:
    assert {"demo.yaml", "celebahq2anime.yaml", "selfie2cartoon.yaml", "ablation-demo.yaml"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_manifests_validate(name: str) -> None:
    exp = load_experiment(MANIFESTS / name)
    assert exp.source.endswith(name)
    assert Path(exp.data.shards).is_absolute()
    if name.startswith(("celebahq", "selfie")):
        s = exp.preset.schedule
        assert exp.preset.name == "paper" and s.batch_size == 1
        assert tuple(s.iterations) == (500_000, 250_000, 250_000)
        assert (s.lr_stage1, s.lr_ldn, s.lr_psn, s.decay) == (1e-4, 1e-5, 1e-4, "linear")
        w = exp.preset.losses
        assert (w.ldn_cycle, w.ldn_adv, w.psn_cycle, w.psn_adv, w.cam, w.structure, w.highlight) == (
            100,
            1,
            10,
            1,
            1000,
            1,
            1,
        )
    if name == "ablation-demo.yaml":
        assert exp.preset.model.use_ldn is False


def test_demo_manifest_stays_small() -> None:
    exp = load_experiment(MANIFESTS / "demo.yaml")
    assert exp.preset.name == "tiny"
    total = sum(p.steps for p in plan_stages(exp))
    # The demo must finish every stage on 2 CPU cores in under 10 minutes: about 0.15 s a tiny step there.
    assert total <= 2500


def test_relative_shards_resolve_against_the_manifest_folder(tmp_path: Path) -> None:
    path = _write(tmp_path, {"data": {"shards": "sub/shards"}})
    assert load_experiment(path).data.shards == str((tmp_path / "sub" / "shards").resolve())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({**S, "bogus": 1}, "bogus: unknown key (known: name, preset, model, losses,"),
        ({**S, "source": "x.yaml"}, "source: unknown key"),
        ({"data": {**SHARDS, "colour": 1}}, "data.colour: unknown key"),
        ({"data": {}}, "data.shards: required"),
        ({"data": {**SHARDS, "aug_prob": 1.5}}, "data.aug_prob: must be between 0 and 1"),
        ({"data": {**SHARDS, "aug_prob": "half"}}, "data.aug_prob: expected float, got str ('half')"),
        ({**S, "aux": {"batch_size": 0}}, "aux.batch_size: must be >= 1"),
        ({**S, "aux": {"detector_steps": 1.5}}, "aux.detector_steps: expected int"),
        ({**S, "aux": [1]}, "aux: expected a mapping, got list"),
        (
            {**S, "stage1": {"ldn_only": 0.7, "psn_only": 0.5}},
            "stage1: ldn_only + psn_only",
        ),
        ({**S, "plan": "two_stage"}, "plan: 'two_stage' is not one of"),
        ({**S, "preset": "huge"}, "unknown preset 'huge'"),
        ({**S, "preset": 3}, "preset: expected str, got int"),
        ({**S, "losses": {"cam_weight": 3}}, "losses.cam_weight: unknown key"),
        ({**S, "losses": {"cam": -1}}, "losses: loss weight cam must be >= 0"),
        ({**S, "model": {"landmark_set": "eyes"}}, "model.landmark_set: 'eyes' is not one"),
        ({**S, "schedule": {"iterations": [4, 2]}}, "schedule.iterations: expected 3 values"),
        ({**S, "schedule": {"iterations": [4, 2.5, 2]}}, "schedule.iterations.1: expected int"),
        ({"data": {**SHARDS, "weights": {"2": {"cosplay": 1}}}}, "data.weights.2.cosplay: 'cosplay' is not"),
        ({"data": {**SHARDS, "weights": {5: {"coser": 1}}}}, "data.weights.5: '5' is not one of 1, 2, 3"),
        ({"data": {**SHARDS, "weights": {2: {"aug": -1}}}}, "data.weights.2.aug: must be >= 0"),
        ({"data": {**SHARDS, "fusion": {"grid": 1}}}, "data.fusion: grid must be >= 2, got 1"),
        ({"data": {**SHARDS, "fusion": {"blur": 1}}}, "data.fusion.blur: unknown key (known: grid,"),
        ({"data": {**SHARDS, "fusion": {"feather": 0.1}}}, "data.fusion.feather: expected a list"),
        (
            {"data": {**SHARDS, "fusion": {"colour_strength": [0.9, 0.2]}}},
            "data.fusion: colour_strength must be a range 0 <= low <= high",
        ),
        ({**S, "log_every": 0}, "log_every: must be >= 1"),
        ({**S, "seed": True}, "seed: expected int, got bool (True)"),
    ],
)
def test_invalid_manifests_name_file_and_key(tmp_path: Path, data: dict, message: str) -> None:
    path = _write(tmp_path, data)
    with pytest.raises(ExperimentError) as err:
        load_experiment(path)
    assert str(err.value).startswith(f"{path}: {message}")
    assert "\n" not in str(err.value)


def test_unreadable_manifests(tmp_path: Path) -> None:
    with pytest.raises(ExperimentError, match="no such manifest"):
        load_experiment(tmp_path / "missing.yaml")
    with pytest.raises(ExperimentError, match="not a readable YAML file"):
        load_experiment(_write(tmp_path, "data: [unclosed", "broken.yaml"))
    with pytest.raises(ExperimentError, match="expected a mapping at the top level"):
        load_experiment(_write(tmp_path, "- a\n- b\n", "list.yaml"))


def test_overrides_reach_the_preset_and_resolve_to_a_plain_dict(tmp_path: Path) -> None:
    exp = experiment_from_dict(
        {
            "preset": "tiny",
            "data": {"shards": "/x"},
            "losses": {"cam": 0},
            "model": {"landmark_set": "full"},
            "schedule": {"iterations": [4, 2, 2]},
        }
    )
    assert exp.preset.losses.cam == 0 and exp.preset.model.landmark_set == "full"
    assert exp.preset.model.image_size == 64  # untouched tiny values stay
    write_resolved(exp, tmp_path / "experiment.yaml")
    saved = yaml.safe_load((tmp_path / "experiment.yaml").read_text())
    assert list(saved) == list(MANIFEST_KEYS)
    assert saved["preset"] == "tiny" and saved["losses"]["cam"] == 0
    assert saved["model"] == dataclasses.asdict(exp.preset.model)
    assert saved["schedule"]["iterations"] == [4, 2, 2]
    assert saved["data"]["shards"] == "/x"
    assert saved["data"]["fusion"] == {"grid": 32, "colour_strength": [0.5, 1.0], "feather": [0.03, 0.06]}


def test_defaults_are_the_dataclass_fields() -> None:
    exp = experiment_from_dict({"data": {"shards": "/x"}})
    assert exp == Experiment(data=DataSpec(shards="/x"))
    assert exp.preset == get_preset(DEFAULT_PRESET) and exp.name == "pda" and exp.plan == "full"
    assert (exp.seed, exp.log_every, exp.sample_every, exp.checkpoint_every) == (0, 10, 100, 100)
    assert exp.data.aug_prob == 0.5 and exp.data.fusion == FusionOptions()


def test_relative_shards_resolve_against_the_working_directory_without_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert experiment_from_dict({"data": {"shards": "s"}}).data.shards == str(tmp_path.resolve() / "s")


def test_fusion_section_reaches_fusion_options(tmp_path: Path) -> None:
    path = _write(tmp_path, {"data": {"shards": "s", "fusion": {"grid": 8, "feather": [0.01, 0.02]}}})
    fusion = load_experiment(path).data.fusion
    assert fusion == FusionOptions(grid=8, colour_strength=(0.5, 1.0), feather=(0.01, 0.02))


@pytest.mark.parametrize("name", SHIPPED)
def test_saved_form_loads_back_equal(tmp_path: Path, name: str) -> None:
    exp = load_experiment(MANIFESTS / name)
    write_resolved(exp, tmp_path / "experiment.yaml")
    again = load_experiment(tmp_path / "experiment.yaml")
    assert again == exp and again.to_dict() == exp.to_dict()
    assert again.source == str(tmp_path / "experiment.yaml")  # provenance, not compared
    write_resolved(again, tmp_path / "twice.yaml")
    assert load_experiment(tmp_path / "twice.yaml") == exp
    text = (tmp_path / "experiment.yaml").read_text()
    assert text.startswith(f"# The resolved manifest of run {exp.name!r} (from {MANIFESTS / name})")
    assert f"preset: {exp.preset.name}\n" in text and "iterations: [" in text


def test_saved_form_keeps_domain_weights_and_fusion(tmp_path: Path) -> None:
    exp = experiment_from_dict(
        {
            "data": {"shards": "/x", "weights": {2: {"coser": 1, "aug": 3}}, "fusion": {"grid": 4}},
            "preset": "paper",
            "losses": {"highlight": 0},
        }
    )
    write_resolved(exp, tmp_path / "experiment.yaml")
    again = load_experiment(tmp_path / "experiment.yaml")
    assert again == exp and again.data.weights == {"2": {"coser": 1.0, "aug": 3.0}}
    assert again.preset.name == "paper" and again.preset.losses.highlight == 0


@pytest.mark.parametrize(
    ("plan", "stages"),
    [
        ("full", [("aux", 0), ("1", 1), ("2", 2), ("3", 3)]),
        ("coser", [("aux", 0), ("1", 1), ("2", 1), ("3", 1)]),
        ("coser_aug", [("aux", 0), ("1", 1), ("2", 2), ("3", 2)]),
        ("coser_human", [("aux", 0), ("1", 1), ("2", 1), ("3", 3)]),
        ("baseline", [("aux", 0), ("1", 3), ("2", 3), ("3", 3)]),
        ("single_stage", [("aux", 0), ("1", 3)]),
    ],
)
def test_table4_plans_map_to_stages(plan: str, stages: list[tuple[str, int]]) -> None:
    exp = experiment_from_dict(
        {
            "data": {"shards": "/x"},
            "plan": plan,
            "schedule": {"iterations": [10, 6, 4]},
            "aux": {"detector_steps": 3, "classifier_steps": 2},
        }
    )
    got = plan_stages(exp)
    assert [(s.name, s.data_stage) for s in got] == stages
    assert got[0].steps == 3 + 2 * 2
    by_name = {s.name: s for s in got}
    if plan == "baseline":
        assert by_name["1"].weights == {"human": 1.0} and by_name["1"].human_full_losses
    if plan == "coser_human":
        assert by_name["3"].weights == pytest.approx({"coser": 2 / 3, "human": 1 / 3})
    if plan == "single_stage":
        assert by_name["1"].steps == 20 and by_name["1"].segments == (1, 2, 3)
    if plan != "single_stage":
        assert [by_name[n].steps for n in "123"] == [10, 6, 4]


def _leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in _leaves(sub, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): tree}


# Each Table 4 row of the paper (Sec. 4.5) and the one setting it changes in Full (celebahq2anime.yaml).
TABLE4_FACTORS = {
    "ablation-wo-ldn.yaml": {"model.use_ldn": False},
    "ablation-full-landmarks.yaml": {"model.landmark_set": "full"},
    "ablation-wo-structure.yaml": {"losses.structure": 0.0},
    "ablation-wo-highlight.yaml": {"losses.highlight": 0.0},
    "ablation-wo-cam.yaml": {"losses.cam": 0.0},
    "ablation-baseline.yaml": {"plan": "baseline"},
    "ablation-coser.yaml": {"plan": "coser"},
    "ablation-coser-aug.yaml": {"plan": "coser_aug"},
    "ablation-coser-human.yaml": {"plan": "coser_human"},
    "ablation-single-stage.yaml": {"plan": "single_stage"},
}


def test_every_table4_row_is_shipped() -> None:
    rows = {n for n in SHIPPED if n.startswith("ablation-") and n != "ablation-demo.yaml"}
    assert rows == set(TABLE4_FACTORS)


@pytest.mark.parametrize(("name", "factor"), sorted(TABLE4_FACTORS.items()))
def test_table4_rows_differ_from_full_in_their_factor_only(name: str, factor: dict[str, Any]) -> None:
    full = _leaves(load_experiment(MANIFESTS / "celebahq2anime.yaml").to_dict())
    row = _leaves(load_experiment(MANIFESTS / name).to_dict())
    assert set(row) == set(full)
    diff = {k: row[k] for k in row if row[k] != full[k]}
    assert diff == {"name": name.removesuffix(".yaml"), **factor}


def test_full_landmarks_deform_all_56_anime_points() -> None:
    from pda_train.nets.ldn import ldn_point_count

    exp = load_experiment(MANIFESTS / "ablation-full-landmarks.yaml")
    assert ldn_point_count(exp.preset.model.landmark_set) == 56 and ldn_point_count("contour") == 17


def test_manifest_domain_weights_override_a_stage() -> None:
    exp = experiment_from_dict({"data": {"shards": "/x", "weights": {"2": {"coser": 1, "aug": 3}}}})
    assert {s.name: s.weights for s in plan_stages(exp)}["2"] == {"coser": 1.0, "aug": 3.0}


def test_phases_follow_the_step() -> None:
    exp = experiment_from_dict(
        {
            "data": {"shards": "/x"},
            "stage1": {"ldn_only": 0.2, "psn_only": 0.3},
            "aux": {"detector_steps": 2, "classifier_steps": 3},
        }
    )
    assert [stage1_phase(s, 10, exp, True) for s in range(10)] == ["ldn"] * 2 + ["psn"] * 3 + ["joint"] * 5
    assert [stage1_phase(s, 10, exp, False) for s in range(10)] == ["psn"] * 3 + ["joint"] * 7
    assert [aux_phase(s, exp) for s in range(8)] == ["detector"] * 2 + ["structure"] * 3 + ["highlight"] * 3


@pytest.fixture
def restore_threads() -> Any:
    """One torch thread (``run --threads 1`` sets it process-wide): restored for the tests after this one."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_saved_manifest_restarts_the_same_experiment(
    tmp_path: Path, samples_dir: Path, restore_threads: Any
) -> None:
    """`pda-train run --manifest RUN/experiment.yaml --out RUN2` logs the losses RUN logged, step for step."""
    size = 64  # the tiny preset's resolution
    sources = {
        "coser": portrait_folder(tmp_path / "cosers", 4, prefix="coser", size=size, seed=0),
        "human": portrait_folder(tmp_path / "humans", 4, prefix="human", size=size, seed=1),
        "anime": anime_annotations(tmp_path / "anime", samples_dir, 4, size=size),
        "structure": synth_folder(tmp_path / "structure", samples_dir, 6, size=size),
        "highlight": synth_folder(tmp_path / "highlight", samples_dir, 6, size=size, seed=3, job="highlight"),
    }
    pack(tmp_path / "shards", sources, test_fraction=0.3, shard_size=3)
    manifest = _write(
        tmp_path,
        {
            "name": "restart",
            "seed": 3,
            "schedule": {"iterations": [3, 2, 0], "batch_size": 2},
            "data": {"shards": "shards", "aug_prob": 1.0, "fusion": {"grid": 8, "feather": [0.05, 0.05]}},
            "aux": {"detector_steps": 1, "classifier_steps": 1, "batch_size": 2, "eval_batches": 1},
            "stage1": {"ldn_only": 0.34, "psn_only": 0.34},
            "plan": "coser_aug",
            "log_every": 1,
            "sample_every": 0,
            "checkpoint_every": 0,
        },
    )
    runner = CliRunner()
    flags = ["--device", "cpu", "--threads", "1", "--no-tensorboard"]
    first, second = tmp_path / "run", tmp_path / "run2"
    res = runner.invoke(app, ["run", "--manifest", str(manifest), "--out", str(first), *flags])
    assert res.exit_code == 0, res.output
    saved = first / "experiment.yaml"
    res = runner.invoke(app, ["run", "--manifest", str(saved), "--out", str(second), *flags])
    assert res.exit_code == 0, res.output
    assert load_experiment(saved) == load_experiment(manifest) == load_experiment(second / "experiment.yaml")

    def losses(run: Path) -> list[tuple[str, int, dict[str, float]]]:
        return [
            (r["stage"], r["step"], {k: v for k, v in r.items() if k.startswith(("loss/", "lr/"))})
            for r in read_metrics(run)
            if any(k.startswith("loss/") for k in r)
        ]

    logged = losses(first)
    assert [(stage, step) for stage, step, _ in logged] == [("aux", 1), ("aux", 2), ("aux", 3)] + [
        ("1", s) for s in (1, 2, 3)
    ] + [("2", 1), ("2", 2)]
    assert all(values for _, _, values in logged)
    # The same experiment on the same machine and thread count: equal to float rounding of identical ops.
    for (stage, step, values), (stage2, step2, values2) in zip(logged, losses(second), strict=True):
        assert (stage2, step2) == (stage, step)
        assert values2 == pytest.approx(values, rel=1e-6, abs=1e-9), (stage, step)



def test_demo_manifest_documents_the_fusion_defaults() -> None:
    """demo.yaml shows data.fusion as a comment with the defaults: they must be FusionOptions' own."""
    lines = [line.strip() for line in (MANIFESTS / "demo.yaml").read_text().splitlines()]
    shown = yaml.safe_load(next(line for line in lines if line.startswith("# fusion:"))[2:])
    assert experiment_from_dict({"data": {"shards": "/x", **shown}}).data.fusion == FusionOptions()
