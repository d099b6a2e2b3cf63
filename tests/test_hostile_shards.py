"""Hostile shards and indexes through the real commands: every damage is one line naming the shard (and the
member) and the reason, never a traceback; the tar reader raises only TarDamage and never reads past the file.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import tarfile
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from shard_world import anime_annotations, portrait_folder
from typer.testing import CliRunner

import pda_data.shards.tar as tar_module
from pda_data.cli import app as data_app
from pda_data.io.files import sha256_file
from pda_data.shards.index import INDEX_NAME, ShardError, read_index
from pda_data.shards.pack import pack
from pda_data.shards.tar import (
    READ_BUFFER,
    TAR_BLOCK,
    TarDamage,
    add_member,
    iter_tar_members,
    iter_tar_samples,
)
from pda_data.stream import readers
from pda_data.stream.loaders import stage_loader
from pda_train.cli import app as train_app

runner = CliRunner()
SIZE = 64  # the tiny preset's resolution
ROLE = "anime"  # the role the shard cases damage
BAD = "anime/train/anime-train-000000.tar"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, samples_dir: Path) -> Path:
    """coser and anime shards of 2 samples each (3 per role), enough for a stage-1 run of the tiny preset."""
    root = tmp_path_factory.mktemp("hostile")
    sources = {
        "coser": portrait_folder(root / "cosers", 6, prefix="coser", size=SIZE, seed=0),
        "anime": anime_annotations(root / "anime", samples_dir, 6, size=SIZE),
    }
    pack(root / "S", sources, test_fraction=0.0, shard_size=2)
    return root / "S"


def _copy(world: Path, tmp_path: Path) -> Path:
    shards = tmp_path / "S"
    shutil.copytree(world, shards)
    return shards


def _set(data: bytearray, start: int, value: bytes, header: int = 0) -> None:
    """Write ``value`` into a header field and give the header a valid checksum, as a hostile writer does."""
    data[header + start : header + start + len(value)] = value
    _fix_checksum(data, header)


def _fix_checksum(data: bytearray, header: int) -> None:
    data[header + 148 : header + 156] = b" " * 8
    data[header + 148 : header + 156] = b"%06o\0 " % sum(data[header : header + TAR_BLOCK])


def _pax_header(records: bytes) -> bytes:
    info = tarfile.TarInfo("././@PaxHeader")
    info.type, info.size = tarfile.XHDTYPE, len(records)
    return info.tobuf(tarfile.USTAR_FORMAT) + records + b"\0" * (-len(records) % TAR_BLOCK)


def _base256(n: int) -> Callable[[bytearray], bytes]:
    def mutate(data: bytearray) -> bytes:
        _set(data, 124, b"\x80" + n.to_bytes(11, "big"))
        return bytes(data)

    return mutate


def _field(start: int, value: bytes) -> Callable[[bytearray], bytes]:
    def mutate(data: bytearray) -> bytes:
        _set(data, start, value)
        return bytes(data)

    return mutate


def _flip_header_byte(data: bytearray) -> bytes:
    data[140] ^= 0x01  # inside the first header's mtime: the checksum no longer matches
    return bytes(data)


# case -> (mutation of the shard's bytes, what the reason must say)
HEADER_CASES: dict[str, tuple[Callable[[bytearray], bytes], str]] = {
    "base256-2^70": (_base256(2**70), "at byte 0 declares 2^70 bytes"),
    "base256-2^40": (_base256(2**40), "at byte 0 declares 2^40 bytes"),
    "non-octal-size": (
        _field(124, b"00000012x45\0"),
        "has a size field b'00000012x45\\x00' that is not octal",
    ),
    "non-utf8-name": (_field(0, b"\xff"), "that is not UTF-8"),
    "dotdot-name": (_field(0, b"../../evil.png\0"), "has a name '../../evil.png' that is empty, absolute or"),
    "absolute-name": (_field(0, b"/etc/evil.png\0"), "has a name '/etc/evil.png' that is empty, absolute or"),
    "malformed-pax": (
        lambda data: _pax_header(b"99 path=x.png\n") + bytes(data),
        "member '././@PaxHeader' at byte 0 has a pax record at offset 0 of 99 bytes not ending in a newline",
    ),
    "flipped-header-byte": (_flip_header_byte, "at byte 0 has a bad tar header checksum"),
    "truncated": (lambda data: bytes(data[: len(data) // 2]), "left in the file (cut short"),
}


def _damage(shards: Path, case: str) -> tuple[int, str]:
    """Damage shard BAD by ``case``; (samples readable before the damage, the reader's reason)."""
    path = shards / BAD
    mutate, says = HEADER_CASES[case]
    path.write_bytes(mutate(bytearray(path.read_bytes())))
    count = 0
    with pytest.raises(TarDamage) as info:
        for _ in iter_tar_samples(path):
            count += 1
    assert info.value.path == str(path) and says in info.value.reason
    assert str(info.value) == f"{path}: {info.value.reason}"
    return count, info.value.reason


def _lines(output: str) -> list[str]:
    assert "Traceback" not in output
    return [line.strip() for line in output.splitlines()]


def _export_args(shards: Path, out: Path, cache: Path) -> list[str]:
    """``pda-data export-hf`` of the damaged role into ``out``, with its datasets cache in ``cache``."""
    return ["export-hf", str(shards), "--role", ROLE, "--out", str(out), "--cache-dir", str(cache)]


def _samples(shards: Path, name: str) -> int:
    return next(
        e["samples"]
        for e in read_index(shards)["roles"][ROLE]["splits"]["train"]["shards"]
        if e["name"] == name
    )


# --- one damaged shard through every reader -------------------------------------------------------------


@pytest.mark.parametrize("case", HEADER_CASES)
def test_verify_names_the_damaged_member(world: Path, tmp_path: Path, case: str) -> None:
    shards = _copy(world, tmp_path)
    count, reason = _damage(shards, case)
    result = runner.invoke(data_app, ["verify", str(shards)])
    assert result.exit_code == 1
    assert f"problem {BAD}: unreadable tar after {count} samples: {reason}" in _lines(result.output)


@pytest.mark.parametrize("case", HEADER_CASES)
def test_inspect_draws_from_the_readable_shards(world: Path, tmp_path: Path, case: str) -> None:
    shards = _copy(world, tmp_path)
    _, reason = _damage(shards, case)
    result = runner.invoke(data_app, ["inspect", str(shards), "--out", str(tmp_path / "sheets")])
    assert result.exit_code == 0, result.output
    assert f"skipped {BAD}: unreadable tar: {reason}" in _lines(result.output)
    assert (tmp_path / "sheets" / f"{ROLE}.png").is_file() and (tmp_path / "sheets" / "coser.png").is_file()


@pytest.mark.parametrize("case", HEADER_CASES)
def test_export_hf_skips_the_damaged_shard(world: Path, tmp_path: Path, case: str) -> None:
    shards = _copy(world, tmp_path)
    _, reason = _damage(shards, case)
    out = tmp_path / "hf"
    result = runner.invoke(data_app, _export_args(shards, out, tmp_path / "c"))
    assert result.exit_code == 0, result.output
    lines = _lines(result.output)
    assert f"skipped {BAD}: unreadable tar: {reason}" in lines
    kept = read_index(shards)["roles"][ROLE]["splits"]["train"]["samples"] - _samples(shards, BAD)
    assert f"saved {kept} {ROLE}/train samples to {out}" in result.output  # after datasets' progress bars


@pytest.mark.parametrize("case", HEADER_CASES)
def test_stream_reader_skips_the_damaged_shard_with_a_warning(world: Path, tmp_path: Path, case: str) -> None:
    shards = _copy(world, tmp_path)
    count, reason = _damage(shards, case)
    bad = str(shards / BAD)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        source = readers.role_source(shards, ROLE, "train")
        samples = list(readers.decoded_role(source, seed=0, infinite=False))
    assert [str(w.message) for w in caught] == [f"{bad}: skipping unreadable shard ({reason})"]
    total = read_index(shards)["roles"][ROLE]["splits"]["train"]["samples"]
    assert len(samples) == total - _samples(shards, BAD) + count
    assert sum(s["url"] == bad for s in samples) == count


def test_a_flipped_data_byte_is_named_by_inspect_and_export(world: Path, tmp_path: Path) -> None:
    """A byte flipped inside an image: the tar still reads, the sample does not check (sha256, decode)."""
    shards = _copy(world, tmp_path)
    path = shards / BAD
    (first_name, first_data), *_ = iter_tar_members(path)
    data = bytearray(path.read_bytes())
    data[TAR_BLOCK + len(first_data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    key = first_name.partition(".")[0]
    result = runner.invoke(data_app, ["inspect", str(shards), "--out", str(tmp_path / "sheets")])
    assert result.exit_code == 0, result.output
    lines = _lines(result.output)
    assert any(line.startswith(f"skipped {BAD} [{key}]: png does not decode; sha256 is ") for line in lines)
    result = runner.invoke(data_app, _export_args(shards, tmp_path / "hf", tmp_path / "c"))
    assert result.exit_code == 0, result.output
    assert f"skipped {BAD}: sha256 differs from the index (corrupt or modified shard)" in _lines(
        result.output
    )


def test_export_hf_exits_1_when_no_shard_is_readable_and_runs_offline(
    world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datasets

    shards = _copy(world, tmp_path)
    before = datasets.config.HF_HUB_OFFLINE
    seen: list[bool] = []
    real = datasets.load_dataset

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(datasets.config.HF_HUB_OFFLINE)
        return real(*args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", spy)
    out = tmp_path / "hf"
    args = _export_args(shards, out, tmp_path / "c")
    assert runner.invoke(data_app, args).exit_code == 0
    assert seen == [True] and before == datasets.config.HF_HUB_OFFLINE  # offline inside, restored after
    for entry in read_index(shards)["roles"][ROLE]["splits"]["train"]["shards"]:
        (shards / entry["name"]).write_bytes(b"\1" * 700)
    shutil.rmtree(out)
    result = runner.invoke(data_app, args)
    assert result.exit_code == 1
    lines = _lines(result.output)
    assert f"error: {shards}: no readable {ROLE}/train shard, nothing exported" in lines
    assert sum(line.startswith("skipped anime/train/") for line in lines) == 3
    assert not out.exists()


def test_export_hf_names_what_datasets_could_not_load(world: Path, tmp_path: Path) -> None:
    """Shards the reader accepts but ``datasets`` cannot type (a string where other shards hold numbers)."""
    shards = _copy(world, tmp_path)
    index = read_index(shards)
    entry = index["roles"][ROLE]["splits"]["train"]["shards"][2]
    path = shards / entry["name"]
    samples = list(iter_tar_samples(path))
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for key, members in samples:
            meta = {**json.loads(members["json"]), "landmarks": "many"}
            add_member(tar, f"{key}.png", members["png"])
            add_member(tar, f"{key}.json", json.dumps(meta).encode())
    entry.update(sha256=sha256_file(path), bytes=path.stat().st_size)
    (shards / INDEX_NAME).write_text(json.dumps(index))
    result = runner.invoke(data_app, _export_args(shards, tmp_path / "hf", tmp_path))
    assert result.exit_code == 1
    start = (
        f"error: {shards / ROLE / 'train'}: datasets could not load the 3 shard(s) (DatasetGenerationError: "
    )
    assert any(line.startswith(start) for line in _lines(result.output)), result.output


# --- hostile indexes ---------------------------------------------------------------------------------------


def _index_commands(shards: Path, tmp_path: Path) -> dict[str, list[str]]:
    return {
        "verify": ["verify", str(shards)],
        "inspect": ["inspect", str(shards), "--out", str(tmp_path / "sheets")],
        "export-hf": ["export-hf", str(shards), "--role", ROLE, "--out", str(tmp_path / "hf")],
    }


def _rewrite_index(shards: Path, change: Callable[[dict[str, Any]], None]) -> None:
    index = json.loads((shards / INDEX_NAME).read_text())
    change(index)
    (shards / INDEX_NAME).write_text(json.dumps(index))


def _first_shard(index: dict[str, Any]) -> dict[str, Any]:
    return index["roles"][ROLE]["splits"]["train"]["shards"][0]


INDEX_CASES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "passwd-name": (
        lambda ix: _first_shard(ix).update(name="../../etc/passwd"),
        f"roles.{ROLE}.splits.train.shards[0].name '../../etc/passwd' is outside the shard folder "
        f"(expected {ROLE}/train/{ROLE}-train-NNNNNN.tar)",
    ),
    "role-not-an-object": (
        lambda ix: ix["roles"].update({ROLE: 5}),
        f"roles.{ROLE} must be an object, got 5",
    ),
    "shards-not-a-list": (
        lambda ix: ix["roles"][ROLE]["splits"]["train"].update(shards="x"),
        f"roles.{ROLE}.splits.train.shards must be a list, got 'x'",
    ),
    "samples-a-string": (
        lambda ix: ix["roles"][ROLE]["splits"]["train"].update(samples="3"),
        f"roles.{ROLE}.splits.train.samples must be a non-negative integer, got '3'",
    ),
    "missing-key": (
        lambda ix: _first_shard(ix).pop("sha256"),
        f"roles.{ROLE}.splits.train.shards[0] has no 'sha256'",
    ),
    "other-split-name": (
        lambda ix: _first_shard(ix).update(name=f"{ROLE}/test/{ROLE}-test-000000.tar"),
        f"roles.{ROLE}.splits.train.shards[0].name '{ROLE}/test/{ROLE}-test-000000.tar' is not a shard name "
        f"of this split (expected {ROLE}/train/{ROLE}-train-NNNNNN.tar)",
    ),
}


@pytest.mark.parametrize("command", ["verify", "inspect", "export-hf", "stream"])
@pytest.mark.parametrize("case", INDEX_CASES)
def test_a_hostile_index_is_one_line_naming_the_field(
    world: Path, tmp_path: Path, case: str, command: str
) -> None:
    shards = _copy(world, tmp_path)
    change, says = INDEX_CASES[case]
    _rewrite_index(shards, change)
    message = f"{shards / INDEX_NAME}: {says}"
    with pytest.raises(ShardError) as info:
        read_index(shards)
    assert str(info.value).startswith(message)
    if command == "stream":
        with pytest.raises(ShardError, match="^" + re.escape(message)):
            readers.role_source(shards, ROLE, "train")
        return
    result = runner.invoke(data_app, _index_commands(shards, tmp_path)[command])
    assert result.exit_code == 2
    lines = _lines(result.output)
    assert any(line.startswith(f"error: {message}") for line in lines), result.output
    assert not (tmp_path / "hf").exists() and not (tmp_path / "sheets").exists()


def test_a_shard_name_that_links_outside_the_folder_is_refused(world: Path, tmp_path: Path) -> None:
    shards = _copy(world, tmp_path)
    outside = tmp_path / "elsewhere"
    (shards / ROLE / "train").rename(outside)
    (shards / ROLE / "train").symlink_to(outside)
    with pytest.raises(
        ShardError,
        match=r"shards\[0\]\.name 'anime/train/anime-train-000000\.tar' resolves "
        r"outside the shard folder",
    ):
        read_index(shards)


# --- pda-train run ------------------------------------------------------------------------------------------


def _train(world: Path, tmp_path: Path) -> Any:
    manifest = {
        "name": "hostile",
        "preset": "tiny",
        "seed": 1,
        "plan": "coser",
        "schedule": {"iterations": [2, 0, 0], "batch_size": 2},
        "data": {"shards": str(world)},
        "aux": {"detector_steps": 0, "classifier_steps": 0, "batch_size": 2},
        "stage1": {"ldn_only": 0, "psn_only": 0},
        "log_every": 1,
        "sample_every": 0,
        "checkpoint_every": 0,
    }
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(manifest))
    threads = torch.get_num_threads()
    try:
        return runner.invoke(
            train_app,
            [
                "run",
                "-m",
                str(path),
                "-o",
                str(tmp_path / "run"),
                "--device",
                "cpu",
                "--threads",
                "1",
                "--no-tensorboard",
            ],
        )
    finally:
        torch.set_num_threads(threads)


def _break_coser(shards: Path, names: list[str]) -> list[str]:
    """Give the coser shards ``names`` a 2^70-byte first member; the warning line each then prints."""
    lines = []
    for name in names:
        path = shards / name
        path.write_bytes(_base256(2**70)(bytearray(path.read_bytes())))
        with pytest.raises(TarDamage) as info:
            list(iter_tar_members(path))
        lines.append(f"warning: {path}: skipping unreadable shard ({info.value.reason})")
    return lines


def _coser_shards(shards: Path) -> list[str]:
    return [e["name"] for e in read_index(shards)["roles"]["coser"]["splits"]["train"]["shards"]]


def test_training_skips_a_bad_shard_with_one_warning_line(world: Path, tmp_path: Path) -> None:
    shards = _copy(world, tmp_path)
    (warning,) = _break_coser(shards, _coser_shards(shards)[:1])
    result = _train(shards, tmp_path)
    assert result.exit_code == 0, result.output
    lines = _lines(result.output)
    assert lines.count(warning) == 1  # once, then never drawn again
    assert (tmp_path / "run" / "final.safetensors").is_file()


def test_training_stops_with_one_line_when_a_role_has_no_readable_shard(world: Path, tmp_path: Path) -> None:
    shards = _copy(world, tmp_path)
    names = _coser_shards(shards)
    warning_lines = _break_coser(shards, names)
    result = _train(shards, tmp_path)
    assert result.exit_code == 1
    lines = _lines(result.output)
    listed = ", ".join(str(shards / n) for n in names)
    assert f"error: role 'coser': no readable shard left ({len(names)} unreadable: {listed})" in lines
    assert all(w in lines for w in warning_lines)
    assert not (tmp_path / "run" / "final.safetensors").exists()


def test_a_hostile_index_stops_training_before_it_starts(world: Path, tmp_path: Path) -> None:
    shards = _copy(world, tmp_path)
    change, says = INDEX_CASES["passwd-name"]
    _rewrite_index(shards, change)
    result = _train(shards, tmp_path)
    assert result.exit_code == 2
    assert f"error: {shards / INDEX_NAME}: {says}" in _lines(result.output)


@pytest.mark.slow
def test_a_loader_worker_hands_over_its_shard_error_as_one_line(world: Path, tmp_path: Path) -> None:
    shards = _copy(world, tmp_path)
    _break_coser(shards, _coser_shards(shards))
    batches = stage_loader(shards, {"coser": 1.0}, batch_size=2, image_size=32, seed=0, num_workers=1)
    with pytest.raises(readers.NoReadableShard) as info:
        next(iter(batches))
    assert str(info.value).startswith("role 'coser': no readable shard left (3 unreadable: ")
    assert "\n" not in str(info.value) and "Traceback" not in str(info.value)


@pytest.mark.parametrize(
    ("records", "says"),
    [
        (b"14 path=x.png\n", None),  # a sound record: the next member is named x.png
        (b"13 pathx.png\n", "has a pax record at offset 0 that is not 'keyword=value'"),
        (b"15 path=\xffx.png\n", "has a pax path b'\\xffx.png' that is not UTF-8"),
        (b"1x path=x.png\n", "has a pax record at offset 0 without a decimal length"),
        (b"3 path=x.png\n", "has a pax record at offset 0 of 3 bytes not ending in a newline"),
        (b"11 size=-9\n", "has a pax size b'-9' that is not a decimal number"),
        (b"17 path=../x.png\n", "has a name '../x.png' that is empty, absolute or leaves the archive"),
    ],
)
def test_pax_records_are_parsed_defensively(tmp_path: Path, records: bytes, says: str | None) -> None:
    inner = tarfile.TarInfo("y.png")
    inner.size = 3
    path = tmp_path / "pax.tar"
    path.write_bytes(
        _pax_header(records) + inner.tobuf(tarfile.USTAR_FORMAT) + b"abc".ljust(TAR_BLOCK, b"\0")
    )
    if says is None:
        assert list(iter_tar_members(path)) == [("x.png", b"abc")]
        return
    with pytest.raises(TarDamage) as info:
        list(iter_tar_members(path))
    assert says in info.value.reason and info.value.offset in (0, TAR_BLOCK * 2)


# --- the reader under random damage -------------------------------------------------------------------------


class _MeteredFile:
    """A file whose reads are checked: none asks for more bytes than the file holds (or one header block)."""

    def __init__(self, f: Any, limit: int) -> None:
        self.f, self.limit, self.largest = f, limit, 0

    def read(self, n: int = -1) -> bytes:
        assert 0 <= n <= max(self.limit, TAR_BLOCK), f"read({n}) of a {self.limit}-byte file"
        self.largest = max(self.largest, n)
        return self.f.read(n)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.f, name)

    def __enter__(self) -> _MeteredFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.f.close()


def _mutations(data: bytes, rng: random.Random) -> bytes:
    """One random hostile variant of a shard: header bytes, size fields, names, truncation."""
    buf = bytearray(data)
    headers = [0]
    for _ in range(3):  # the offsets of the first few headers, from their (intact) size fields
        size = int(buf[headers[-1] + 124 : headers[-1] + 136].rstrip(b"\0 ") or b"0", 8)
        headers.append(headers[-1] + TAR_BLOCK + -(-size // TAR_BLOCK) * TAR_BLOCK)
    header = rng.choice(headers)
    kind = rng.randrange(5)
    if kind == 0:  # random bytes anywhere in a header, checksum fixed or not
        for _ in range(rng.randint(1, 4)):
            buf[header + rng.randrange(TAR_BLOCK)] = rng.randrange(256)
        if rng.random() < 0.7:
            _fix_checksum(buf, header)
    elif kind == 1:  # a base-256 size of any bit length up to the field's
        n = rng.getrandbits(rng.randint(1, 88))
        marker = rng.choice((0x80, 0x80, 0x80, 0xFF, 0xC0))  # 0xFF: negative; 0xC0: no marker at all
        _set(buf, 124, bytes([marker]) + n.to_bytes(11, "big"), header)
    elif kind == 2:  # an "octal" size of random digits, spaces, NULs, signs and letters
        _set(buf, 124, bytes(rng.choice(b"0123456789 \0+-_xA") for _ in range(12)), header)
    elif kind == 3:  # a random type flag and name bytes
        _set(buf, 156, bytes([rng.randrange(256)]), header)
        _set(buf, rng.randrange(100), bytes(rng.randrange(256) for _ in range(rng.randint(1, 8))), header)
    else:  # cut anywhere
        del buf[rng.randrange(len(buf)) :]
    return bytes(buf)


def test_random_header_damage_yields_samples_or_tar_damage_only(
    world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = (world / BAD).read_bytes()
    path = tmp_path / "mutant.tar"
    opened: list[_MeteredFile] = []
    real_open = open

    def metered_open(file: Any, *args: Any, **kwargs: Any) -> _MeteredFile:
        f = _MeteredFile(real_open(file, *args, **kwargs), Path(file).stat().st_size)
        opened.append(f)
        return f

    monkeypatch.setattr(tar_module, "open", metered_open, raising=False)
    rng = random.Random(20240611)
    outcomes = {"samples": 0, "damage": 0}
    tracemalloc.start()
    try:
        for _ in range(400):
            data = _mutations(original, rng)
            path.write_bytes(data)
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            try:
                for _key, members in iter_tar_samples(path):
                    assert sum(len(v) for v in members.values()) <= len(data)
                outcomes["samples"] += 1
            except TarDamage as exc:
                assert exc.path == str(path) and "\n" not in str(exc)
                outcomes["damage"] += 1
            extra = tracemalloc.get_traced_memory()[1] - before  # the reader's own allocations at their peak
            assert extra < len(data) + READ_BUFFER + 16 * 1024, (
                f"{extra} bytes to read a {len(data)}-byte file"
            )
            assert opened[-1].largest <= max(len(data), TAR_BLOCK)
    finally:
        tracemalloc.stop()
    assert min(outcomes.values()) > 20, outcomes  # both outcomes were exercised
