"""Stage and classifier streams: batch contract, flip permutation, domain weights, bad shards, schema checks,
DDP split."""

from __future__ import annotations

import collections
import io
import json
import shutil
import tarfile
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import REPO, run_torchrun
from shard_world import anime_annotations, face_template, portrait_folder, synth_folder

from pda_data.schema import HUMAN68, STRUCTURE_FLIP, denormalize_points
from pda_data.shards.index import INDEX_NAME, ROLE_SCHEMA, ShardError, read_index, shard_entries, shard_urls
from pda_data.shards.pack import pack
from pda_data.shards.tar import iter_tar_samples
from pda_data.stream import augment, domains, loaders, readers
from pda_data.stream.augment import Augmenter
from pda_data.stream.domains import draw_domains
from pda_data.stream.loaders import aux_loader, stage_loader

COSER = {"coser": 1.0}  # stage 1's portrait mix


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory, samples_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("world")
    sources = {
        "coser": portrait_folder(root / "cosers", 24, prefix="coser", size=64),
        "human": portrait_folder(root / "humans", 12, prefix="human", size=64, seed=3),
        "anime": anime_annotations(root, samples_dir, 16, size=64),
        "structure": synth_folder(root / "structure", samples_dir, 12, size=64),
    }
    out = root / "S"
    pack(out, sources, test_fraction=0.25, shard_size=2, seed=1)
    return out


def _key_to_shard(packed: Path, role: str) -> dict[str, str]:
    index = read_index(packed)
    return {
        k: e["name"]
        for _, _, e in shard_entries(index, role)
        for k, _ in iter_tar_samples(packed / e["name"])
    }


def test_stage1_batches_follow_the_contract(packed: Path) -> None:
    loader = iter(stage_loader(packed, COSER, batch_size=5, image_size=48, seed=0))
    batch = next(loader)
    assert batch["portrait"].shape == (5, 3, 48, 48) and batch["anime"].shape == (5, 3, 48, 48)
    assert batch["portrait"].dtype == torch.float32
    assert batch["portrait_landmarks"].shape == (5, 68, 2) and batch["anime_landmarks"].shape == (5, 56, 2)
    assert batch["portrait_domain"] == ["coser"] * 5
    for name in ("portrait", "anime"):
        assert batch[name].min() >= -1.0 and batch[name].max() <= 1.0 and batch[name].std() > 0.1
    # Template landmarks sit inside the face square: within [-1, 1] up to the random-crop margin.
    assert batch["portrait_landmarks"].abs().max() <= 1.2
    coser_keys = _key_to_shard(packed, "coser")
    assert all(k in coser_keys for k in batch["portrait_key"])
    # Same seed, same stream.
    again = next(iter(stage_loader(packed, COSER, batch_size=5, image_size=48, seed=0)))
    assert torch.equal(again["portrait"], batch["portrait"]) and again["anime_key"] == batch["anime_key"]


def test_flip_applies_the_schema_permutation(samples_dir: Path) -> None:
    rgb = cv2.cvtColor(cv2.imread(str(samples_dir / "selfie_female_222.jpg")), cv2.COLOR_BGR2RGB)
    pts = face_template(HUMAN68) * 200 + 28
    extra = HUMAN68.structure_points(pts)
    plain = Augmenter(128, train=True, seed=5, flip_prob=0.0)(rgb, pts, HUMAN68, extra, np.arange(4))
    flipped = Augmenter(128, train=True, seed=5, flip_prob=1.0)(rgb, pts, HUMAN68, extra, np.arange(4))
    np.testing.assert_array_equal(flipped[0], plain[0][:, ::-1])
    assert np.abs(HUMAN68.flip(flipped[1], 128) - plain[1]).max() < 1.0
    # Semantics survive: the mirrored image's left-eye points are still on the image left.
    left, right = HUMAN68.eye_centres(flipped[1])
    assert left[0] < right[0]
    assert list(flipped[3]) == list(STRUCTURE_FLIP)
    assert np.abs(flipped[2][:, 0] - (127 - plain[2][:, 0])).max() < 1e-9
    # The landmark still sits on the same content: the crop maps pixel centres exactly.
    ev = Augmenter(128, train=False, seed=0)(rgb, pts, HUMAN68)
    np.testing.assert_allclose(ev[1], (pts + 0.5) * 0.5 - 0.5, atol=1e-6)


def test_mixer_proportions_match_the_weights(packed: Path) -> None:
    rng = np.random.default_rng(0)
    draws = collections.Counter(
        d for d, _ in zip(draw_domains({"coser": 1, "aug": 1, "human": 2}, rng), range(2000), strict=False)
    )
    assert abs(draws["human"] / 2000 - 0.5) < 0.03 and abs(draws["aug"] / 2000 - 0.25) < 0.03
    weights = {"coser": 0.7, "human": 0.3}  # aug is drawn the same way; fusing 600 of them is too slow here
    loader = iter(stage_loader(packed, weights, batch_size=100, image_size=32, seed=3))
    counts = collections.Counter()
    coser_keys, human_keys = set(_key_to_shard(packed, "coser")), set(_key_to_shard(packed, "human"))
    for _ in range(20):
        batch = next(loader)
        counts.update(batch["portrait_domain"])
        for dom, key in zip(batch["portrait_domain"], batch["portrait_key"], strict=True):
            expected = {"coser": key in coser_keys, "human": key in human_keys, "aug": "+" in key}
            assert expected[dom]
    assert sum(counts.values()) == 2000
    for dom, w in weights.items():
        assert abs(counts[dom] / 2000 - w) < 0.03
    with pytest.raises(ValueError, match="unknown portrait domain"):
        stage_loader(packed, {"selfie": 1.0}, batch_size=2, image_size=32, seed=0)


def test_stage2_fuses_aug_portraits_on_the_fly(packed: Path) -> None:
    loader = iter(stage_loader(packed, {"coser": 0.5, "aug": 0.5}, batch_size=40, image_size=32, seed=2))
    batch = next(loader)
    assert set(batch["portrait_domain"]) == {"coser", "aug"}
    assert all(
        "+" in k for d, k in zip(batch["portrait_domain"], batch["portrait_key"], strict=True) if d == "aug"
    )


def test_a_truncated_shard_is_skipped_with_a_warning(packed: Path, tmp_path: Path) -> None:
    shards = tmp_path / "S"
    shutil.copytree(packed, shards)
    urls = shard_urls(shards, "coser", "train")
    bad = urls[0]
    Path(bad).write_bytes(Path(bad).read_bytes()[:3000])  # inside the first image member
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stream = readers.decoded_role(readers.role_source(shards, "coser", "train"), seed=0)
        samples = [next(stream) for _ in range(60)]
    messages = [str(w.message) for w in caught]
    assert any(bad in m and "skipping unreadable shard" in m for m in messages)
    assert len(samples) == 60 and all(s["url"] != bad for s in samples)
    assert sum(bad in m and "unreadable shard" in m for m in messages) == 1  # once, then never drawn again


def test_readers_split_shards_disjointly(packed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    urls = shard_urls(packed, "coser", "train")
    seen: list[set[str]] = []
    for rank in range(2):
        for worker in range(2):
            for var, value in (("RANK", rank), ("WORLD_SIZE", 2), ("WORKER", worker), ("NUM_WORKERS", 2)):
                monkeypatch.setenv(var, str(value))
            seen.append(set(readers.reader_shards(urls, allow_shared=False)))
    assert set().union(*seen) == set(urls) and sum(len(s) for s in seen) == len(urls)


@pytest.mark.slow
def test_two_ranks_two_workers_read_disjoint_shards(packed: Path, tmp_path: Path) -> None:
    proc = run_torchrun(REPO / "tests" / "ddp_stream_worker.py", str(packed), str(tmp_path), "6", timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shard_of = _key_to_shard(packed, "coser")
    by_reader: dict[tuple[int, int], set[str]] = collections.defaultdict(set)
    for rank in range(2):
        report = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert report["world"] == 2
        for i, keys in enumerate(report["keys"]):
            by_reader[(rank, i % 2)] |= {shard_of[k] for k in keys}
    assert len(by_reader) == 4 and all(by_reader.values())
    shard_sets = list(by_reader.values())
    for i in range(4):
        for j in range(i + 1, 4):
            assert not shard_sets[i] & shard_sets[j]


def test_aux_loader_structure_batches_and_one_pass(packed: Path) -> None:
    index = read_index(packed)
    batch = next(iter(aux_loader(packed, "structure", split="train", batch_size=6, image_size=64, seed=0)))
    assert batch["image"].shape == (6, 3, 64, 64) and batch["heatmaps"].shape == (6, 4, 64, 64)
    assert set(batch["label"].tolist()) <= {0.0, 1.0}
    # Each point's heatmap peaks on it: the legit samples have all four channels lit, abnormal ones three.
    lit = (batch["heatmaps"].amax(dim=(2, 3)) > 0.5).sum(dim=1)
    assert torch.equal(lit, torch.where(batch["label"] > 0, 4, 3))
    once = list(
        aux_loader(packed, "structure", split="test", batch_size=2, image_size=64, seed=0, infinite=False)
    )
    assert sum(len(b["label"]) for b in once) == index["roles"]["structure"]["splits"]["test"]["samples"]
    assert len({k for b in once for k in b["key"]}) == sum(len(b["key"]) for b in once)


def test_landmarks_denormalize_onto_the_sample_pixels(packed: Path) -> None:
    """Eval mode (test split) only resizes: normalized landmarks map back to stored landmarks x scale."""
    stream = loaders.role_samples(packed, "coser", split="test", image_size=64, seed=0, infinite=False)
    s = next(stream)
    norm = augment.points_to_tensor([s["points"]], 64)[0].numpy()
    stored = np.asarray(s["meta"]["landmarks"]).reshape(-1, 2)
    np.testing.assert_allclose(denormalize_points(norm, 64, 64), stored, atol=1e-3)


def test_train_crops_keep_landmarks_on_their_pixels() -> None:
    """A random crop-resize (and flip) moves each landmark exactly as it moves the pixel under it."""
    rng = np.random.default_rng(0)
    pts = rng.uniform(60, 196, size=(68, 2)).round()
    for flip in (0.0, 1.0):
        aug = Augmenter(200, train=True, seed=7, flip_prob=flip)
        for k in (0, 30, 45):
            rgb = np.zeros((256, 256, 3), np.uint8)
            x, y = pts[k].astype(int)
            rgb[y - 2 : y + 3, x - 2 : x + 3] = 255  # a 5x5 dot centred on landmark k
            image, out, _, _ = aug(rgb, pts, HUMAN68)
            j = HUMAN68.flip_perm[k] if flip else k  # the flip re-indexes mirrored landmarks
            ys, xs = np.nonzero(image[..., 0] > 127)
            assert abs(xs.mean() - out[j, 0]) < 0.6 and abs(ys.mean() - out[j, 1]) < 0.6


def test_unit_range_and_batches_are_exact_float32() -> None:
    values = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16).expand(2, 3, 16, 16)
    out = augment.unit_range(values)
    assert out.dtype == torch.float32 and out.is_contiguous() and out.min() == -1.0 and out.max() == 1.0
    assert torch.equal(out, (values.double() / 127.5 - 1.0).float())  # x / 127.5 - 1, correctly rounded
    rgb = np.random.default_rng(1).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    batch = augment.images_to_tensor(list(rgb))
    assert torch.equal(batch, augment.unit_range(torch.from_numpy(rgb).permute(0, 3, 1, 2)))
    with pytest.raises(ValueError, match="does not fit"):
        augment.images_to_tensor([rgb[0], rgb[1, :4]])


def test_shuffle_buffer_permutes_reproducibly() -> None:
    import random

    def run(seed: int) -> list[int]:
        return list(readers.shuffled(range(1000), 100, random.Random(seed), initial=10))

    a, b = run(0), run(0)
    assert a == b and sorted(a) == list(range(1000)) and a != list(range(1000)) and run(1) != a
    # A buffer of 100 moves samples but keeps them near their stream position (~ the buffer size).
    assert max(abs(i - v) for i, v in enumerate(a[:500])) < 400


@pytest.mark.slow
def test_worker_batches_equal_in_process_batches(packed: Path) -> None:
    """Workers ship uint8 batches; the float conversion in the main process gives the same tensors."""
    inline = next(iter(stage_loader(packed, COSER, batch_size=4, image_size=40, seed=5)))
    worker = next(iter(stage_loader(packed, COSER, batch_size=4, image_size=40, seed=5, num_workers=1)))
    for key in ("portrait", "anime"):
        assert worker[key].dtype == torch.float32 and worker[key].is_contiguous()
        assert torch.equal(worker[key], inline[key])
    assert worker["anime_key"] == inline["anime_key"]
    assert torch.equal(worker["portrait_landmarks"], inline["portrait_landmarks"])


def test_role_schema_is_read_back_and_checked(packed: Path, tmp_path: Path) -> None:
    """The schema pack records (index.json and each sample's JSON) must be the role's, or ShardError."""
    source = readers.role_source(packed, "anime", "train")
    assert source.schema is ROLE_SCHEMA["anime"] and source.image_format == "png"
    shards = tmp_path / "S"
    shutil.copytree(packed, shards)
    index_file = shards / INDEX_NAME
    index = json.loads(index_file.read_text())
    index["roles"]["coser"]["schema"] = "anime56"
    index_file.write_text(json.dumps(index))
    with pytest.raises(ShardError, match=r"index\.json: role 'coser' was packed with .* 'anime56'"):
        stage_loader(shards, COSER, batch_size=2, image_size=32, seed=0)
    # A sample whose own JSON names another schema stops the stream with its shard's name.
    bad = Path(shard_urls(packed, "human", "train")[0])
    members = [
        (m, json.loads(data) if m.endswith(".json") else data)
        for key, parts in iter_tar_samples(bad)
        for m, data in ((f"{key}.{ext}", value) for ext, value in parts.items())
    ]
    assert members
    rewritten = tmp_path / bad.name
    with tarfile.open(rewritten, "w") as tar:
        for name, data in members:
            if isinstance(data, dict):
                data = json.dumps({**data, "schema": "anime56"}).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    source = readers.RoleSource("human", [str(rewritten)], "png", ROLE_SCHEMA["human"])
    with pytest.raises(ShardError, match=rf"{rewritten.name} \[.*\]: landmark schema 'anime56'"):
        next(readers.decoded_role(source, seed=0, infinite=False))


def test_a_human_only_mix_reads_no_coser_shards(packed: Path) -> None:
    batch = next(iter(stage_loader(packed, {"human": 2.0}, batch_size=6, image_size=32, seed=4)))
    human_keys = set(_key_to_shard(packed, "human"))
    assert batch["portrait_domain"] == ["human"] * 6 and set(batch["portrait_key"]) <= human_keys
    assert domains.needed_roles(domains.check_weights({"aug": 1.0, "coser": 0.0})) == {"coser", "human"}
    with pytest.raises(ValueError, match="positive sum"):
        domains.check_weights({"coser": 0.0})
