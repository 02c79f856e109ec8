"""Errors a user can cause, each saying which input is wrong and what to do about it.

Everything raised on purpose by facex_core derives from FaceXError, so the ComfyUI layer
and the command line can show the message as it is instead of a library traceback.
"""

from pathlib import Path


class FaceXError(Exception):
    """Base class: the message is written for the person who runs the graph."""


class ImageInputError(FaceXError):
    """An image file or tensor that cannot be used as it is (decode failure, shape, dtype)."""


class NoFaceError(FaceXError):
    """The detector found no face in an image."""


class ImageWithoutFaceError(NoFaceError):
    """No face in a named image file (the edit and eval commands say which file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(f"No face was found in {path}. Use an image where a face is clearly visible, "
                         "or lower the detection threshold.")


class FaceTooSmallError(FaceXError):
    """The chosen face is smaller than the minimum size that gives a usable crop."""


class FaceIndexError(FaceXError):
    """A face index that is out of range for the faces found in an image."""


class ModelFileMissingError(FaceXError):
    """A model file is not where it is looked for."""


class ModelFileError(FaceXError):
    """A model file exists but cannot be used: corrupt, truncated or of another layout."""


class BatchSizeError(FaceXError):
    """Inputs whose batch sizes cannot be matched (neither equal nor one of them 1)."""


class UsageError(FaceXError):
    """A command-line argument or option that cannot be used; the message names the flag."""


class UnknownNameError(FaceXError):
    """A name (task, region, model key, config, family) that is not among the known ones;
    the message lists the known ones."""


class MissingInputError(FaceXError):
    """An input a task or node needs was not given: a face, a hole mask, an FRC-patched model."""


class ConfigError(FaceXError):
    """A training setting of the wrong type, out of range, or not fitting the others."""
