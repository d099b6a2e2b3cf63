"""`pda-data pack / verify / inspect / export-hf` over small real-pixel input folders."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
import zlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import webdataset as wds
from shard_world import anime_annotations, portrait_folder, synth_folder
from typer.testing import CliRunner

from pda_data.cli import app
from pda_data.curation.table import read_portraits, write_portraits
from pda_data.io.files import sha256_file
from pda_data.io.table import MANIFEST_NAME
from pda_data.shards.index import INDEX_NAME, read_index, shard_entries, shard_urls, split_of
from pda_data.shards.names import SPLITS
from pda_data.shards.pack import pack, write_shards
from pda_data.shards.sample import decode_rgb, tar_key
from pda_data.shards.tar import iter_tar_members, iter_tar_samples
from pda_data.shards.verify import verify

runner = CliRunner()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, samples_dir: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("inputs")
    cosers = portrait_folder(root / "cosers", 24, prefix="coser")
    # One kept row whose image is corrupt: pack must name it and go on.
    df = read_portraits(cosers)
    (cosers / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    broken = df.iloc[0].copy()
    broken["key"], broken["image"] = "coser_broken", "images/broken.png"
    write_portraits(pd.concat([df, broken.to_frame().T], ignore_index=True), cosers / MANIFEST_NAME)
    return {
        "coser": cosers,
        "human": portrait_folder(root / "humans", 10, prefix="human", seed=3),
        "anime": anime_annotations(root, samples_dir, 12),
        "structure": synth_folder(root / "structure", samples_dir, 12),
    }


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory, inputs: dict[str, Path]) -> Path:
    out = tmp_path_factory.mktemp("shards") / "S"
    result = pack(out, inputs, test_fraction=0.25, shard_size=3, seed=7)
    assert [p.key for p in result.problems] == ["coser_broken"]
    return out


def _copy(packed: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "S"
    shutil.copytree(packed, dst)
    return dst


def test_pack_writes_plain_tars_and_a_complete_index(packed: Path, inputs: dict[str, Path]) -> None:
    index = read_index(packed)
    assert index["schema_version"] == 1
    assert index["command"] == (
        f"pda-data pack --out {packed} --cosers {inputs['coser']} --humans {inputs['human']} --anime "
        f"{inputs['anime']} --structure {inputs['structure']} --test-fraction 0.25 --shard-size 3 "
        "--max-shard-bytes 1073741824 --image-format png --seed 7"
    )
    assert index["roles"]["coser"]["skipped"] == 1
    kept = {"coser": 24, "human": 10, "anime": 12, "structure": 12}
    for role, n in kept.items():
        splits = index["roles"][role]["splits"]
        assert splits["train"]["samples"] + splits["test"]["samples"] == n
        keys_by_split: dict[str, set[str]] = {"train": set(), "test": set()}
        for _, split, entry in shard_entries(index, role):
            path = packed / entry["name"]
            assert path.name.startswith(f"{role}-{split}-") and path.parent == packed / role / split
            assert path.stat().st_size == entry["bytes"] and sha256_file(path) == entry["sha256"]
            assert entry["samples"] <= 3
            # Readable by the system tar: one image and one json member per sample.
            names = subprocess.run(
                ["tar", "-tf", str(path)], check=True, capture_output=True, text=True
            ).stdout.split()
            assert len(names) == 2 * entry["samples"]
            keys_by_split[split] |= {n.split(".")[0] for n in names}
        for split, keys in keys_by_split.items():
            assert all(split_of(k, 0.25) == split for k in keys)
        assert len(keys_by_split["train"] | keys_by_split["test"]) == n
    # Sample metadata of each kind of role.
    _, members = next(
        iter_tar_samples(packed / index["roles"]["coser"]["splits"]["train"]["shards"][0]["name"])
    )
    meta = json.loads(members["json"])
    assert meta["domain"] == "coser" and meta["schema"] == "human68" and len(meta["landmarks"]) == 136
    assert set(meta["pose"]) == {"yaw", "pitch", "roll"} and meta["source"].startswith("astronaut#")
    rgb = cv2.imdecode(np.frombuffer(members["png"], np.uint8), cv2.IMREAD_COLOR)
    assert rgb.shape == (256, 256, 3) and (meta["width"], meta["height"]) == (256, 256)
    _, members = next(
        iter_tar_samples(packed / index["roles"]["structure"]["splits"]["train"]["shards"][0]["name"])
    )
    meta = json.loads(members["json"])
    assert meta["label"] in (0, 1) and len(meta["structure_points"]) == 2 * len(meta["structure_channels"])
    assert len(meta["landmarks"]) == 112 and meta["pose"] is None


def test_split_is_stable_as_data_grows_and_repack_is_identical(
    tmp_path: Path, inputs: dict[str, Path]
) -> None:
    small = tmp_path / "small"
    portrait_folder(small, 10, prefix="coser")  # same keys as the first 10 of the full folder
    a = pack(tmp_path / "A", {"coser": small}, test_fraction=0.3, shard_size=2)
    b = pack(tmp_path / "B", {"coser": inputs["coser"]}, test_fraction=0.3, shard_size=2)

    def keys(root: Path, index: dict, split: str) -> set[str]:
        return {
            k
            for _, _, e in shard_entries(index, "coser", split)
            for k, _ in iter_tar_samples(root / e["name"])
        }

    for split in SPLITS:
        assert keys(tmp_path / "A", a.index, split) <= keys(tmp_path / "B", b.index, split)
    # A larger earlier pack into the same folder: its extra shards and temp leftovers disappear.
    pack(tmp_path / "A", {"coser": inputs["coser"]}, test_fraction=0.3, shard_size=1)
    (tmp_path / "A" / "coser" / "train" / ".coser-train-000000.tar.x1.tmp").write_bytes(b"partial")
    again = pack(tmp_path / "A", {"coser": inputs["coser"]}, test_fraction=0.3, shard_size=2)
    assert again.index["roles"]["coser"]["splits"] == b.index["roles"]["coser"]["splits"]  # byte-identical
    assert sorted(p.name for p in (tmp_path / "A").rglob("*.tar")) == sorted(
        p.name for p in (tmp_path / "B").rglob("*.tar")
    )
    assert not list((tmp_path / "A").rglob("*.tmp"))
    assert verify(tmp_path / "A") == ([], len(shard_entries(b.index)))


def test_verify_passes_then_names_a_shard_with_a_flipped_byte(packed: Path, tmp_path: Path) -> None:
    assert verify(packed, deep=True)[0] == []
    shards = _copy(packed, tmp_path)
    entry = read_index(shards)["roles"]["anime"]["splits"]["train"]["shards"][1]
    path = shards / entry["name"]
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x01
    path.write_bytes(bytes(data))
    problems, _ = verify(shards)
    assert {p.where for p in problems} == {entry["name"]}
    assert any("sha256" in p.message for p in problems)
    result = runner.invoke(app, ["verify", str(shards)])
    assert result.exit_code == 1
    assert entry["name"] in result.output


def test_verify_fails_on_a_truncated_shard(packed: Path, tmp_path: Path) -> None:
    shards = _copy(packed, tmp_path)
    entry = read_index(shards)["roles"]["coser"]["splits"]["train"]["shards"][0]
    path = shards / entry["name"]
    path.write_bytes(path.read_bytes()[: entry["bytes"] // 2])
    problems, _ = verify(shards)
    messages = " | ".join(p.message for p in problems if p.where == entry["name"])
    assert "size" in messages and "unreadable tar" in messages
    (shards / entry["name"]).unlink()
    assert any(p.message == "shard file is missing" for p in verify(shards)[0])


def test_deep_verify_catches_metadata_that_breaks_the_schema(packed: Path, tmp_path: Path) -> None:
    shards = _copy(packed, tmp_path)
    index = read_index(shards)
    entry = index["roles"]["human"]["splits"]["train"]["shards"][0]
    path = shards / entry["name"]
    samples = list(iter_tar_samples(path))
    key, members = samples[0]
    meta = json.loads(members["json"])
    meta["landmarks"] = meta["landmarks"][:-2]  # 67 points
    members["json"] = json.dumps(meta).encode()
    entries = write_shards(
        [(k, m["png"], m["json"]) for k, m in samples],
        tmp_path / "rewrite",
        "human",
        "train",
        image_format="png",
        shard_size=100,
        max_shard_bytes=1 << 30,
    )
    shutil.copy(tmp_path / "rewrite" / entries[0]["name"], path)
    entry.update(bytes=entries[0]["bytes"], sha256=entries[0]["sha256"])
    (shards / INDEX_NAME).write_text(json.dumps(index))
    assert verify(shards)[0] == []  # the index matches the files
    problems, _ = verify(shards, deep=True)
    assert [(p.where, p.key) for p in problems] == [(entry["name"], key)]
    assert "landmarks" in problems[0].message


def test_webdataset_and_hugging_face_read_the_shards(packed: Path, tmp_path: Path) -> None:
    index = read_index(packed)
    urls = shard_urls(packed, "structure", "train")
    ds = wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode("rgb8")
    samples = list(ds)
    assert len(samples) == index["roles"]["structure"]["splits"]["train"]["samples"]
    assert samples[0]["png"].shape == (256, 256, 3) and samples[0]["json"]["domain"] == "structure"

    import datasets

    hf = datasets.load_dataset(
        "webdataset", data_files={"train": urls}, split="train", cache_dir=str(tmp_path / "c")
    )
    assert len(hf) == len(samples)
    assert {r["label"] for r in hf["json"]} == {0, 1}
    assert np.asarray(hf[0]["png"]).shape == (256, 256, 3)

    out = tmp_path / "hf_anime"
    result = runner.invoke(
        app,
        ["export-hf", str(packed), "--role", "anime", "--out", str(out), "--cache-dir", str(tmp_path / "c")],
    )
    assert result.exit_code == 0, result.output
    saved = datasets.load_from_disk(str(out))
    assert len(saved) == index["roles"]["anime"]["splits"]["train"]["samples"]
    assert len(saved[0]["json"]["landmarks"]) == 112


def test_inspect_prints_the_index_and_writes_sheets(packed: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["inspect", str(packed), "--out", str(tmp_path / "sheets"), "--count", "4"])
    assert result.exit_code == 0, result.output
    assert "structure" in result.output and "human68" in result.output
    for role in ("coser", "human", "anime", "structure"):
        sheet = cv2.imread(str(tmp_path / "sheets" / f"{role}.png"))
        assert sheet is not None and sheet.shape[0] >= 160 and sheet.std() > 10


def test_pack_cli_end_to_end_and_bad_arguments(tmp_path: Path, inputs: dict[str, Path]) -> None:
    result = runner.invoke(
        app,
        [
            "pack",
            "--out",
            str(tmp_path / "S"),
            "--anime",
            str(inputs["anime"]),
            "--shard-size",
            "5",
            "--image-format",
            "jpg",
            "--test-fraction",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    index = read_index(tmp_path / "S")
    assert index["roles"]["anime"]["splits"]["train"]["samples"] == 12
    assert index["roles"]["anime"]["image_format"] == "jpg" and "--image-format jpg" in index["command"]
    with tarfile.open(
        tmp_path / "S" / index["roles"]["anime"]["splits"]["train"]["shards"][0]["name"]
    ) as tar:
        assert tar.getnames()[0].endswith(".jpg")
    assert runner.invoke(app, ["verify", str(tmp_path / "S"), "--deep"]).exit_code == 0
    none = runner.invoke(app, ["pack", "--out", str(tmp_path / "T")])
    assert none.exit_code == 2 and "nothing to pack" in none.output
    missing = runner.invoke(app, ["pack", "--out", str(tmp_path / "T"), "--cosers", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "no such manifest" in missing.output
    assert runner.invoke(app, ["verify", str(tmp_path / "T")]).exit_code == 2


def _png_row_filters(png: bytes) -> set[int]:
    """The filter-type byte of every row of an 8-bit RGB PNG (chunks walked by hand, IDAT inflated)."""
    pos, idat, width = 8, b"", 0
    while pos < len(png):
        length = int.from_bytes(png[pos : pos + 4], "big")
        kind, body = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width = int.from_bytes(body[:4], "big")
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = 1 + 3 * width
    return {raw[i] for i in range(0, len(raw), stride)}


def test_png_members_are_lossless_and_use_the_fast_decoding_filter(
    packed: Path, inputs: dict[str, Path]
) -> None:
    index = read_index(packed)
    assert index["roles"]["coser"]["image_format"] == "png"
    entry = index["roles"]["coser"]["splits"]["train"]["shards"][0]
    key, members = next(iter_tar_samples(packed / entry["name"]))
    manifest = read_portraits(inputs["coser"])
    image = manifest.loc[manifest["key"].map(tar_key) == key, "image"].iloc[0]
    source = cv2.imread(str(inputs["coser"] / image), cv2.IMREAD_COLOR_RGB)
    np.testing.assert_array_equal(decode_rgb(members["png"]), source)
    assert _png_row_filters(members["png"]) == {2}  # every row "up"-filtered (PNG_PARAMS)


def test_lean_tar_reader_matches_tarfile_and_rejects_damage(packed: Path, tmp_path: Path) -> None:
    path = packed / read_index(packed)["roles"]["anime"]["splits"]["train"]["shards"][0]["name"]
    with tarfile.open(path) as tar:
        expected = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
    assert list(iter_tar_members(path)) == expected
    # Long names (GNU and pax extensions), a directory entry and non-ASCII names, as other writers make them.
    files = [("k" * 120 + ".png", b"abc"), ("dir/b.json", b"{}"), ("\u00e9t\u00e9.txt", b"1" * 600)]
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        other = tmp_path / f"other{fmt}.tar"
        with tarfile.open(other, "w", format=fmt) as tar:
            tar.addfile(_dir_info("d"))
            for name, data in files:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        assert list(iter_tar_members(other)) == files
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01  # inside the first header's mode field: checksum mismatch
    (tmp_path / "flipped.tar").write_bytes(bytes(data))
    with pytest.raises(tarfile.ReadError, match="checksum"):
        list(iter_tar_members(tmp_path / "flipped.tar"))
    (tmp_path / "cut.tar").write_bytes(path.read_bytes()[:2000])
    with pytest.raises(tarfile.ReadError, match="cut short"):
        list(iter_tar_members(tmp_path / "cut.tar"))


def _dir_info(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info


def test_pack_skips_unusable_portrait_rows_and_names_them(tmp_path: Path) -> None:
    folder = portrait_folder(tmp_path / "cosers", 4, prefix="coser", size=64)
    df = read_portraits(folder)
    bad = df.index[df["status"] == "kept"][1]
    df.at[bad, "landmarks"] = np.full(136, np.nan)
    write_portraits(df, folder / MANIFEST_NAME)
    result = pack(tmp_path / "shards", {"coser": folder}, test_fraction=0.0, shard_size=8)
    assert sum(sp["samples"] for sp in result.index["roles"]["coser"]["splits"].values()) == 3
    assert [str(p) for p in result.problems] == [
        f"{folder} [{df.at[bad, 'key']}]: unusable row: landmarks has non-finite values"
    ]
