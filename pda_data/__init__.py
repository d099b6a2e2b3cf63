"""Data side of the PDA toolkit: curation, landmarks, synthesis and WebDataset shards."""

__version__ = "0.1.0"
