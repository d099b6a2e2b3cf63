"""Losses of the PDA model: each primitive on hand-computed values, and the weighted totals of Eq. 3 / 6."""

from __future__ import annotations

import math

import pytest
import torch

from pda_train.config import PRESETS, LossWeights, ModelConfig
from pda_train.losses import (
    cam_loss,
    discriminator_loss,
    generator_loss,
    identity_mode,
    l1_loss,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
    negative_log_sigmoid,
)
from pda_train.nets import build_networks

TINY = PRESETS["tiny"].model
LOG2 = math.log(2.0)


def test_l1_cycle_on_known_tensors():
    reconstructed = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [0.0, 2.0]]])  # (B=2, P=2, 2)
    original = torch.zeros_like(reconstructed)
    assert l1_loss(reconstructed, original).item() == pytest.approx((10 + 2) / 8)
    # Per-sample weights: only the first sample counts, then only the second.
    assert l1_loss(reconstructed, original, torch.tensor([1.0, 0.0])).item() == pytest.approx(2.5)
    assert l1_loss(reconstructed, original, torch.tensor([0.0, 1.0])).item() == pytest.approx(0.5)
    assert l1_loss(reconstructed, original, torch.zeros(2)).item() == 0.0


def test_lsgan_on_constant_logits():
    half = torch.full((3, 1, 6, 6), 0.5)
    assert lsgan_discriminator_loss(half, half).item() == pytest.approx(0.25 + 0.25)
    assert lsgan_discriminator_loss(torch.ones(3, 1), torch.zeros(3, 1)).item() == 0.0  # a perfect critic
    assert lsgan_discriminator_loss(torch.zeros(3, 1), torch.ones(3, 1)).item() == pytest.approx(2.0)
    assert lsgan_generator_loss(half).item() == pytest.approx(0.25)
    assert lsgan_generator_loss(torch.full((2, 2), -1.0)).item() == pytest.approx(4.0)
    # Fake weight 0 on the second sample drops its term.
    fake = torch.tensor([[0.5], [3.0]])
    assert (
        lsgan_discriminator_loss(torch.ones(2, 1), fake, fake_weight=torch.tensor([1.0, 0.0])).item() == 0.25
    )


def test_cam_loss_binary_cross_entropy():
    zeros = torch.zeros(4, 2)
    assert cam_loss(zeros, zeros).item() == pytest.approx(2 * LOG2)  # two chance-level classifiers
    confident = cam_loss(torch.full((4, 2), 20.0), torch.full((4, 2), -20.0)).item()
    assert confident == pytest.approx(0.0, abs=1e-8)
    wrong = cam_loss(torch.full((1, 2), -2.0), torch.full((1, 2), 2.0)).item()
    assert wrong == pytest.approx(2 * math.log1p(math.exp(2.0)))


def test_negative_log_sigmoid_values():
    assert negative_log_sigmoid(torch.zeros(5)).item() == pytest.approx(LOG2)
    assert negative_log_sigmoid(torch.tensor([-2.0])).item() == pytest.approx(math.log1p(math.exp(2.0)))
    assert negative_log_sigmoid(torch.tensor([100.0])).item() == pytest.approx(0.0, abs=1e-12)
    # Stable far into the negative side, where log(sigmoid(y)) computed naively is -inf.
    assert negative_log_sigmoid(torch.tensor([-200.0])).item() == pytest.approx(200.0)


def test_loss_weights_defaults_are_the_papers():
    w = LossWeights()
    assert (w.ldn_cycle, w.ldn_adv) == (100.0, 1.0)
    assert (w.psn_cycle, w.psn_adv, w.cam, w.structure, w.highlight) == (10.0, 1.0, 1000.0, 1.0, 1.0)
    assert w.identity == 0.0
    with pytest.raises(ValueError, match="cam"):
        LossWeights(cam=-1)


def _step(nets, adapt=None, identity="full"):
    torch.manual_seed(3)
    b, s = 2, TINY.image_size
    return nets.translate_step(
        torch.rand(b, 3, s, s) * 2 - 1,
        torch.rand(b, 68, 2) - 0.5,
        torch.rand(b, 3, s, s) * 2 - 1,
        torch.rand(b, 56, 2) - 0.5,
        adapt=adapt,
        identity=identity,
    )


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    networks = build_networks(TINY)
    networks.freeze_auxiliary()
    return networks


WEIGHT_OF = {
    "ldn_cycle_pa": "ldn_cycle",
    "ldn_cycle_ap": "ldn_cycle",
    "ldn_adv_pa": "ldn_adv",
    "ldn_adv_ap": "ldn_adv",
    "psn_cycle_pa": "psn_cycle",
    "psn_cycle_ap": "psn_cycle",
    "psn_adv_pa": "psn_adv",
    "psn_adv_ap": "psn_adv",
    "cam_pa": "cam",
    "cam_ap": "cam",
    "identity_a": "identity",
    "identity_p": "identity",
    "structure": "structure",
    "highlight": "highlight",
}


def test_generator_total_is_the_weighted_sum(nets):
    weights = LossWeights(identity=5.0)
    step = _step(nets)
    total, terms = generator_loss(nets, step, weights)
    expected = sum(getattr(weights, WEIGHT_OF[k]) * v for k, v in terms.items() if k in WEIGHT_OF)
    assert set(WEIGHT_OF) <= set(terms)
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert terms["ldn_total"].item() + terms["psn_total"].item() == pytest.approx(total.item(), rel=1e-6)
    # The structure term is -log sigmoid of the frozen classifier on the detector's heatmaps.
    logits = nets.structure_classifier(nets.structure_detector(step.fake_anime))
    assert terms["structure"].item() == pytest.approx(
        torch.nn.functional.softplus(-logits).mean().item(), rel=1e-6
    )


def test_zero_weights_disable_terms(nets):
    ablation = LossWeights(cam=0, structure=0, highlight=0)
    assert identity_mode(ablation) == "off" and identity_mode(LossWeights()) == "cam"
    assert identity_mode(LossWeights(identity=10)) == "full"
    _, terms = generator_loss(nets, _step(nets, identity="off"), ablation)
    assert not {"cam_pa", "cam_ap", "structure", "highlight", "identity_a"} & set(terms)
    with pytest.raises(ValueError, match='identity="cam" or "full"'):
        generator_loss(nets, _step(nets, identity="off"), LossWeights())
    with pytest.raises(ValueError, match='identity="full"'):
        generator_loss(nets, _step(nets, identity="cam"), LossWeights(identity=1))
    no_ldn = build_networks(ModelConfig(**{**TINY.__dict__, "use_ldn": False}))
    _, terms = generator_loss(no_ldn, _step(no_ldn), LossWeights())
    assert not any(k.startswith("ldn") for k in terms)


def test_human_portraits_take_only_structure_and_highlight(nets):
    """adapt = 0 (stage-3 human portraits) zeroes the portrait-side adversarial, cycle and CAM terms."""
    full = generator_loss(nets, _step(nets), LossWeights())[1]
    human_step = _step(nets, adapt=torch.zeros(2))
    human = generator_loss(nets, human_step, LossWeights())[1]
    for name in ("psn_cycle_pa", "psn_adv_pa", "ldn_cycle_pa", "ldn_adv_pa"):
        assert full[name].item() > 0 and human[name].item() == 0.0
    # G_p->a's CAM keeps only its anime-input half (target domain -> 0).
    anime_half = torch.nn.functional.softplus(human_step.identity_cam_pa).mean()
    assert human["cam_pa"].item() == pytest.approx(anime_half.item(), rel=1e-6)
    for name in ("psn_cycle_ap", "ldn_cycle_ap", "ldn_adv_ap", "structure", "highlight"):
        assert human[name].item() == pytest.approx(full[name].item(), rel=1e-6)


def test_discriminator_loss_trains_only_discriminators(nets):
    nets.zero_grad(set_to_none=True)
    step = _step(nets)
    total, terms = discriminator_loss(nets, step, LossWeights())
    assert {"ldn_d_a", "ldn_d_p", "psn_d_a", "psn_d_p"} <= set(terms)
    assert total.item() == pytest.approx(
        sum(terms[k].item() for k in ("ldn_d_a", "ldn_d_p", "psn_d_a", "psn_d_p"))
    )
    total.backward()
    for name in ("psn_d_a", "psn_d_p", "ldn_d_a", "ldn_d_p"):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in getattr(nets, name).parameters())
    for name in ("psn_g_pa", "psn_g_ap", "ldn_g_pa", "ldn_g_ap"):
        assert all(p.grad is None for p in getattr(nets, name).parameters())
