"""File-level input and output: atomic writes, safe image decoding, input listing."""
