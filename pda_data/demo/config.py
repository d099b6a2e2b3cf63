"""How much of the demo world to generate (a light module: the CLI reads its defaults for ``--help``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo world. The defaults are what ``make demo`` trains on: enough human portraits for a
    test split of about ten at ``pack --test-fraction 0.25`` (by key hash), and anime for both splits."""

    seed: int = 0
    n_cosers: int = 12
    n_humans: int = 40
    n_anime: int = 48
    verify: bool = True  # re-detect every coser photo / human crop with dlib and retry until the truth holds
