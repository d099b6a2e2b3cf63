"""Peak-memory measurement of a real training step: the live-bytes tracker, scaling, describe's report."""

from __future__ import annotations

import json

import torch
import typer
from typer.testing import CliRunner

from pda_train.cli import describe as describe_cli
from pda_train.config import get_preset
from pda_train.training.memory import LiveTensorBytes, StepMemory, measure_step_memory
from pda_train.training.runtime import init_runtime


def test_tracker_counts_live_bytes_and_their_peak() -> None:
    keep = torch.zeros(1000)  # 4000 bytes alive before
    with LiveTensorBytes() as mode:
        mode.track(keep)
        a = torch.ones(500)  # +2000
        b = a * 2  # +2000: peak 8000
        del a, b
        c = torch.ones(250)  # +1000 after 4000 were freed
        assert (mode.live, mode.peak) == (5000, 8000)
        view = c[:10]  # a view allocates nothing
        assert mode.live == 5000 and view.numel() == 10


def test_linear_scaling_through_two_measurements() -> None:
    m = StepMemory("cpu", "x", "off", False, (1, 2), (100, 130), ())
    assert (m.at(1), m.at(2), m.at(4), m.per_sample()) == (100, 130, 190, 30)


def test_checkpointing_and_bf16_measure_less_than_fp32() -> None:
    torch.set_num_threads(1)
    cfg = get_preset("tiny").model
    plain = measure_step_memory(cfg, init_runtime("cpu"), (1,))
    light = measure_step_memory(cfg, init_runtime("cpu", "bf16", checkpoint_blocks=True), (1,))
    weights = sum(n.weight_bytes for n in plain.networks)
    assert weights == 4 * sum(n.parameters for n in plain.networks)
    # Weights, gradients and two Adam moments of the trainable networks are all alive at the peak.
    state = sum(n.weight_bytes + n.grad_bytes + n.optimizer_bytes for n in plain.networks)
    assert state < plain.peaks[0] < 20 * state
    assert light.peaks[0] < 0.95 * plain.peaks[0]
    gens = {n.name: n for n in plain.networks}
    assert gens["psn_g_pa"].activation_bytes > gens["ldn_g_pa"].activation_bytes > 0


def test_describe_json_reports_the_measured_peak() -> None:
    app = typer.Typer()
    app.callback()(lambda: None)
    describe_cli.register(app)
    res = CliRunner().invoke(app, ["describe", "--preset", "tiny", "-b", "3", "--device", "cpu", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output.strip().splitlines()[-1])
    assert report["measured_batch_sizes"] == [1, 2] and report["estimate"].endswith("linear in the batch")
    p1, p2 = report["measured_peak_bytes"]
    assert report["peak_bytes"] == p1 + 2 * (p2 - p1) and p2 > p1
    assert report["method"].startswith("peak live tensor bytes")
    assert report["total"]["parameters"] == sum(n["parameters"] for n in report["networks"])
