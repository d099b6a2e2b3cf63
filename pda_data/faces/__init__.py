"""Face models: the anime cascade and dlib detectors, the 68-point landmarker, head pose."""
