"""Anime 56-point annotations: the canonical table, its checks, and the exchange formats."""
