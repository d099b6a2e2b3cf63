"""One training step each: :func:`aux_step` (an auxiliary network) and :func:`gan_step` (D, then G update).

A step takes the networks, one batch from the stream, the optimizers, the grad scaler and the runtime, and
returns its metrics as detached tensors on the device (``loss/<term>``, ``acc/<phase>``): the loop sums them
there and syncs to the host once per log interval. The only host sync of a step is the NaN guard before each
update (all terms of that update checked in one ``isfinite`` over their stack): a non-finite loss stops the
run before the update is applied, so the last checkpoint stays good.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pda_data.shards.index import ROLE_SCHEMA
from pda_train.config import LossWeights
from pda_train.losses import (
    discriminator_loss,
    generator_loss,
    identity_mode,
    ldn_generator_loss,
    psn_generator_loss,
)
from pda_train.nets import GeneratorPass, PDANetworks, ldn_points
from pda_train.training.runtime import (
    NonFiniteLossError,
    Runtime,
    any_rank,
    autocast,
    check_finite,
    sync_gradients,
)

Optimizers = Mapping[str, torch.optim.Optimizer]
# Parameter groups each stage-1 phase updates: (discriminator groups, generator groups).
_PHASE_GROUPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "ldn": (("ldn_d",), ("ldn_g",)),
    "psn": (("psn_d",), ("psn_g",)),
    "joint": (("ldn_d", "psn_d"), ("ldn_g", "psn_g")),
}


def guard_finite(terms: Mapping[str, Tensor], rt: Runtime, where: str) -> None:
    """Stop every rank together when any rank sees a non-finite term (one host sync for all terms)."""
    if not terms:
        return
    stacked = torch.stack([v.detach().float().reshape(()) for v in terms.values()])
    if any_rank(not bool(torch.isfinite(stacked).all()), rt):
        check_finite(terms, where)
        raise NonFiniteLossError(
            f"{where}: non-finite loss on another rank; stopping, the last good checkpoint is kept"
        )


def apply_update(
    loss: Tensor, scaler: torch.amp.GradScaler, optimizers: list[torch.optim.Optimizer], rt: Runtime
) -> None:
    """Backpropagate ``loss`` into the parameters of ``optimizers``, average over ranks, step them."""
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    params = [p for opt in optimizers for g in opt.param_groups for p in g["params"]]
    sync_gradients(params, rt)
    for opt in optimizers:
        scaler.step(opt)


def aux_step(
    nets: PDANetworks,
    batch: Mapping[str, Any],
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    rt: Runtime,
    phase: str,
    *,
    where: str = "",
) -> dict[str, Tensor]:
    """One update of the auxiliary network of ``phase`` (``detector``, ``structure`` or ``highlight``).

    ``batch``: an aux batch (``image`` (B, 3, S, S), ``label`` (B,), ``heatmaps`` (B, 4, S, S) for the
    detector). The detector regresses the heatmaps; the structure classifier reads the (frozen) detector's
    heatmaps, the highlight classifier the image. Returns ``loss/<phase>_total`` and, for the classifiers,
    ``acc/<phase>`` (batch accuracy).
    """
    image = batch["image"].to(rt.device)
    label = batch["label"].to(rt.device).float()
    metrics: dict[str, Tensor] = {}
    with autocast(rt):
        if phase == "detector":
            logits = nets.structure_detector.logits(image)
            loss = F.binary_cross_entropy_with_logits(logits.float(), batch["heatmaps"].to(logits.device))
        else:
            x = nets.structure_detector(image).detach() if phase == "structure" else image
            classifier = nets.structure_classifier if phase == "structure" else nets.highlight_classifier
            out = classifier(x).float()
            loss = F.binary_cross_entropy_with_logits(out, label)
            metrics[f"acc/{phase}"] = ((out > 0).float() == label).float().mean().detach()
    guard_finite({f"aux/{phase}": loss}, rt, where)
    apply_update(loss, scaler, [optimizer], rt)
    scaler.update()
    return {f"loss/{phase}_total": loss.detach(), **metrics}


def landmark_pass(
    nets: PDANetworks, portrait_landmarks: Tensor, anime_landmarks: Tensor, adapt: Tensor | None = None
) -> GeneratorPass:
    """The LDN half of a generator pass, for stage 1's LDN-alone phase (no image is generated).

    Landmarks (B, N, 2) in [-1, 1] in the schemas of the stream's portrait and anime roles. Image fields
    hold an empty tensor; only :func:`ldn_generator_loss` and the LDN side of :func:`discriminator_loss`
    (with ``psn_adv = 0``) may read this pass.
    """
    assert nets.ldn_g_pa is not None and nets.ldn_g_ap is not None
    lp = ldn_points(portrait_landmarks, ROLE_SCHEMA["coser"], nets.cfg.landmark_set)
    la = ldn_points(anime_landmarks, ROLE_SCHEMA["anime"], nets.cfg.landmark_set)
    fake_la, fake_lp = nets.ldn_g_pa(lp), nets.ldn_g_ap(la)
    empty = lp.new_zeros((len(lp), 0))
    return GeneratorPass(
        portrait=empty,
        anime=empty,
        warped=empty,
        fake_anime=empty,
        fake_portrait=empty,
        cycle_portrait=empty,
        cycle_anime=empty,
        cam_pa=empty,
        cam_ap=empty,
        identity_anime=None,
        identity_portrait=None,
        identity_cam_pa=None,
        identity_cam_ap=None,
        adapt=lp.new_ones(len(lp)) if adapt is None else adapt,
        ldn_portrait=lp,
        ldn_anime=la,
        ldn_fake_anime=fake_la,
        ldn_fake_portrait=fake_lp,
        ldn_cycle_portrait=nets.ldn_g_ap(fake_la),
        ldn_cycle_anime=nets.ldn_g_pa(fake_lp),
    )


def _set_requires_grad(modules: list[nn.Module], flag: bool) -> None:
    for m in modules:
        m.requires_grad_(flag)


def gan_step(
    nets: PDANetworks,
    batch: Mapping[str, Any],
    optimizers: Optimizers,
    scaler: torch.amp.GradScaler,
    rt: Runtime,
    weights: LossWeights,
    phase: str = "joint",
    *,
    human_full_losses: bool = False,
    where: str = "",
) -> tuple[dict[str, Tensor], GeneratorPass | None]:
    """One discriminator update on detached fakes, then one generator update (discriminators frozen).

    ``batch``: a stage batch of :func:`pda_data.stream.loaders.stage_loader` (``portrait`` / ``anime``
    (B, 3, S, S), their landmarks (B, N, 2), ``portrait_domain``). ``phase``: ``ldn`` (LDN alone), ``psn``
    (PSN alone, LDN fixed) or ``joint`` (end to end). Human portraits take only L_structure and L_highlight
    unless ``human_full_losses``. ``optimizers``: by parameter group (``ldn_d``, ``ldn_g``, ``psn_d``,
    ``psn_g``; absent groups are skipped). Returns the ``loss/<term>`` metrics and the generator pass (for
    sample grids; ``None`` in the ``ldn`` phase, which generates no image).
    """
    dev = rt.device
    portrait = batch["portrait"].to(dev)
    anime = batch["anime"].to(dev)
    plm = batch["portrait_landmarks"].to(dev).float()
    alm = batch["anime_landmarks"].to(dev).float()
    if rt.channels_last:
        portrait = portrait.contiguous(memory_format=torch.channels_last)
        anime = anime.contiguous(memory_format=torch.channels_last)
    adapt = None
    if not human_full_losses:
        is_proxy = [d != "human" for d in batch["portrait_domain"]]
        adapt = torch.tensor(is_proxy, dtype=torch.float32, device=dev)
    if phase == "ldn":
        w_d, g_fn = dataclasses.replace(weights, psn_adv=0.0), ldn_generator_loss
        with autocast(rt):
            p = landmark_pass(nets, plm, alm, adapt)
    else:
        w_d = dataclasses.replace(weights, ldn_adv=0.0) if phase == "psn" else weights
        g_fn = psn_generator_loss if phase == "psn" else generator_loss
        with autocast(rt):
            p = nets.translate_step(
                portrait,
                plm,
                anime,
                alm,
                adapt=adapt,
                identity=identity_mode(weights),
                end_to_end=phase != "psn",
            )
    d_groups, g_groups = _PHASE_GROUPS[phase]
    d_opts = [optimizers[k] for k in d_groups if k in optimizers]
    g_opts = [optimizers[k] for k in g_groups if k in optimizers]
    discriminators = [m for m in (nets.ldn_d_a, nets.ldn_d_p, nets.psn_d_a, nets.psn_d_p) if m is not None]
    terms: dict[str, Tensor] = {}
    if d_opts:
        with autocast(rt):
            d_loss, d_terms = discriminator_loss(nets, p, w_d)
        terms.update(d_terms)
        guard_finite(d_terms, rt, where)
        if d_loss.requires_grad:
            apply_update(d_loss, scaler, d_opts, rt)
    _set_requires_grad(discriminators, False)
    try:
        with autocast(rt):
            g_loss, g_terms = g_fn(nets, p, weights)
        terms.update(g_terms)
        guard_finite(g_terms, rt, where)
        if g_loss.requires_grad:
            apply_update(g_loss, scaler, g_opts, rt)
    finally:
        _set_requires_grad(discriminators, True)
    scaler.update()
    nets.clip_rho()
    return {f"loss/{k}": v.detach() for k, v in terms.items()}, (None if phase == "ldn" else p)
