"""Experiment manifests: shipped files validate, bad ones fail naming file and key, plans map to stages."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pda_train.manifest import ExperimentError, experiment_from_dict, load_experiment, write_resolved
from pda_train.training.plan import aux_phase, plan_stages, stage1_phase

MANIFESTS = Path(__file__).resolve().parents[1] / "manifests"


def _write(tmp_path: Path, data: object, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


@pytest.mark.parametrize(
    "name", ["demo.yaml", "celebahq2anime.yaml", "selfie2cartoon.yaml", "ablation-demo.yaml"]
)
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
        ({"data": {"shards": "s"}, "bogus": 1}, "unknown key 'bogus'"),
        ({"data": {"shards": "s", "colour": 1}}, "data.colour: unknown key"),
        ({"data": {}}, "data.shards: required"),
        ({"data": {"shards": "s", "aug_prob": 1.5}}, "data.aug_prob: must be between 0 and 1"),
        ({"data": {"shards": "s", "aug_prob": "half"}}, "data.aug_prob: expected float, got str"),
        ({"data": {"shards": "s"}, "aux": {"batch_size": 0}}, "aux.batch_size: must be >= 1"),
        ({"data": {"shards": "s"}, "aux": {"detector_steps": 1.5}}, "aux.detector_steps: expected int"),
        (
            {"data": {"shards": "s"}, "stage1": {"ldn_only": 0.7, "psn_only": 0.5}},
            "stage1: ldn_only + psn_only",
        ),
        ({"data": {"shards": "s"}, "plan": "two_stage"}, "plan: 'two_stage' is not one of"),
        ({"data": {"shards": "s"}, "preset": "huge"}, "unknown preset 'huge'"),
        ({"data": {"shards": "s"}, "losses": {"cam_weight": 3}}, "losses: unknown key 'cam_weight'"),
        ({"data": {"shards": "s"}, "losses": {"cam": -1}}, "cam must be >= 0"),
        ({"data": {"shards": "s"}, "model": {"landmark_set": "eyes"}}, "landmark_set"),
        ({"data": {"shards": "s", "weights": {"2": {"cosplay": 1}}}}, "data.weights.2.cosplay"),
        ({"data": {"shards": "s"}, "log_every": 0}, "log_every: must be >= 1"),
        ({"data": {"shards": "s"}, "seed": True}, "seed: expected int, got bool"),
    ],
)
def test_invalid_manifests_name_file_and_key(tmp_path: Path, data: dict, message: str) -> None:
    path = _write(tmp_path, data)
    with pytest.raises(ExperimentError) as err:
        load_experiment(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


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
    assert saved["preset"]["losses"]["cam"] == 0
    assert saved["preset"]["schedule"]["iterations"] == [4, 2, 2]
    assert saved["data"]["shards"] == "/x"


@pytest.mark.parametrize(
    ("plan", "stages"),
    [
        ("full", [("aux", 0), ("1", 1), ("2", 2), ("3", 3)]),
        ("coser", [("aux", 0), ("1", 1)]),
        ("coser_aug", [("aux", 0), ("1", 1), ("2", 2)]),
        ("coser_human", [("aux", 0), ("1", 1), ("3", 3)]),
        ("baseline", [("aux", 0), ("1", 3)]),
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
        assert by_name["3"].weights == {"coser": 1.0, "human": 1.0} and by_name["3"].aug_prob == 0.0
    if plan == "single_stage":
        assert by_name["1"].steps == 20 and by_name["1"].schedule_stage == 1
    if plan == "full":
        assert [by_name[n].steps for n in "123"] == [10, 6, 4]


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
