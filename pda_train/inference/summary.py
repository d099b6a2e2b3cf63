"""One picture a person can judge a model by: per face, the input crop, the LDN-warped crop, the anime
translation and the translation pasted back into the source photo (rows, in that order; one column per face).

Each face is found again in its source photo as ``pda-train translate --faces largest`` finds it (curation's
detect, landmark and frontal filters, the curation crop at the model's size) and pasted back as translate
pastes it, so the picture shows what a user of ``translate`` gets.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pda_data.faces.detection import Detector
from pda_data.faces.landmarks import Landmarker
from pda_data.io.images import ImageError, load_image
from pda_data.viz.sheet import contact_sheet
from pda_train.inference.export import Translator
from pda_train.inference.faces import NoFaceError, face_options, faces_or_raise
from pda_train.inference.paste import paste_faces
from pda_train.inference.translate import translate_crops

SUMMARY_NAME = "summary.png"
SUMMARY_ROWS = ("input", "LDN-warped", "anime", "pasted back")
SUMMARY_COLUMNS = 6
TILE = 128


def summary_sheet(
    model: Translator,
    photos: Sequence[Path],
    detector: Detector,
    landmarker: Landmarker,
    *,
    columns: int = SUMMARY_COLUMNS,
) -> tuple[np.ndarray | None, list[str]]:
    """The summary picture of the first ``columns`` photos with a face (None when there is none) and one
    message per photo left out (unreadable, no face)."""
    images, faces, problems = [], [], []
    options = face_options(model.image_size, "largest")
    for path in photos:
        if len(images) == columns:
            break
        try:
            image = load_image(path)
            faces.append(faces_or_raise(image, detector, landmarker, options, str(path))[0][0])
        except (ImageError, NoFaceError) as exc:
            problems.append(str(exc))
            continue
        images.append(image)
    if not images:
        return None, problems
    results = translate_crops(model, [f.crop for f in faces], [f.points for f in faces])
    rows = [
        [f.crop for f in faces],
        [r.warped for r in results],
        [r.anime for r in results],
        [paste_faces(im, [r.anime], [f.affine]).image
         for im, r, f in zip(images, results, faces, strict=True)],
    ]
    tiles = [t for row in rows for t in row]
    labels = [name for name in SUMMARY_ROWS for _ in images]
    return contact_sheet(tiles, labels, columns=len(images), tile_size=TILE), problems
