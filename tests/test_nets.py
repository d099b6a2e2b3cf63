"""Networks of the PDA model: shapes at tiny and paper size, U-GAT-IT parity, the warp bridge, presets."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from pda_data.schema import ANIME56, HUMAN68, HUMAN_TO_ANIME, STRUCTURE_CHANNELS
from pda_train.cli import describe as describe_cli
from pda_train.config import PRESETS, ConfigError, ModelConfig, Preset, Schedule, get_preset
from pda_train.losses import l1_loss
from pda_train.nets import build_networks, count_parameters, ldn_points, warp_portrait
from pda_train.nets.ldn import LandmarkGenerator
from pda_train.nets.psn import StylizationDiscriminator, StylizationGenerator
from pda_train.nets.summary import summarize

TINY = PRESETS["tiny"].model
PAPER = PRESETS["paper"].model


@pytest.fixture(scope="module")
def tiny_nets():
    torch.manual_seed(0)
    nets = build_networks(TINY)
    nets.freeze_auxiliary()
    return nets


def _portrait(samples_dir, size: int) -> torch.Tensor:
    """A real selfie as a (1, 3, size, size) tensor in [-1, 1]."""
    bgr = cv2.imread(str(samples_dir / "selfie_female_222.jpg"))
    rgb = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA)[:, :, ::-1]
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1


def _face_landmarks(schema, batch: int = 1, seed: int = 0) -> torch.Tensor:
    """Plausible normalized landmarks: contour on a lower ellipse, the rest scattered inside the face."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(-0.35, 0.35, size=(batch, schema.n_points, 2))
    angles = np.linspace(np.pi, 0, len(schema.contour))
    pts[:, list(schema.contour), 0] = 0.6 * np.cos(angles)
    pts[:, list(schema.contour), 1] = 0.1 + 0.6 * np.sin(angles)
    return torch.from_numpy(pts).float()


# ---------------------------------------------------------------- shapes


def test_tiny_shapes(tiny_nets):
    b, s = 2, TINY.image_size
    image = torch.rand(b, 3, s, s) * 2 - 1
    contour = torch.rand(b, 17, 2) * 2 - 1
    for name in ("ldn_g_pa", "ldn_g_ap"):
        assert getattr(tiny_nets, name)(contour).shape == (b, 17, 2)
    for name in ("ldn_d_a", "ldn_d_p"):
        assert getattr(tiny_nets, name)(contour).shape == (b, 1)
    for name in ("psn_g_pa", "psn_g_ap"):
        out, cam, heat = getattr(tiny_nets, name)(image)
        assert out.shape == image.shape and cam.shape == (b, 2) and heat.shape == (b, 1, s // 4, s // 4)
        assert out.abs().max() <= 1
    # 64 px through 3 stride-2 layers, one stride-1 and the 4x4 classifier: 8 -> 7 -> 6.
    for name in ("psn_d_a", "psn_d_p"):
        patch, cam, _ = getattr(tiny_nets, name)(image)
        assert patch.shape == (b, 1, 6, 6) and cam.shape == (b, 2)
    heat = tiny_nets.structure_detector(image)
    assert heat.shape == (b, len(STRUCTURE_CHANNELS), s, s) and heat.min() >= 0 and heat.max() <= 1
    assert tiny_nets.structure_classifier(heat).shape == (b,)
    assert tiny_nets.highlight_classifier(image).shape == (b,)


def test_paper_size_forward():
    """Paper configuration, one forward of each kind of network at batch 1 on CPU."""
    torch.manual_seed(0)
    s = PAPER.image_size
    image = torch.rand(1, 3, s, s) * 2 - 1
    with torch.no_grad():
        gen = StylizationGenerator(channels=64, blocks=6, image_size=s, light=False)
        out, cam, heat = gen(image)
        assert out.shape == (1, 3, s, s) and cam.shape == (1, 2) and heat.shape == (1, 1, 64, 64)
        del gen
        patch, cam, _ = StylizationDiscriminator(channels=64, downsamplings=5)(image)
        # 256 / 2**5 = 8 -> 7 -> 6: U-GAT-IT's global discriminator output.
        assert patch.shape == (1, 1, 6, 6) and cam.shape == (1, 2)
        nets = build_networks(ModelConfig(psn_channels=4, psn_light=True, disc_channels=4))
        heat = nets.structure_detector(image)
        assert heat.shape == (1, 4, s, s)
        assert nets.structure_classifier(heat).shape == (1,)
        assert nets.highlight_classifier(image).shape == (1,)
        assert nets.ldn_g_pa(torch.zeros(1, 17, 2)).shape == (1, 17, 2)
        assert nets.ldn_d_a(torch.zeros(1, 17, 2)).shape == (1, 1)
    assert len([m for m in nets.ldn_g_pa.modules() if isinstance(m, torch.nn.Linear)]) == 12
    assert len([m for m in nets.ldn_d_a.modules() if isinstance(m, torch.nn.Linear)]) == 7


# ---------------------------------------------------------------- U-GAT-IT parity


def _ugatit_generator_parameters(ngf: int, n_blocks: int, img_size: int, light: bool) -> int:
    """Parameters of znxlwm/UGATIT-pytorch networks.py ResnetGenerator, layer by layer (3-channel images)."""
    c = 4 * ngf
    n = 3 * ngf * 49 + ngf * 2 * ngf * 9 + 2 * ngf * 4 * ngf * 9  # 7x7 stem, two stride-2 3x3 convs
    n += n_blocks * 2 * c * c * 9  # ResnetBlock: two bias-free 3x3 convs
    n += 2 * c + 2 * c * c + c  # gap_fc, gmp_fc, conv1x1 (with bias)
    n += (c if light else (img_size // 4) ** 2 * c) * c + c * c  # FC: two bias-free linears
    n += 2 * c * c  # gamma, beta
    n += n_blocks * (2 * c * c * 9 + 2 * c)  # ResnetAdaILNBlock: two convs, two adaILN rho
    n += (
        c * (c // 2) * 9 + 3 * (c // 2) + (c // 2) * ngf * 9 + 3 * ngf
    )  # upsampling convs + ILN rho/gamma/beta
    return n + ngf * 3 * 49  # 7x7 output conv


def _ugatit_discriminator_parameters(ndf: int, n_layers: int) -> int:
    """Parameters of znxlwm/UGATIT-pytorch networks.py Discriminator (3-channel images)."""
    n = 3 * ndf * 16 + ndf
    for i in range(1, n_layers - 2):
        m = 2 ** (i - 1)
        n += ndf * m * ndf * m * 2 * 16 + ndf * m * 2
    m = 2 ** (n_layers - 3)
    n += ndf * m * ndf * m * 2 * 16 + ndf * m * 2
    c = ndf * 2 ** (n_layers - 2)
    return n + 2 * c + 2 * c * c + c + c * 16  # gap/gmp fc, conv1x1, 4x4 classifier


@pytest.mark.parametrize(("blocks", "light"), [(4, False), (6, False), (6, True)])
def test_generator_matches_ugatit(blocks, light):
    with torch.device("meta"):
        ours = StylizationGenerator(channels=64, blocks=blocks, image_size=256, light=light)
    expected = _ugatit_generator_parameters(64, blocks, 256, light)
    assert count_parameters(ours) == expected
    if (blocks, light) == (4, False):
        assert expected == 278_959_808  # U-GAT-IT's default full generator
    # Layer structure: 2 stride-2 convs, `blocks` residual + `blocks` AdaILN blocks, 2 upsamplings.
    strided = [m for m in ours.encoder.modules() if isinstance(m, torch.nn.Conv2d) and m.stride == (2, 2)]
    assert len(strided) == 2 and len(ours.decoder_blocks) == blocks
    assert sum(isinstance(m, torch.nn.Upsample) for m in ours.upsampler) == 2


@pytest.mark.parametrize(("downsamplings", "expected"), [(5, 53_130_176), (3, 3_290_560)])
def test_discriminator_matches_ugatit(downsamplings, expected):
    with torch.device("meta"):
        ours = StylizationDiscriminator(channels=64, downsamplings=downsamplings)
    assert count_parameters(ours) == _ugatit_discriminator_parameters(64, downsamplings + 2) == expected


# ---------------------------------------------------------------- landmarks and the warp bridge


def test_ldn_points_contour_and_full():
    human = torch.from_numpy(np.arange(68 * 2, dtype=np.float32).reshape(1, 68, 2))
    anime = torch.from_numpy(np.arange(56 * 2, dtype=np.float32).reshape(1, 56, 2))
    assert torch.equal(ldn_points(human, HUMAN68, "contour"), human[:, list(HUMAN68.contour)])
    assert torch.equal(ldn_points(anime, ANIME56, "contour"), anime[:, list(ANIME56.contour)])
    full_h, full_a = ldn_points(human, HUMAN68, "full"), ldn_points(anime, ANIME56, "full")
    ref_h, ref_a = HUMAN_TO_ANIME.apply(human[0].numpy(), anime[0].numpy())
    assert full_h.shape == full_a.shape == (1, len(HUMAN_TO_ANIME.pairs), 2)
    np.testing.assert_allclose(full_h[0].numpy(), ref_h, rtol=1e-6)
    np.testing.assert_allclose(full_a[0].numpy(), ref_a, rtol=1e-6)
    with pytest.raises(ValueError, match="human68"):
        ldn_points(anime, HUMAN68, "contour")


def test_full_landmark_ablation_builds_and_warps(samples_dir):
    nets = build_networks(ModelConfig(**{**TINY.__dict__, "landmark_set": "full"}))
    image = _portrait(samples_dir, TINY.image_size)
    warped, predicted = nets.warp(image, _face_landmarks(HUMAN68))
    assert warped.shape == image.shape and predicted.shape == (1, len(HUMAN_TO_ANIME.pairs), 2)


def test_identity_generator_leaves_portrait_unwarped(samples_dir):
    gen = LandmarkGenerator(landmark_set="contour", width=16, layers=3)
    with torch.no_grad():
        gen.body[-1].weight.zero_()
    image = _portrait(samples_dir, 64)
    warped, predicted = warp_portrait(gen, image, _face_landmarks(HUMAN68), HUMAN68)
    assert torch.allclose(predicted, ldn_points(_face_landmarks(HUMAN68), HUMAN68, "contour"))
    assert (warped - image).abs().mean() < 0.02


def test_moved_landmarks_move_pixels(samples_dir):
    """A generator that shifts every contour point down moves the face content down."""
    gen = LandmarkGenerator(landmark_set="contour", width=16, layers=3)
    with torch.no_grad():
        gen.body[-1].weight.zero_()
        gen.body[-1].bias.copy_(torch.tensor([0.0, 0.15] * 17))
    image = _portrait(samples_dir, 64)
    warped, _ = warp_portrait(gen, image, _face_landmarks(HUMAN68), HUMAN68)
    # Row profiles: the warped face region matches the original shifted down by ~0.15 * 31.5 px.
    rows = image[0].mean(dim=(0, 2))
    rows_warped = warped[0].mean(dim=(0, 2))
    errors = [(rows_warped[40 + k : 56 + k] - rows[40:56]).abs().mean().item() for k in range(0, 9)]
    assert 3 <= int(np.argmin(errors)) <= 7


def test_gradients_reach_ldn_through_warp_only_when_trainable(tiny_nets, samples_dir):
    image = _portrait(samples_dir, TINY.image_size)
    landmarks = _face_landmarks(HUMAN68)

    def psn_loss() -> None:
        tiny_nets.zero_grad(set_to_none=True)
        warped, _ = tiny_nets.warp(image, landmarks)
        fake, _, _ = tiny_nets.psn_g_pa(warped)
        l1_loss(fake, image).backward()

    psn_loss()
    grads = [p.grad for p in tiny_nets.ldn_g_pa.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum().item() for g in grads) > 0
    assert all(p.grad is None for p in tiny_nets.ldn_g_ap.parameters())

    tiny_nets.ldn_g_pa.requires_grad_(False)
    try:
        psn_loss()
        assert all(p.grad is None for p in tiny_nets.ldn_g_pa.parameters())
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in tiny_nets.psn_g_pa.parameters())
    finally:
        tiny_nets.ldn_g_pa.requires_grad_(True)


# ---------------------------------------------------------------- container


def test_container_groups_freezing_and_ablation(tiny_nets):
    groups = tiny_nets.parameter_groups()
    ids = [id(p) for params in groups.values() for p in params]
    assert len(ids) == len(set(ids))
    aux = sum(
        count_parameters(getattr(tiny_nets, n))
        for n in ("structure_detector", "structure_classifier", "highlight_classifier")
    )
    assert sum(p.numel() for ps in groups.values() for p in ps) + aux == count_parameters(tiny_nets)
    tiny_nets.train()
    assert tiny_nets.psn_g_pa.training and not tiny_nets.structure_detector.training
    assert not any(p.requires_grad for p in tiny_nets.highlight_classifier.parameters())

    no_ldn = build_networks(ModelConfig(**{**TINY.__dict__, "use_ldn": False}))
    assert no_ldn.ldn_g_pa is None and not no_ldn.parameter_groups()["ldn_g"]
    image = torch.rand(1, 3, 64, 64)
    warped, predicted = no_ldn.warp(image, _face_landmarks(HUMAN68))
    assert warped is image and predicted is None


def test_translate_step_outputs(tiny_nets):
    b, s = 2, TINY.image_size
    step = tiny_nets.translate_step(
        torch.rand(b, 3, s, s) * 2 - 1,
        _face_landmarks(HUMAN68, b),
        torch.rand(b, 3, s, s) * 2 - 1,
        _face_landmarks(ANIME56, b, seed=1),
        adapt=torch.tensor([1, 0]),
    )
    for name in ("warped", "fake_anime", "fake_portrait", "cycle_portrait", "cycle_anime"):
        assert getattr(step, name).shape == (b, 3, s, s)
    assert step.ldn_fake_anime.shape == step.ldn_cycle_portrait.shape == (b, 17, 2)
    assert step.adapt.tolist() == [1.0, 0.0]
    # Default "cam": the other domain goes through encoder + attention only, same logits as a full pass.
    assert step.identity_anime is None and step.identity_cam_pa.shape == (b, 2)
    args = (step.portrait, _face_landmarks(HUMAN68, b), step.anime, _face_landmarks(ANIME56, b))
    full = tiny_nets.translate_step(*args, identity="full")
    assert full.identity_anime.shape == (b, 3, s, s) and full.identity_portrait.shape == (b, 3, s, s)
    torch.testing.assert_close(full.identity_cam_pa, step.identity_cam_pa)
    torch.testing.assert_close(full.identity_cam_ap, step.identity_cam_ap)
    off = tiny_nets.translate_step(*args, identity="off")
    assert off.identity_cam_pa is None and off.identity_anime is None


# ---------------------------------------------------------------- presets and describe


def test_presets_and_overrides():
    paper = get_preset("paper")
    assert (paper.model.image_size, paper.model.psn_channels, paper.model.psn_blocks) == (256, 64, 6)
    assert paper.schedule.iterations == (500_000, 250_000, 250_000) and paper.schedule.batch_size == 1
    assert get_preset("tiny").model.image_size == 64
    custom = Preset.from_dict({"name": "tiny", "model": {"landmark_set": "full"}, "losses": {"cam": 0}})
    assert custom.model.landmark_set == "full" and custom.losses.cam == 0 and custom.model.image_size == 64
    assert Preset.from_dict(custom.to_dict()) == custom
    with pytest.raises(ConfigError, match="psn_chanels"):
        Preset.from_dict({"model": {"psn_chanels": 8}})
    with pytest.raises(ConfigError, match=r"^model\.psn_channels: expected int, got str \('many'\)$"):
        Preset.from_dict({"model": {"psn_channels": "many"}})
    with pytest.raises(ConfigError, match="model.use_ldn: expected bool"):
        Preset.from_dict({"model": {"use_ldn": 1}})
    assert Preset.from_dict({"losses": {"cam": 10}}).losses.cam == 10
    with pytest.raises(ConfigError, match="losses: expected a mapping"):
        Preset.from_dict({"losses": [1, 2]})
    with pytest.raises(ConfigError, match="landmark_set"):
        Preset.from_dict({"model": {"landmark_set": "eyes"}})
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        get_preset("huge")
    with pytest.raises(ValueError, match="less than 4x4"):
        ModelConfig(image_size=64, disc_downsamplings=5)


def test_schedule_learning_rates():
    schedule = Schedule()
    assert schedule.learning_rates(1, 123_456) == (1e-4, 1e-4)
    assert schedule.learning_rates(2, 0) == (1e-5, 1e-4)
    ldn, psn = schedule.learning_rates(3, 125_000)
    assert ldn == pytest.approx(5e-6) and psn == pytest.approx(5e-5)
    assert schedule.learning_rates(2, 250_000) == (0.0, 0.0)


def test_summary_counts_calls_and_activations():
    rows = {r.name: r for r in summarize(get_preset("tiny"))}
    nets = build_networks(TINY)
    for name, network in nets.named_networks():
        assert rows[name].parameters == count_parameters(network)
    # Generators: own direction, cycle and the encoder-only CAM pass; PSN D: G step on the fake,
    # D step on real + fake.
    assert rows["psn_g_pa"].calls == rows["psn_g_ap"].calls == 3
    assert rows["psn_d_a"].calls == 3 and rows["structure_detector"].calls == 1
    assert rows["ldn_g_pa"].calls == 2
    # Activations scale with the batch.
    doubled = {r.name: r for r in summarize(get_preset("tiny"), batch_size=4)}
    # (Spectral-norm weights are not activations: the discriminators' counts double too.)
    for name in ("psn_g_pa", "psn_d_a", "structure_detector"):
        assert doubled[name].activation_bytes == 2 * rows[name].activation_bytes > 0


def test_describe_command_prints_every_network():
    app = typer.Typer()
    app.callback()(lambda: None)
    describe_cli.register(app)
    result = CliRunner().invoke(app, ["describe", "--preset", "tiny", "--no-measure"], terminal_width=160)
    assert result.exit_code == 0, result.output
    for name in ("ldn_g_pa", "psn_d_p", "structure_detector", "highlight_classifier", "total"):
        assert name in result.output
    assert f"{count_parameters(build_networks(TINY).psn_g_pa):,}" in result.output
    bad = CliRunner().invoke(app, ["describe", "--preset", "huge"])
    assert bad.exit_code != 0 and "huge" in bad.output
