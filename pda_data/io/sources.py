"""Input iteration: files, folders, list files and Hugging Face data sets, as a stream of picklable items.

An INPUT on the command line may be an image file, a folder (searched recursively for image suffixes),
a text file listing one path per line (``.txt`` or ``.lst``; relative paths are relative to the list), a data
set saved with ``Dataset.save_to_disk`` (a folder holding ``dataset_info.json`` or ``dataset_dict.json``), or
``hf://owner/name`` for a data set on the Hugging Face hub (needs network). Items are yielded lazily, so
memory does not grow with the number of inputs. Each carries its ``source`` (the absolute path, or
``<data set>#<index>``: what a user looks for) and a ``stable_id`` that does not depend on where the inputs
are mounted, so keys and ``--part`` agree across machines: a folder INPUT's files are ``<folder name>/<path
inside it>``, a file INPUT is its name, a list entry is the path as written (relative paths stay relative to
the list), a data set row is ``<data set name>#<index>``. A folder that cannot
be listed is reported to the caller's ``on_folder_error`` (and skipped); a file that cannot be read is the
:class:`~pda_data.io.images.ImageError` of :func:`read_item`, so the caller records it and goes on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pda_data.io.files import sha256_bytes
from pda_data.io.images import read_image_file

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".jfif"})
LIST_SUFFIXES = frozenset({".txt", ".lst"})
HUB_PREFIX = "hf://"


class SourceError(ValueError):
    """An INPUT that names nothing readable (missing path, unknown data set, missing column or split)."""


@dataclass(frozen=True)
class SourceItem:
    """One input image: a file ``path``, or row ``index`` of data set ``dataset`` (split, image column).

    ``source`` names it for people (the absolute path); ``stable_id`` is what keys and parts hash.
    """

    source: str
    stable_id: str
    path: str = ""
    dataset: str = ""
    split: str = ""
    column: str = ""
    index: int = -1


@dataclass(frozen=True)
class HFOptions:
    """How to read a data set INPUT: its split (for dataset dicts and the hub) and image column."""

    split: str = "train"
    image_column: str = "image"


@dataclass(frozen=True)
class FolderError:
    """A folder under an INPUT that could not be listed (no permission, deleted while walking)."""

    folder: str
    reason: str

    def __str__(self) -> str:
        return f"{self.folder}: cannot read folder ({self.reason})"


OnFolderError = Callable[[FolderError], None]


def _is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and any((path / f).is_file() for f in ("dataset_info.json", "dataset_dict.json"))


def _walk(folder: Path, on_error: OnFolderError | None) -> Iterator[Path]:
    """Image files under ``folder`` in a stable (sorted) order, without materializing the whole tree; each
    folder that cannot be listed goes to ``on_error``."""

    def report(exc: OSError) -> None:
        if on_error is not None:
            where = os.fsdecode(exc.filename) if exc.filename is not None else str(folder)
            on_error(FolderError(where, exc.strerror or str(exc)))

    for root, dirs, files in os.walk(folder, onerror=report):
        dirs.sort()
        for name in sorted(files):
            if Path(name).suffix.lower() in IMAGE_SUFFIXES:
                yield Path(root) / name


_DATASETS: dict[tuple[str, str], Any] = {}


def open_dataset(dataset: str, split: str, column: str) -> Any:
    """Open (once per process) a saved or hub data set with ``column`` left undecoded (raw bytes)."""
    cache_key = (dataset, split)
    if cache_key not in _DATASETS:
        import datasets  # heavy; only data set inputs pay for it

        try:
            if dataset.startswith(HUB_PREFIX):
                ds = datasets.load_dataset(dataset[len(HUB_PREFIX):], split=split)
            else:
                ds = datasets.load_from_disk(dataset)
                if isinstance(ds, datasets.DatasetDict):
                    if split not in ds:
                        raise SourceError(f"{dataset}: no split {split!r} (has {', '.join(ds)})")
                    ds = ds[split]
        except SourceError:
            raise
        except Exception as exc:  # datasets raises many types (network, format, missing files)
            raise SourceError(f"{dataset}: cannot open data set ({exc})") from exc
        if column not in ds.column_names:
            names = ", ".join(ds.column_names)
            raise SourceError(f"{dataset}: no image column {column!r} (columns: {names})")
        if isinstance(ds.features[column], datasets.Image):
            ds = ds.cast_column(column, datasets.Image(decode=False))
        _DATASETS[cache_key] = ds
    return _DATASETS[cache_key]


def _dataset_items(dataset: str, hf: HFOptions) -> Iterator[SourceItem]:
    ds = open_dataset(dataset, hf.split, hf.image_column)
    name = dataset if dataset.startswith(HUB_PREFIX) else Path(dataset).name
    for i in range(len(ds)):
        yield SourceItem(source=f"{dataset}#{i}", stable_id=f"{name}#{i}", dataset=dataset, split=hf.split,
                         column=hf.image_column, index=i)


def _file_item(path: str | Path, stable_id: str) -> SourceItem:
    return SourceItem(source=os.path.abspath(path), stable_id=stable_id, path=os.path.abspath(path))


def _list_items(list_file: Path) -> Iterator[SourceItem]:
    with open(list_file, encoding="utf-8") as fh:
        for line in fh:
            entry = line.strip()
            if entry and not entry.startswith("#"):
                path = Path(entry) if Path(entry).is_absolute() else list_file.parent / entry
                yield _file_item(path, Path(os.path.normpath(entry)).as_posix())


def iter_sources(
    inputs: Iterable[str | Path], hf: HFOptions | None = None, on_folder_error: OnFolderError | None = None
) -> Iterator[SourceItem]:
    """Every image item named by ``inputs``, in order; raises :class:`SourceError` for a missing INPUT.

    Folders that cannot be listed are skipped, each reported to ``on_folder_error`` when it is reached.
    """
    hf = hf or HFOptions()
    for raw in inputs:
        text = str(raw)
        if text.startswith(HUB_PREFIX):
            yield from _dataset_items(text, hf)
            continue
        path = Path(text)
        if _is_saved_dataset(path):
            yield from _dataset_items(os.path.abspath(path), hf)
        elif path.is_dir():
            root = Path(os.path.abspath(path))
            for file in _walk(path, on_folder_error):
                inside = Path(os.path.abspath(file)).relative_to(root)
                yield _file_item(file, (Path(root.name) / inside).as_posix())
        elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            yield from _list_items(path)
        elif os.path.lexists(path):  # a file, or a FIFO, device or dangling link: read_item refuses those
            yield _file_item(path, Path(os.path.abspath(path)).name)
        else:
            raise SourceError(f"{text}: no such file, folder or data set")


def unique_items(items: Iterable[SourceItem], on_repeat: Callable[[SourceItem], None] | None = None
                 ) -> Iterator[SourceItem]:
    """``items`` less repeats of a source (a file named by a folder and a list): each goes to ``on_repeat``.

    Two different sources with one stable id would share keys: :class:`SourceError` naming both.
    """
    sources: dict[str, str] = {}
    seen: set[str] = set()
    for item in items:
        if item.source in seen:
            if on_repeat is not None:
                on_repeat(item)
            continue
        first = sources.setdefault(item.stable_id, item.source)
        if first != item.source:
            raise SourceError(f"{item.source}: same id {item.stable_id!r} as {first} (two input folders "
                              "with one name, or two files with one name?): give them distinct names")
        seen.add(item.source)
        yield item


def read_item(item: SourceItem) -> tuple[bytes, str]:
    """The encoded bytes of ``item`` (a file, or a data set row) and their sha256: each file is read once.

    A file that is not a regular file, is over the size limit or cannot be opened raises
    :class:`~pda_data.io.images.ImageError` (``not_regular_file``, ``too_large``, ``unreadable``).
    """
    if item.path:
        data = read_image_file(item.path, item.source)
        return data, sha256_bytes(data)
    ds = open_dataset(item.dataset, item.split, item.column)
    value = ds[item.index][item.column]
    data = b""
    if isinstance(value, dict):
        data = value.get("bytes") or b""
        if not data and value.get("path"):
            data = read_image_file(value["path"], item.source)
    return data, sha256_bytes(data)
