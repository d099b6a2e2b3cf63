"""Streaming input pipelines over packed shards, one concept per module.

``domains`` (the portrait domains and their mixing weights), ``readers`` (shard reading, shuffling, decoding,
schema checks), ``augment`` (landmark-aware augmentation, uint8 -> float conversions) and ``loaders``
(:func:`~pda_data.stream.loaders.stage_loader`, :func:`~pda_data.stream.loaders.aux_loader`). The stream
knows portrait domains and their weights, never a training stage: the trainer's stage plan supplies them.
"""
