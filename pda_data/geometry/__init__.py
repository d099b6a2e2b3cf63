"""Image geometry shared by synthesis, streaming and translation: warps and facial masks."""
