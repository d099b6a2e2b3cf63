"""WebDataset shards: packing, the tar reader, verification, inspection and export."""
