"""Head pose (yaw, pitch, roll) from dlib's 68 landmarks, fitted to a generic 3D face."""

from __future__ import annotations

import cv2
import numpy as np

from pda_data.schema import HUMAN68

# Generic 3D face (mm), camera axes: x right, y down, z away from the camera; the nose tip is the origin.
_GENERIC_FACE = np.array([
    (0.0, 0.0, 0.0),  # nose tip
    (0.0, 330.0, 65.0),  # chin
    (-225.0, -170.0, 135.0),  # outer corner of the image-left eye
    (225.0, -170.0, 135.0),  # outer corner of the image-right eye
    (-150.0, 150.0, 125.0),  # image-left mouth corner
    (150.0, 150.0, 125.0),  # image-right mouth corner
])
# dlib's landmarks of faces looking straight at the camera fit the generic face tilted by about 20 degrees
# (measured on real frontal portraits), so the model is pre-tilted to make their pitch about 0.
_NEUTRAL_PITCH = np.radians(20.0)
_POSE_MODEL = _GENERIC_FACE @ np.array([
    (1.0, 0.0, 0.0),
    (0.0, np.cos(_NEUTRAL_PITCH), np.sin(_NEUTRAL_PITCH)),
    (0.0, -np.sin(_NEUTRAL_PITCH), np.cos(_NEUTRAL_PITCH)),
])
# The matching HUMAN68 points; dlib's eye cycles start at the image-left corner and reach the image-right
# corner halfway round.
_POSE_INDICES = (
    HUMAN68.nose_tip,
    HUMAN68.contour[len(HUMAN68.contour) // 2],
    HUMAN68.left_eye[0],
    HUMAN68.right_eye[len(HUMAN68.right_eye) // 2],
    *HUMAN68.mouth_corners,
)


def head_pose(points68: np.ndarray, width: int, height: int) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from the 68 landmarks, via ``cv2.solvePnP`` on a generic 3D face.

    A pinhole camera with focal length = the image's larger side is assumed, its principal point on the
    face, so where a face sits in the photo does not change its angles. All three angles are 0 for a frontal,
    upright face; roll is positive when the face tilts clockwise.
    """
    pts = HUMAN68.check_shape(points68)[list(_POSE_INDICES)]
    focal = float(max(width, height))
    cx, cy = HUMAN68.check_shape(points68).mean(axis=0)
    camera = np.array([[focal, 0, cx], [0, focal, cy], [0, 0, 1]], dtype=np.float64)
    # Start from a frontal face at the distance its eye span implies: the nearly planar model otherwise
    # lets the solver settle on the mirrored solution (a face seen from behind, roll near 180).
    eye_span = float(np.linalg.norm(pts[3] - pts[2]))
    model_span = float(np.linalg.norm(_POSE_MODEL[3] - _POSE_MODEL[2]))
    rvec0 = np.zeros((3, 1))
    tvec0 = np.array([[0.0], [0.0], [focal * model_span / max(eye_span, 1.0)]])
    ok, rvec, _ = cv2.solvePnP(_POSE_MODEL, pts, camera, np.zeros(4), rvec0, tvec0, useExtrinsicGuess=True,
                               flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        return float("nan"), float("nan"), float("nan")
    rot, _ = cv2.Rodrigues(rvec)
    (pitch, yaw, roll), *_ = cv2.RQDecomp3x3(rot)
    return float(yaw), float(pitch), float(roll)
