"""The embedded synthetic demo world: coser photos, human portraits and procedural anime faces."""
