"""Landmark annotation exchange formats (CVAT for images 1.1, labelme, COCO keypoints, CSV), one module each;
:mod:`~pda_data.annotations.formats.registry` picks one by name."""
