"""The losses of the PDA model (Sec. 3.1.2): small tensor functions and the weighted totals of Eq. 3 and 6.

Every primitive takes an optional per-sample ``weight`` (B,): the loss is the weighted mean of the
per-sample means, so a batch can mix portraits that take a term with portraits that do not (stage 3
applies only L_structure and L_highlight to human portraits, Sec. 3.3). A weight of 0 in
:class:`~pda_train.config.LossWeights` skips a term entirely, including the forward passes it needs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from pda_train.config import LossWeights
from pda_train.nets import GeneratorPass, IdentityMode, PDANetworks

Terms = dict[str, Tensor]


def _reduce(per_element: Tensor, weight: Tensor | None) -> Tensor:
    """Mean over everything but the batch, then a (weighted) mean over the batch."""
    per_sample = per_element.flatten(1).mean(dim=1) if per_element.dim() > 1 else per_element
    if weight is None:
        return per_sample.mean()
    weight = weight.to(per_sample.dtype)
    return (per_sample * weight).sum() / weight.sum().clamp_min(1e-8)


def l1_loss(prediction: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """Eq. 1: ``|| G_b->a(G_a->b(x)) - x ||_1`` (mean absolute error) for landmarks and images alike.

    Also U-GAT-IT's identity loss when ``prediction`` is a generator applied to its own target domain.
    """
    return _reduce((prediction - target).abs(), weight)


def lsgan_discriminator_loss(
    real_logits: Tensor,
    fake_logits: Tensor,
    real_weight: Tensor | None = None,
    fake_weight: Tensor | None = None,
) -> Tensor:
    """Eq. 2, discriminator side: ``E[(D(real) - 1)^2] + E[D(fake)^2]`` (least-squares GAN, Mao et al.).

    The paper's Eq. 2 is printed with the targets swapped (real towards 0, generated towards 1); that is
    the same game with the labels mirrored. We keep Mao et al.'s and U-GAT-IT's convention: real -> 1,
    fake -> 0 for D, and fake -> 1 for G.
    """
    return _reduce((real_logits - 1).square(), real_weight) + _reduce(fake_logits.square(), fake_weight)


def lsgan_generator_loss(fake_logits: Tensor, weight: Tensor | None = None) -> Tensor:
    """Eq. 2, generator side: ``E[(D(G(x)) - 1)^2]``."""
    return _reduce((fake_logits - 1).square(), weight)


def cam_loss(
    source_logits: Tensor,
    target_logits: Tensor,
    source_weight: Tensor | None = None,
    target_weight: Tensor | None = None,
) -> Tensor:
    """U-GAT-IT's generator CAM loss (the L_cam of Eq. 6) for one generator G_s->t.

    Its attention classifier must call inputs from its source domain s (``source_logits``, from
    ``G_s->t(x_s)``) 1 and inputs from the target domain t (``target_logits``, from ``G_s->t(x_t)``) 0,
    with binary cross-entropy on the logits.
    """
    positive = F.binary_cross_entropy_with_logits(
        source_logits, torch.ones_like(source_logits), reduction="none"
    )
    negative = F.binary_cross_entropy_with_logits(
        target_logits, torch.zeros_like(target_logits), reduction="none"
    )
    return _reduce(positive, source_weight) + _reduce(negative, target_weight)


def negative_log_sigmoid(logits: Tensor, weight: Tensor | None = None) -> Tensor:
    """Eq. 4 and Eq. 5: ``-log(sigmoid(y))`` of a frozen classifier's logit y, computed as softplus(-y)."""
    return _reduce(F.softplus(-logits), weight)


def identity_mode(w: LossWeights) -> IdentityMode:
    """The cheapest ``translate_step(identity=...)`` that still feeds every enabled term."""
    if w.identity:
        return "full"
    return "cam" if w.cam else "off"


def _add(terms: Terms, name: str, weight: float, value: Tensor) -> None:
    terms[name] = value
    terms["total"] = terms["total"] + weight * value


def ldn_generator_loss(nets: PDANetworks, p: GeneratorPass, w: LossWeights) -> tuple[Tensor, Terms]:
    """Eq. 3, generator side: ``ldn_cycle * (L_cyc,p->a + L_cyc,a->p) + ldn_adv * (L_adv,p->a + L_adv,a->p)``.

    Returns (0, {}) without an LDN (the "w/o LDN" ablation).
    """
    terms: Terms = {"total": p.fake_anime.new_zeros(())}
    if nets.ldn_d_a is None or nets.ldn_d_p is None or p.ldn_portrait is None:
        return terms["total"], {}
    assert p.ldn_anime is not None and p.ldn_fake_anime is not None and p.ldn_fake_portrait is not None
    assert p.ldn_cycle_portrait is not None and p.ldn_cycle_anime is not None
    if w.ldn_cycle:
        _add(terms, "ldn_cycle_pa", w.ldn_cycle, l1_loss(p.ldn_cycle_portrait, p.ldn_portrait, p.adapt))
        _add(terms, "ldn_cycle_ap", w.ldn_cycle, l1_loss(p.ldn_cycle_anime, p.ldn_anime))
    if w.ldn_adv:
        _add(terms, "ldn_adv_pa", w.ldn_adv, lsgan_generator_loss(nets.ldn_d_a(p.ldn_fake_anime), p.adapt))
        _add(terms, "ldn_adv_ap", w.ldn_adv, lsgan_generator_loss(nets.ldn_d_p(p.ldn_fake_portrait)))
    total = terms.pop("total")
    return total, {"ldn_total": total, **terms}


def psn_generator_loss(nets: PDANetworks, p: GeneratorPass, w: LossWeights) -> tuple[Tensor, Terms]:
    """Eq. 6: ``psn_cycle * L_cyc + psn_adv * L_adv + cam * L_cam + structure * L_structure
    + highlight * L_highlight`` (+ ``identity * L_identity``, 0 in the paper).

    Each direction's adversarial term covers the discriminator's patch logits and its CAM logits, as in
    U-GAT-IT. Portrait-side terms are weighted by ``p.adapt``.
    """
    a = p.adapt
    terms: Terms = {"total": p.fake_anime.new_zeros(())}
    if w.psn_cycle:
        _add(terms, "psn_cycle_pa", w.psn_cycle, l1_loss(p.cycle_portrait, p.warped, a))
        _add(terms, "psn_cycle_ap", w.psn_cycle, l1_loss(p.cycle_anime, p.anime))
    if w.psn_adv:
        patch_a, cam_a, _ = nets.psn_d_a(p.fake_anime)
        patch_p, cam_p, _ = nets.psn_d_p(p.fake_portrait)
        _add(
            terms, "psn_adv_pa", w.psn_adv, lsgan_generator_loss(patch_a, a) + lsgan_generator_loss(cam_a, a)
        )
        _add(terms, "psn_adv_ap", w.psn_adv, lsgan_generator_loss(patch_p) + lsgan_generator_loss(cam_p))
    if w.cam and (p.identity_cam_pa is None or p.identity_cam_ap is None):
        raise ValueError('the CAM loss needs translate_step(..., identity="cam" or "full")')
    if w.identity and (p.identity_anime is None or p.identity_portrait is None):
        raise ValueError('the identity loss needs translate_step(..., identity="full")')
    if w.cam:
        _add(terms, "cam_pa", w.cam, cam_loss(p.cam_pa, p.identity_cam_pa, source_weight=a))
        _add(terms, "cam_ap", w.cam, cam_loss(p.cam_ap, p.identity_cam_ap, target_weight=a))
    if w.identity:
        _add(terms, "identity_a", w.identity, l1_loss(p.identity_anime, p.anime))
        _add(terms, "identity_p", w.identity, l1_loss(p.identity_portrait, p.warped, a))
    if w.structure:
        logits = nets.structure_classifier(nets.structure_detector(p.fake_anime))
        _add(terms, "structure", w.structure, negative_log_sigmoid(logits))
    if w.highlight:
        _add(terms, "highlight", w.highlight, negative_log_sigmoid(nets.highlight_classifier(p.fake_anime)))
    total = terms.pop("total")
    return total, {"psn_total": total, **terms}


def generator_loss(nets: PDANetworks, p: GeneratorPass, w: LossWeights) -> tuple[Tensor, Terms]:
    """Eq. 3 + Eq. 6: the loss every generator (LDN and PSN) minimises in the end-to-end stages."""
    ldn_total, ldn_terms = ldn_generator_loss(nets, p, w)
    psn_total, psn_terms = psn_generator_loss(nets, p, w)
    return ldn_total + psn_total, {**ldn_terms, **psn_terms}


def discriminator_loss(nets: PDANetworks, p: GeneratorPass, w: LossWeights) -> tuple[Tensor, Terms]:
    """Discriminator sides of Eq. 2 for the LDN and PSN pairs (weighted by the adversarial weights).

    Generated samples are detached; the warped portrait is the PSN's real portrait, detached too so
    the discriminator update never trains the LDN.
    """
    a = p.adapt
    terms: Terms = {}
    total = p.fake_anime.new_zeros(())
    if w.ldn_adv and nets.ldn_d_a is not None and nets.ldn_d_p is not None and p.ldn_portrait is not None:
        assert p.ldn_anime is not None and p.ldn_fake_anime is not None and p.ldn_fake_portrait is not None
        terms["ldn_d_a"] = lsgan_discriminator_loss(
            nets.ldn_d_a(p.ldn_anime), nets.ldn_d_a(p.ldn_fake_anime.detach()), fake_weight=a
        )
        terms["ldn_d_p"] = lsgan_discriminator_loss(
            nets.ldn_d_p(p.ldn_portrait), nets.ldn_d_p(p.ldn_fake_portrait.detach()), real_weight=a
        )
        total = total + w.ldn_adv * (terms["ldn_d_a"] + terms["ldn_d_p"])
    if w.psn_adv:
        real_a, real_a_cam, _ = nets.psn_d_a(p.anime)
        fake_a, fake_a_cam, _ = nets.psn_d_a(p.fake_anime.detach())
        real_p, real_p_cam, _ = nets.psn_d_p(p.warped.detach())
        fake_p, fake_p_cam, _ = nets.psn_d_p(p.fake_portrait.detach())
        terms["psn_d_a"] = lsgan_discriminator_loss(real_a, fake_a, fake_weight=a) + lsgan_discriminator_loss(
            real_a_cam, fake_a_cam, fake_weight=a
        )
        terms["psn_d_p"] = lsgan_discriminator_loss(real_p, fake_p, real_weight=a) + lsgan_discriminator_loss(
            real_p_cam, fake_p_cam, real_weight=a
        )
        total = total + w.psn_adv * (terms["psn_d_a"] + terms["psn_d_p"])
    return total, {"d_total": total, **terms}
