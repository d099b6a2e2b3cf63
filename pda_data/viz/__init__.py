"""Pictures for people: contact sheets, landmark overlays, side-by-side grids."""
