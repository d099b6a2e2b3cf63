"""The table readers: each names the file and the problem in one line (real Parquet files in tmp_path)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pda_data.annotations.table import AnnotationError, annotation_frame, read_annotations, write_annotations
from pda_data.curation.table import kept_portraits, portrait_frame, read_portraits, write_portraits
from pda_data.io.table import MANIFEST_NAME, STATUS_KEPT, TableError
from pda_data.schema import ANIME56, HUMAN68, SCHEMA_VERSION
from pda_data.synthesis.table import read_synth, synth_frame, write_synth


def _portraits(folder: Path, n: int = 3) -> pd.DataFrame:
    rows = [
        {"key": f"k{i}", "status": STATUS_KEPT, "image": f"images/k{i}.png",
         "landmarks": list(np.arange(2 * HUMAN68.n_points, dtype=float) + i)}
        for i in range(n)
    ] + [{"key": "bad", "reason": "no_face"}]
    df = portrait_frame(rows)
    write_portraits(df, folder / MANIFEST_NAME)
    return df


def _annotations(path: Path) -> pd.DataFrame:
    rows = [{"key": "a", "path": "/x/a.png", "sha256": "", "width": 256, "height": 256,
             "points": list(np.linspace(1, 200, 2 * ANIME56.n_points))}]
    df = annotation_frame(rows)
    write_annotations(df, path)
    return df


def _structure(folder: Path) -> pd.DataFrame:
    rows = [{"key": "000000", "image": "images/000000.png", "status": STATUS_KEPT, "label": 1,
             "kind": "legit",
             "landmarks": list(np.linspace(1, 200, 2 * ANIME56.n_points)), "structure_points": [1.0, 2.0],
             "structure_channels": [0], "anime_key": "a"}]
    df = synth_frame("structure", rows)
    write_synth("structure", df, folder / MANIFEST_NAME)
    return df


def _rewrite(path: Path, column: str, values: pa.Array) -> None:
    table = pq.read_table(path)
    pq.write_table(table.set_column(table.schema.get_field_index(column), column, values), path)


def _one_line(exc: pytest.ExceptionInfo, path: Path, *words: str) -> None:
    message = str(exc.value)
    assert "\n" not in message and message.startswith(str(path)), message
    for word in words:
        assert word in message, message


def test_portrait_round_trip_and_kept_points(tmp_path: Path) -> None:
    written = _portraits(tmp_path)
    pd.testing.assert_frame_equal(read_portraits(tmp_path), written)
    kept, points, unusable = kept_portraits(tmp_path)
    assert list(kept["key"]) == ["k0", "k1", "k2"] and points.shape == (3, 68, 2) and unusable == []
    assert np.array_equal(points[1].reshape(-1), np.arange(136.0) + 1)
    row = read_portraits(tmp_path).iloc[3]  # the unset columns took the table's defaults
    assert row["status"] == "rejected" and np.isnan(row["yaw"]) and row["crop_size"] == 0


def test_portrait_reader_names_file_and_problem(tmp_path: Path) -> None:
    path = tmp_path / MANIFEST_NAME
    _portraits(tmp_path)
    pq.write_table(pq.read_table(path).drop(["phash"]), path)
    with pytest.raises(TableError) as exc:
        read_portraits(tmp_path)
    _one_line(exc, path, "missing column", "phash")

    _portraits(tmp_path)
    _rewrite(path, "yaw", pa.array(["0", "1", "2", "3"]))
    with pytest.raises(TableError) as exc:
        read_portraits(tmp_path)
    _one_line(exc, path, "'yaw'", "string", "double")

    df = _portraits(tmp_path)
    df.at[1, "landmarks"] = np.concatenate([df.at[1, "landmarks"][:-1], [np.nan]])
    write_portraits(df, path)
    with pytest.raises(TableError) as exc:
        read_portraits(tmp_path)
    _one_line(exc, path, "'k1'", "non-finite")
    kept, points, unusable = kept_portraits(tmp_path)  # jobs go on with the usable rows and report the rest
    assert list(kept["key"]) == ["k0", "k2"] and points.shape == (2, 68, 2)
    assert np.array_equal(points[1], df.at[2, "landmarks"].reshape(68, 2))
    assert unusable == [("k1", "landmarks has non-finite values")]

    df.at[1, "landmarks"] = np.arange(10.0)
    write_portraits(df, path)
    with pytest.raises(TableError) as exc:
        read_portraits(path)
    _one_line(exc, path, "'k1'", "10 values", "136")


def test_annotation_reader_names_file_and_problem(tmp_path: Path) -> None:
    path = tmp_path / "anime.parquet"
    written = _annotations(path)
    pd.testing.assert_frame_equal(read_annotations(path), written)
    assert read_annotations(path)["schema_version"].tolist() == [SCHEMA_VERSION]

    pq.write_table(pq.read_table(path).drop(["width"]), path)
    with pytest.raises(AnnotationError) as exc:
        read_annotations(path)
    _one_line(exc, path, "missing column", "width")

    _annotations(path)
    _rewrite(path, "width", pa.array([256.5]))
    with pytest.raises(AnnotationError) as exc:
        read_annotations(path)
    _one_line(exc, path, "'width'", "double", "int64")

    df = _annotations(path)
    df.at[0, "points"] = np.full(2 * ANIME56.n_points, np.inf)
    write_annotations(df, path)
    with pytest.raises(AnnotationError) as exc:
        read_annotations(path)
    _one_line(exc, path, "'a'", "non-finite")


def test_synth_reader_names_file_and_problem(tmp_path: Path) -> None:
    path = tmp_path / MANIFEST_NAME
    written = _structure(tmp_path)
    pd.testing.assert_frame_equal(read_synth("structure", tmp_path), written)
    with pytest.raises(TableError) as exc:  # a structure folder read as a highlight folder
        read_synth("highlight", tmp_path)
    _one_line(exc, path, "missing column", "mask", "human_key")

    _rewrite(path, "label", pa.array(["1"]))
    with pytest.raises(TableError) as exc:
        read_synth("structure", tmp_path)
    _one_line(exc, path, "'label'", "string", "int64")

    df = _structure(tmp_path)
    df.at[0, "landmarks"] = np.concatenate([df.at[0, "landmarks"][:-1], [np.nan]])
    write_synth("structure", df, path)
    with pytest.raises(TableError) as exc:
        read_synth("structure", tmp_path)
    _one_line(exc, path, "'000000'", "non-finite")

    df = _structure(tmp_path)
    df.at[0, "structure_channels"] = np.array([0, 1])
    write_synth("structure", df, path)
    with pytest.raises(TableError) as exc:
        read_synth("structure", tmp_path)
    _one_line(exc, path, "'000000'", "2 structure point values for 2 channels")
