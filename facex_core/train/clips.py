"""Training clips: where they are and how their frames are read.

Two layouts are understood. The CelebV-HQ layout is its `celebvhq_info.json` beside the
clips its download script writes (`downloaded_celebvhq/processed/<clip>.mp4`): the json
names the clips, and clips it lists that were never downloaded (many YouTube sources are
gone) are reported, not fatal. Any other folder is searched for video files and for frame
folders (a folder holding images is one clip, its files in name order).

Frames are read lazily. A frame that cannot be decoded is yielded as a `BadFrame` so the
caller can log it and go on; one corrupt frame never costs the clip.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import ImageInputError
from ..images import read_image_file

VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})
CELEBV_INFO = "celebvhq_info.json"
CELEBV_FOLDERS = ("downloaded_celebvhq/processed", "processed", ".")


@dataclass(frozen=True)
class Clip:
    name: str  # unique within the data folder; names the clip's shard
    path: Path  # a video file or a folder of frames


@dataclass(frozen=True)
class Frame:
    index: int
    pixels: np.ndarray  # [H, W, 3] uint8 RGB


@dataclass(frozen=True)
class BadFrame:
    index: int
    reason: str


@dataclass(frozen=True)
class ClipList:
    clips: list[Clip]
    missing: list[str]  # clips a CelebV-HQ info file lists that are not on disk


def find_clips(root: str | Path) -> ClipList:
    """Every clip under `root`, sorted by name (so every process sees the same list)."""
    root = Path(root)
    if not root.is_dir():
        raise ImageInputError(f"The data folder {root} does not exist; give a folder of videos or frame folders.")
    if (root / CELEBV_INFO).is_file():
        return _celebv_clips(root)
    clips = [Clip(_clip_name(root, path), path) for path in sorted(root.rglob("*")) if _is_clip(path)]
    if not clips:
        raise ImageInputError(f"No videos ({', '.join(sorted(VIDEO_SUFFIXES))}) or frame folders were found under {root}.")
    return ClipList(sorted(clips, key=lambda clip: clip.name), [])


def _celebv_clips(root: Path) -> ClipList:
    listed = json.loads((root / CELEBV_INFO).read_text())["clips"]
    clips, missing = [], []
    for key in sorted(listed):
        path = next((root / folder / f"{key}.mp4" for folder in CELEBV_FOLDERS if (root / folder / f"{key}.mp4").is_file()), None)
        if path is None:
            missing.append(key)
        else:
            clips.append(Clip(key, path))
    if not clips:
        raise ImageInputError(f"{root / CELEBV_INFO} lists {len(listed)} clips but none is downloaded "
                              f"(looked for <clip>.mp4 in {', '.join(CELEBV_FOLDERS)}); run CelebV-HQ's download script.")
    return ClipList(clips, missing)


def _is_clip(path: Path) -> bool:
    if path.is_file():
        return path.suffix.lower() in VIDEO_SUFFIXES
    return path.is_dir() and any(child.suffix.lower() in IMAGE_SUFFIXES for child in path.iterdir())


def _clip_name(root: Path, path: Path) -> str:
    relative = path.relative_to(root)
    return "__".join(relative.with_suffix("").parts if path.is_file() else relative.parts)


def read_frames(clip: Clip, every: int = 1, limit: int | None = None) -> Iterator[Frame | BadFrame]:
    """Every `every`-th frame of a clip, at most `limit` of them."""
    frames = _video_frames(clip.path) if clip.path.is_file() else _folder_frames(clip.path)
    taken = 0
    for index, frame in enumerate(frames):
        if index % every:
            continue
        if limit is not None and taken >= limit:
            return
        taken += 1
        yield frame


def _folder_frames(folder: Path) -> Iterator[Frame | BadFrame]:
    files = sorted(path for path in folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
    for index, path in enumerate(files):
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
