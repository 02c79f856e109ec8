"""How well a face detector finds annotated faces: recall and five-point error.

A detector and an annotation draw boxes of different extent (SCRFD's box is not dlib's), so
faces are matched by their five points instead: an annotated face counts as found when a
detection's points lie, on average, within MATCH_DISTANCE inter-ocular distances of the
annotated ones. The point error of a found face is that mean distance in the same unit, so
faces of every size weigh alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MATCH_DISTANCE = 0.25  # mean point distance, in inter-ocular distances, that still counts as the same face


@dataclass(frozen=True)
class FaceMatch:
    """One annotated face: its normalised point error when a detection matched it, else None."""

    image: str
    error: float | None


def normalised_point_error(points: np.ndarray, truth: np.ndarray) -> float:
    """Mean distance of five points [5, 2] to the annotated ones, in inter-ocular distances."""
    ocular = float(np.linalg.norm(truth[1] - truth[0]))
    return float(np.linalg.norm(points - truth, axis=1).mean() / ocular)


def match_faces(image: str, detected: list[np.ndarray], annotated: list[np.ndarray]) -> list[FaceMatch]:
    """Each annotated face [5, 2] with the error of its nearest detection, if within MATCH_DISTANCE."""
    matches = []
    for truth in annotated:
        errors = [normalised_point_error(points, truth) for points in detected]
        best = min(errors, default=None)
        matches.append(FaceMatch(image, best if best is not None and best <= MATCH_DISTANCE else None))
    return matches


@dataclass(frozen=True)
class DetectionScore:
    faces: int
    found: int
    mean_error: float  # over the found faces
    missed: list[str]  # images with a face that was not found

    @property
    def recall(self) -> float:
        return self.found / self.faces if self.faces else float("nan")


def score(matches: list[FaceMatch]) -> DetectionScore:
    errors = [match.error for match in matches if match.error is not None]
    return DetectionScore(len(matches), len(errors), float(np.mean(errors)) if errors else float("nan"),
                          [match.image for match in matches if match.error is None])
