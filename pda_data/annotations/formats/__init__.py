"""Landmark annotation exchange formats (CVAT for images 1.1, labelme, COCO keypoints, CSV), one module each;
:mod:`~pda_data.annotations.formats.registry` picks one by name."""

FORMATS: tuple[str, ...] = ("cvat", "labelme", "coco", "csv")
# The formats an annotation tool opens, so pre-annotations can be corrected there.
TOOL_FORMATS: tuple[str, ...] = ("cvat", "labelme")
