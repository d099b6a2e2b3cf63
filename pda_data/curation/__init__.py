"""Portrait curation: detect, filter, crop and deduplicate faces into a manifest-indexed folder."""
