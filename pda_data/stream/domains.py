"""Portrait domains and their mixing weights: which kind of portrait each draw of a stage batch is.

``coser`` and ``human`` are read from their shard roles; ``aug`` is an Aug-Portrait fused on the fly from a
human and a coser (:func:`pda_data.synthesis.augportrait.fuse`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

PORTRAIT_DOMAINS: tuple[str, ...] = ("coser", "aug", "human")
# Shard roles each portrait domain reads (an Aug-Portrait fuses a human face into a coser).
DOMAIN_ROLES: dict[str, tuple[str, ...]] = {
    "coser": ("coser",),
    "aug": ("coser", "human"),
    "human": ("human",),
}


def check_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """``weights`` normalized to sum 1, zero weights dropped; ValueError on an unknown domain or a bad sum."""
    unknown = set(weights) - set(PORTRAIT_DOMAINS)
    if unknown:
        raise ValueError(f"unknown portrait domain(s) {sorted(unknown)}; use {', '.join(PORTRAIT_DOMAINS)}")
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError(f"weights must be non-negative with a positive sum, got {dict(weights)}")
    total = sum(weights.values())
    return {k: w / total for k, w in weights.items() if w > 0}


def needed_roles(weights: Mapping[str, float]) -> set[str]:
    """The portrait shard roles a mix with these (checked) weights reads."""
    return {role for domain in weights for role in DOMAIN_ROLES[domain]}


def draw_domains(weights: Mapping[str, float], rng: np.random.Generator, block: int = 1024) -> Iterator[str]:
    """Infinite i.i.d. draws of domain names with the given (normalized) weights."""
    names = list(weights)
    p = np.array([weights[n] for n in names], dtype=np.float64)
    p /= p.sum()
    while True:
        yield from (names[i] for i in rng.choice(len(names), size=block, p=p))
