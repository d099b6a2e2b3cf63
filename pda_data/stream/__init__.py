"""Streaming input pipelines over packed shards: domain mixing, augmentation, batching."""
