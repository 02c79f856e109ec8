"""Every file in ../shared/faces/bad/ through the front door: load, detect, align.

Each either works (16-bit and RGBA images are valid pictures of a face) or stops with a
FaceX error; nothing escapes as a traceback from inside a library.
"""

import pytest
from conftest import FACES_DIR, annotated, require_faces

from facex_core.errors import FaceXError, ImageInputError, NoFaceError
from facex_core.faces.crops import detect_and_align
from facex_core.faces.detect import FaceDetector
from facex_core.images import load_image_batch

require_faces()  # the module lists files of ../shared/faces while it is collected
BAD = sorted(path.name for path in (FACES_DIR / "bad").iterdir())
OUTCOME = {
    "empty.png": ImageInputError,
    "text_not_image.png": ImageInputError,
    "truncated.jpg": ImageInputError,
    "one_pixel.png": ImageInputError,
    "no_face_coffee.png": NoFaceError,
    "gray16.png": None,
    "rgb16.png": None,
    "rgba_transparent.png": None,
}


def test_the_outcome_table_covers_the_whole_folder():
    assert sorted(OUTCOME) == BAD


@pytest.mark.parametrize("name", BAD)
def test_bad_file_gives_a_facex_error_or_a_face(name, planted_detector, empty_detector_file):
    image = annotated(f"bad/{name}")
    detector = planted_detector(image.name) if image.faces else FaceDetector(empty_detector_file, device="cpu")
    expected = OUTCOME[name]
    try:
        faces = detect_and_align(load_image_batch(image.path), detector, size=256)
    except FaceXError as error:
        assert expected is not None and isinstance(error, expected), f"{name}: {error!r}"
        assert str(error)
    else:
        assert expected is None, f"{name} should have failed with {expected.__name__}"
        assert faces.crops.shape == (1, 256, 256, 3)
