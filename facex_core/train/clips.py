"""Training clips: where they are and how their frames are read.

Two layouts are understood. The CelebV-HQ layout is its `celebvhq_info.json` beside the
clips its download script writes (`downloaded_celebvhq/processed/<clip>.mp4`): the json
names the clips, and clips it lists that were never downloaded (many YouTube sources are
gone) are reported, not fatal. Any other folder is searched for video files and for frame
folders (a folder holding images is one clip, its files in name order).

Frames are read by frames.read_frames.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import ImageInputError
from ..image_files import IMAGE_SUFFIXES, VIDEO_SUFFIXES

CELEBV_INFO = "celebvhq_info.json"
CELEBV_FOLDERS = ("downloaded_celebvhq/processed", "processed", ".")


@dataclass(frozen=True)
class Clip:
    name: str  # unique within the data folder; names the clip's shard
    path: Path  # a video file or a folder of frames


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
        raise ImageInputError(f"No videos ({', '.join(sorted(VIDEO_SUFFIXES))}) or frame folders were found under "
                              f"{root}.")
    return ClipList(sorted(clips, key=lambda clip: clip.name), [])


def _celebv_clips(root: Path) -> ClipList:
    listed = json.loads((root / CELEBV_INFO).read_text())["clips"]
    clips, missing = [], []
    for key in sorted(listed):
        places = (root / folder / f"{key}.mp4" for folder in CELEBV_FOLDERS)
        path = next((place for place in places if place.is_file()), None)
        if path is None:
            missing.append(key)
        else:
            clips.append(Clip(key, path))
    if not clips:
        raise ImageInputError(f"{root / CELEBV_INFO} lists {len(listed)} clips but none is downloaded "
                              f"(looked for <clip>.mp4 in {', '.join(CELEBV_FOLDERS)}); run CelebV-HQ's download "
                              f"script.")
    return ClipList(clips, missing)


def _is_clip(path: Path) -> bool:
    if path.is_file():
        return path.suffix.lower() in VIDEO_SUFFIXES
    return path.is_dir() and any(child.suffix.lower() in IMAGE_SUFFIXES for child in path.iterdir())


def _clip_name(root: Path, path: Path) -> str:
    relative = path.relative_to(root)
    return "__".join(relative.with_suffix("").parts if path.is_file() else relative.parts)


