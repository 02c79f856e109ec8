"""Frames of a clip: a video file or a folder of frames, read lazily.

A frame that cannot be decoded is yielded as a `BadFrame` so the caller can log it and go
on: one corrupt frame never costs the clip (training preparation, the animation task).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import ImageInputError
from .image_files import IMAGE_SUFFIXES, VIDEO_SUFFIXES, read_image_file


@dataclass(frozen=True)
class Frame:
    index: int
    pixels: np.ndarray  # [H, W, 3] uint8 RGB


@dataclass(frozen=True)
class BadFrame:
    index: int
    reason: str


def read_frames(path: Path, every: int = 1, limit: int | None = None) -> Iterator[Frame | BadFrame]:
    """Every `every`-th frame of a video file or a folder of frames, at most `limit` of them."""
    frames = _video_frames(path) if path.is_file() else _folder_frames(path)
    taken = 0
    for index, frame in enumerate(frames):
        if index % every:
            continue
        if limit is not None and taken >= limit:
            return
        taken += 1
        yield frame


def frame_files(folder: Path) -> list[Path]:
    """The image files of a frame folder, in name order (frame_000.png, frame_001.png, ...)."""
    return sorted(path for path in folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)


def _folder_frames(folder: Path) -> Iterator[Frame | BadFrame]:
    for index, path in enumerate(frame_files(folder)):
        try:
            yield Frame(index, read_image_file(path))
        except ImageInputError as error:
            yield BadFrame(index, f"{path.name}: {error}")


def _video_frames(path: Path) -> Iterator[Frame | BadFrame]:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        yield BadFrame(0, f"{path.name}: the video cannot be opened (unsupported codec or a damaged file)")
        return
    expected = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    index = 0
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                if index < expected:  # the container promised more frames: the rest is damaged
                    yield BadFrame(index, f"{path.name}: decoding stopped at frame {index} of {expected}")
                return
            yield Frame(index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            index += 1
    finally:
        capture.release()


VIDEO_WRITERS = {".mp4": "mp4v", ".avi": "MJPG"}  # container -> a codec OpenCV writes in every build
FRAMES_PER_SECOND = 25.0  # for a clip given as a folder of frames


def frame_rate(path: Path) -> float:
    """The frame rate of a video file (FRAMES_PER_SECOND for a frame folder or an unknown rate)."""
    if path.is_dir():
        return FRAMES_PER_SECOND
    capture = cv2.VideoCapture(str(path))
    try:
        rate = capture.get(cv2.CAP_PROP_FPS)
    finally:
        capture.release()
    return rate if rate > 0 else FRAMES_PER_SECOND


class FrameWriter:
    """Frames written in order: to a video file (a VIDEO_WRITERS suffix) or, for a path
    without a suffix, as frame_00000.png, ... into that folder."""

    def __init__(self, path: Path, fps: float = FRAMES_PER_SECOND) -> None:
        self.path, self.fps = path, fps
        self.count = 0
        self._video: cv2.VideoWriter | None = None

    def write(self, pixels: np.ndarray) -> None:
        """One uint8 RGB [H, W, 3] frame."""
        if self.path.suffix:
            if self._video is None:
                fourcc = cv2.VideoWriter_fourcc(*VIDEO_WRITERS[self.path.suffix.lower()])
                self._video = cv2.VideoWriter(str(self.path), fourcc, self.fps, (pixels.shape[1], pixels.shape[0]))
            self._video.write(cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
        else:
            self.path.mkdir(exist_ok=True)
            cv2.imwrite(str(self.path / f"frame_{self.count:05d}.png"), cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))
        self.count += 1

    def close(self) -> None:
        if self._video is not None:
            self._video.release()

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def first_frame(path: Path) -> Frame:
    """The first frame of a video file or frame folder, or an error saying why there is none
    (a command checks its clip with this before loading models)."""
    if path.is_file() and path.suffix.lower() not in VIDEO_SUFFIXES:
        raise ImageInputError(f"{path} is not a video ({', '.join(sorted(VIDEO_SUFFIXES))}) or a folder of frames.")
    if path.is_dir() and not frame_files(path):
        raise ImageInputError(f"{path} holds no frames ({', '.join(sorted(IMAGE_SUFFIXES))} files).")
    if not path.exists():
        raise ImageInputError(f"{path} does not exist; give a video file or a folder of frames.")
    frame = next(read_frames(path, limit=1), None)
    if frame is None:
        raise ImageInputError(f"{path} holds no frame that can be read.")
    if isinstance(frame, BadFrame):
        raise ImageInputError(f"{path}: the first frame cannot be read ({frame.reason}).")
    return frame
