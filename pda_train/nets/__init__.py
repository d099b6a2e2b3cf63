"""The PDA model: every network of the paper in one container built from a :class:`ModelConfig`.

``build_networks(cfg)`` returns :class:`PDANetworks`, whose attributes are the paper's networks:

====================== =====================================================================
``ldn_g_pa/ldn_g_ap``  LDN generators G_p->a, G_a->p (``None`` with ``use_ldn=False``)
``ldn_d_a/ldn_d_p``    LDN discriminators D_a, D_p (``None`` with ``use_ldn=False``)
``psn_g_pa/psn_g_ap``  PSN generators (U-GAT-IT)
``psn_d_a/psn_d_p``    PSN discriminators with CAM
``structure_detector`` U-Net, RGB -> 4 structure heatmaps (frozen while the PSN trains)
``structure_classifier`` classifier on the heatmaps (frozen)
``highlight_classifier`` classifier on RGB (frozen)
====================== =====================================================================

:meth:`PDANetworks.translate_step` runs every generator of one training step and returns a
:class:`GeneratorPass`, which ``pda_train.losses`` turns into the totals of Eq. 3 and Eq. 6.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from pda_data.schema import ANIME56, HUMAN68, LandmarkSchema
from pda_train.config import ModelConfig
from pda_train.nets.auxiliary import FaceClassifier, StructureDetector
from pda_train.nets.layers import count_parameters
from pda_train.nets.ldn import LandmarkDiscriminator, LandmarkGenerator, ldn_points, warp_portrait
from pda_train.nets.psn import StylizationDiscriminator, StylizationGenerator

__all__ = [
    "GeneratorPass",
    "IdentityMode",
    "PDANetworks",
    "build_networks",
    "count_parameters",
    "ldn_points",
    "warp_portrait",
]

AUXILIARY = ("structure_detector", "structure_classifier", "highlight_classifier")

IdentityMode = Literal["off", "cam", "full"]


@dataclass
class GeneratorPass:
    """Every output of one generator pass (both directions), reused by the discriminator update.

    Images are (B, 3, S, S) in [-1, 1]; LDN tensors are (B, P, 2) points; CAM logits are (B, 2).
    ``adapt`` (B,) is 1 for portraits that take the portrait-side adversarial, cycle and CAM terms (PSN
    and LDN) and 0 for those that take only the structure and highlight terms (human portraits in
    stage 3, Sec. 3.3).
    The identity fields (each generator applied to its target domain) depend on the ``identity`` mode of
    :meth:`PDANetworks.translate_step`: ``None`` with "off", only the CAM logits with "cam", all with "full".
    """

    portrait: Tensor
    anime: Tensor
    warped: Tensor
    fake_anime: Tensor
    fake_portrait: Tensor
    cycle_portrait: Tensor
    cycle_anime: Tensor
    cam_pa: Tensor
    cam_ap: Tensor
    identity_anime: Tensor | None
    identity_portrait: Tensor | None
    identity_cam_pa: Tensor | None
    identity_cam_ap: Tensor | None
    adapt: Tensor
    ldn_portrait: Tensor | None = None
    ldn_anime: Tensor | None = None
    ldn_fake_anime: Tensor | None = None
    ldn_fake_portrait: Tensor | None = None
    ldn_cycle_portrait: Tensor | None = None
    ldn_cycle_anime: Tensor | None = None


def psn_generator(cfg: ModelConfig) -> StylizationGenerator:
    """A Portrait Stylization Network generator at ``cfg``'s size (U-GAT-IT's generator at the same size)."""
    return StylizationGenerator(
        channels=cfg.psn_channels, blocks=cfg.psn_blocks, image_size=cfg.image_size, light=cfg.psn_light
    )


class PDANetworks(nn.Module):
    """All networks of the PDA model; see the module docstring for the attribute names."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.ldn_g_pa: LandmarkGenerator | None = None
        self.ldn_g_ap: LandmarkGenerator | None = None
        self.ldn_d_a: LandmarkDiscriminator | None = None
        self.ldn_d_p: LandmarkDiscriminator | None = None
        if cfg.use_ldn:
            gen = {
                "landmark_set": cfg.landmark_set,
                "width": cfg.ldn_width,
                "layers": cfg.ldn_generator_layers,
            }
            disc = {
                "landmark_set": cfg.landmark_set,
                "width": cfg.ldn_width,
                "layers": cfg.ldn_discriminator_layers,
            }
            self.ldn_g_pa, self.ldn_g_ap = LandmarkGenerator(**gen), LandmarkGenerator(**gen)
            self.ldn_d_a, self.ldn_d_p = LandmarkDiscriminator(**disc), LandmarkDiscriminator(**disc)
        d = {"channels": cfg.disc_channels, "downsamplings": cfg.disc_downsamplings}
        self.psn_g_pa, self.psn_g_ap = psn_generator(cfg), psn_generator(cfg)
        self.psn_d_a, self.psn_d_p = StylizationDiscriminator(**d), StylizationDiscriminator(**d)
        self.structure_detector = StructureDetector(channels=cfg.detector_channels, depth=cfg.detector_depth)
        self.structure_classifier = FaceClassifier(in_channels=4, channels=cfg.classifier_channels)
        self.highlight_classifier = FaceClassifier(in_channels=3, channels=cfg.classifier_channels)
        self.auxiliary_frozen = False

    def named_networks(self) -> list[tuple[str, nn.Module]]:
        """(attribute name, network) for every network present, in the table order of the docstring."""
        return [(name, module) for name, module in self.named_children()]

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters per optimiser: ``ldn_g``, ``ldn_d``, ``psn_g``, ``psn_d`` (LDN ones empty
        without LDN); the auxiliary networks are trained separately and are frozen here."""

        def params(*names: str) -> list[nn.Parameter]:
            return [p for n in names if getattr(self, n) is not None for p in getattr(self, n).parameters()]

        return {
            "ldn_g": params("ldn_g_pa", "ldn_g_ap"),
            "ldn_d": params("ldn_d_a", "ldn_d_p"),
            "psn_g": params("psn_g_pa", "psn_g_ap"),
            "psn_d": params("psn_d_a", "psn_d_p"),
        }

    def freeze_auxiliary(self) -> None:
        """Freeze the pretrained detector and classifiers: no gradients, eval mode kept by :meth:`train`.

        Gradients still flow *through* them to the generated image (L_structure, L_highlight).
        """
        for name in AUXILIARY:
            getattr(self, name).requires_grad_(False).eval()
        self.auxiliary_frozen = True

    def train(self, mode: bool = True) -> PDANetworks:
        super().train(mode)
        if self.auxiliary_frozen:
            for name in AUXILIARY:
                getattr(self, name).eval()
        return self

    def clip_rho(self) -> None:
        """Clamp the (Ada)ILN mixes of both PSN generators to [0, 1]; call after each generator step."""
        self.psn_g_pa.clip_rho()
        self.psn_g_ap.clip_rho()

    def warp(
        self, image: Tensor, landmarks: Tensor, schema: LandmarkSchema = HUMAN68, *, grid: int | None = 64
    ) -> tuple[Tensor, Tensor | None]:
        """I_w and the predicted anime points; without an LDN the portrait itself and ``None``."""
        if self.ldn_g_pa is None:
            return image, None
        return warp_portrait(self.ldn_g_pa, image, landmarks, schema, grid=grid)

    def translate_step(
        self,
        portrait: Tensor,
        portrait_landmarks: Tensor,
        anime: Tensor,
        anime_landmarks: Tensor,
        *,
        adapt: Tensor | None = None,
        identity: IdentityMode = "cam",
        end_to_end: bool = True,
        grid: int | None = 64,
    ) -> GeneratorPass:
        """Run every generator of one training step on a batch of the stream's layout.

        ``portrait_landmarks`` are HUMAN68 and ``anime_landmarks`` ANIME56, (B, N, 2) in [-1, 1].
        ``identity`` runs each PSN generator on the other domain too: "cam" only its encoder and attention
        (all the CAM loss needs), "full" the whole generator (for U-GAT-IT's identity loss), "off" neither;
        ``pda_train.losses.identity_mode(weights)`` picks the cheapest one the weights allow.
        ``end_to_end=False`` cuts the gradient between PSN and LDN (stage 1 trains them apart).
        """
        batch = portrait.shape[0]
        adapt = (
            torch.ones(batch, device=portrait.device) if adapt is None else adapt.to(portrait.device).float()
        )
        ldn: dict[str, Tensor] = {}
        warped, fake_la = self.warp(portrait, portrait_landmarks, HUMAN68, grid=grid)
        if not end_to_end:
            warped = warped.detach()
        if fake_la is not None and self.ldn_g_pa is not None and self.ldn_g_ap is not None:
            # The warp already ran G_p->a on the portrait's LDN points: fake_la is its prediction.
            lp = ldn_points(portrait_landmarks, HUMAN68, self.cfg.landmark_set)
            la = ldn_points(anime_landmarks, ANIME56, self.cfg.landmark_set)
            fake_lp = self.ldn_g_ap(la)
            ldn = {
                "ldn_portrait": lp,
                "ldn_anime": la,
                "ldn_fake_anime": fake_la,
                "ldn_fake_portrait": fake_lp,
                "ldn_cycle_portrait": self.ldn_g_ap(fake_la),
                "ldn_cycle_anime": self.ldn_g_pa(fake_lp),
            }
        fake_anime, cam_pa, _ = self.psn_g_pa(warped)
        fake_portrait, cam_ap, _ = self.psn_g_ap(anime)
        identity_anime = identity_portrait = identity_cam_pa = identity_cam_ap = None
        if identity == "full":
            identity_anime, identity_cam_pa, _ = self.psn_g_pa(anime)
            identity_portrait, identity_cam_ap, _ = self.psn_g_ap(warped)
        elif identity == "cam":
            identity_cam_pa = self.psn_g_pa.attention(anime)[1]
            identity_cam_ap = self.psn_g_ap.attention(warped)[1]
        elif identity != "off":
            raise ValueError(f"identity must be 'off', 'cam' or 'full', got {identity!r}")
        return GeneratorPass(
            portrait=portrait,
            anime=anime,
            warped=warped,
            fake_anime=fake_anime,
            fake_portrait=fake_portrait,
            cycle_portrait=self.psn_g_ap(fake_anime)[0],
            cycle_anime=self.psn_g_pa(fake_portrait)[0],
            cam_pa=cam_pa,
            cam_ap=cam_ap,
            identity_anime=identity_anime,
            identity_portrait=identity_portrait,
            identity_cam_pa=identity_cam_pa,
            identity_cam_ap=identity_cam_ap,
            adapt=adapt,
            **ldn,
        )


def build_networks(cfg: ModelConfig) -> PDANetworks:
    """Every network of the PDA model for ``cfg``; auxiliary networks start trainable (pretraining)."""
    return PDANetworks(cfg)
