"""Landmark annotation exchange formats (CVAT for images 1.1, labelme, COCO keypoints, CSV,
LabelAnyLandmarks), one module each; :mod:`~pda_data.annotations.formats.registry` picks one by name."""

FORMATS: tuple[str, ...] = ("cvat", "labelme", "coco", "csv", "labelanylandmarks")
# The formats an annotation tool opens, so pre-annotations can be corrected there.
TOOL_FORMATS: tuple[str, ...] = ("cvat", "labelme", "labelanylandmarks")
# The formats written as a folder of one file per image (the others are one file).
FOLDER_FORMATS: tuple[str, ...] = ("labelme", "labelanylandmarks")
