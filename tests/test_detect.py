"""Detection through insightface's SCRFD decoding, on files in the det_10g graph layout."""

import numpy as np
import onnx
import pytest
import torch
from conftest import annotated, decodable_with_good_faces, image_tensor, planted_detector_file

from facex_core.errors import (
    FaceIndexError,
    FaceTooSmallError,
    ImageInputError,
    ModelFileError,
    ModelFileMissingError,
    NoFaceError,
)
from facex_core.eval.detection import match_faces, score
from facex_core.faces.crops import detect_and_align
from facex_core.faces.detect import FaceDetector, choose_faces
from facex_core.image_files import read_image_file
from facex_core.testing import onnx_models

GROUP = "multi/real_group_t1.jpg"


@pytest.mark.parametrize("name", [GROUP, "portraits/real_obama_speech.jpg", "portraits/ai_baby.png"])
def test_detections_come_back_in_image_pixels(planted_detector, name):
    image = annotated(name)
    found = sorted(planted_detector(name).detect(read_image_file(image.path)), key=lambda f: f.box[0])
    assert len(found) == len(image.faces)
    for face, truth in zip(found, image.faces, strict=True):
        # the planted outputs decode through insightface's anchors in float32: within 0.01 px
        assert np.abs(face.box - truth["bbox"]).max() < 1e-2
        assert np.abs(face.kps - truth["landmarks_5"]).max() < 1e-2
        assert face.score == pytest.approx(0.9, abs=1e-6)


def test_one_detector_serves_every_threshold(planted_detector):
    """The planted faces score 0.9: a call's threshold above it finds none, below it all, and a
    call without one uses the detector's own."""
    image = read_image_file(annotated(GROUP).path)
    detector = planted_detector(GROUP)
    expected = len(annotated(GROUP).faces)
    assert [len(detector.detect(image, threshold=t)) for t in (0.5, 0.95, 0.85)] == [expected, 0, expected]
    assert len(detector.detect(image)) == expected  # the default 0.5
    detector.threshold = 0.95
    assert len(detector.detect(image)) == 0


def test_face_choice_largest_and_by_index_left_to_right(planted_detector):
    image = annotated(GROUP)
    found = planted_detector(GROUP).detect(read_image_file(image.path))
    boxes = [f["bbox"] for f in image.faces]
    areas = [(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]
    largest = choose_faces(found, "largest")[0]
    assert (largest.box[2] - largest.box[0]) * (largest.box[3] - largest.box[1]) == pytest.approx(max(areas), abs=0.1)
    for index, box in enumerate(boxes):
        assert np.abs(choose_faces(found, "index", index)[0].box - box).max() < 1e-2
    assert len(choose_faces(found, "all")) == 6


def test_face_index_out_of_range_names_the_count(planted_detector):
    found = planted_detector(GROUP).detect(read_image_file(annotated(GROUP).path))
    with pytest.raises(FaceIndexError, match=r"Image 3: face index 6 .* 6 face\(s\) were found \(indices 0..5"):
        choose_faces(found, "index", 6, image_index=3)


def test_face_below_the_minimum_size_is_rejected_with_its_size(planted_detector):
    name = "portraits/ai_baby.png"
    x1, y1, x2, y2 = annotated(name).faces[0]["bbox"]
    found = planted_detector(name).detect(read_image_file(annotated(name).path))
    with pytest.raises(FaceTooSmallError, match=f"is {min(x2 - x1, y2 - y1)} px, below the minimum of 64 px"):
        choose_faces(found, "largest", min_size=64)
    assert choose_faces(found, "largest", min_size=32)


def test_no_face_in_the_coffee_picture(empty_detector_file):
    detector = FaceDetector(empty_detector_file, device="cpu")
    images = image_tensor("bad/no_face_coffee.png")
    with pytest.raises(NoFaceError, match="No face was found in image 0"):
        detect_and_align(images, detector)


def test_a_one_pixel_image_is_refused_before_detection(empty_detector_file):
    detector = FaceDetector(empty_detector_file, device="cpu")
    with pytest.raises(ImageInputError, match="1x1 pixels, too small"):
        detector.detect(read_image_file(annotated("bad/one_pixel.png").path))


def test_detect_and_align_over_a_batch_of_frames(planted_detector):
    names = [f"same_identity/ai_ltx2_woman/frame_{n:03d}.png" for n in (0, 13, 26)]
    detector = planted_detector(names[0])
    faces = detect_and_align(torch.cat([image_tensor(n) for n in names]), detector, size=256)
    assert faces.crops.shape == (3, 256, 256, 3)
    assert faces.image_index.tolist() == [0, 1, 2]


def test_a_recognition_model_is_not_accepted_as_detector(arcface_file):
    with pytest.raises(ModelFileError, match="is not a face detector"):
        FaceDetector(arcface_file, device="cpu")


def test_a_detector_without_keypoints_is_refused(tmp_path):
    path = tmp_path / "scrfd_no_kps.onnx"
    onnx.save(onnx_models.scrfd_empty(keypoints=False), str(path))
    with pytest.raises(ModelFileError, match="no facial keypoints"):
        FaceDetector(path, device="cpu")


def test_truncated_detector_file_says_download_again(tmp_path, empty_detector_file):
    path = tmp_path / "det_10g.onnx"
    path.write_bytes(empty_detector_file.read_bytes()[:3000])
    with pytest.raises(ModelFileError, match="corrupt or truncated, download it again"):
        FaceDetector(path, device="cpu")


def test_missing_detector_names_the_path_and_the_download(tmp_path):
    with pytest.raises(ModelFileMissingError) as caught:
        FaceDetector(tmp_path / "det_10g.onnx", device="cpu")
    assert str(tmp_path / "det_10g.onnx") in str(caught.value)
    assert "python -m facex_core.models download buffalo_l/det_10g" in str(caught.value)


def test_frames_without_a_usable_face_can_be_skipped_and_the_others_aligned(tmp_path):
    """A video whose face leaves the shot: with skip_faceless the frames without a face (or
    with one below the minimum size) give no crop, the others keep their frame numbers; a
    wrong face index stays an error, as it is the user's setting, not the footage."""
    names = [f"same_identity/ai_ltx2_woman/frame_{n:03d}.png" for n in (0, 13)]
    detector = FaceDetector(planted_detector_file(tmp_path / "det.onnx", [annotated(n) for n in names], keyed=True),
                            "cpu")
    first = image_tensor(names[0])
    coffee = torch.nn.functional.interpolate(image_tensor("bad/no_face_coffee.png").permute(0, 3, 1, 2),
                                             size=first.shape[1:3], mode="bilinear").permute(0, 2, 3, 1)
    frames = torch.cat([first, coffee, image_tensor(names[1])])
    with pytest.raises(NoFaceError, match="No face was found in image 1"):
        detect_and_align(frames, detector, 256)
    faces = detect_and_align(frames, detector, 256, skip_faceless=True)
    assert faces.image_index.tolist() == [0, 2] and faces.crops.shape == (2, 256, 256, 3)
    with pytest.raises(FaceIndexError, match="face index 3 was asked for"):
        detect_and_align(frames, detector, 256, choice="index", index=3, skip_faceless=True)
    with pytest.raises(NoFaceError, match="none of the 3 image"):
        detect_and_align(frames, detector, 256, min_size=10_000, skip_faceless=True)


def test_all_faces_skips_small_ones_and_fails_only_when_none_is_left(planted_detector):
    found = planted_detector(GROUP).detect(read_image_file(annotated(GROUP).path))
    sizes = sorted(face.size for face in found)
    kept = choose_faces(found, "all", min_size=sizes[-1] - 1)
    assert len(kept) == sum(size >= sizes[-1] - 1 for size in sizes) < len(found)
    with pytest.raises(FaceTooSmallError, match="below the minimum of 500 px"):
        choose_faces(found, "all", min_size=500)


def test_a_keyed_planted_detector_answers_each_image_with_its_own_faces(tmp_path):
    names = ["portraits/ai_glasses_man.png", "portraits/ai_curly_hair_woman_hand_occlusion.png"]
    detector = FaceDetector(planted_detector_file(tmp_path / "det.onnx", [annotated(n) for n in names], keyed=True),
                            "cpu")
    for name in names:
        found = detector.detect(read_image_file(annotated(name).path))
        assert len(found) == 1 and np.abs(found[0].box - annotated(name).faces[0]["bbox"]).max() < 1e-2
    assert detector.detect(read_image_file(annotated("portraits/ai_baby.png").path)) == []


MIN_FACE = 32  # px, the detector's working range the acceptance counts


def test_the_real_scrfd_finds_the_annotated_faces_with_their_five_points(real_scrfd):
    """The real SCRFD-2.5G over every image of ../shared/faces: recall and point error on the
    faces of 32 px and more whose landmarks are graded good (benchmarks/detector.py prints them)."""
    detector = FaceDetector(real_scrfd, "cpu")
    matches = []
    for image in decodable_with_good_faces():
        faces = [face for face in image.faces if face["landmarks_quality"] == "good"
                 and min(face["bbox"][2] - face["bbox"][0], face["bbox"][3] - face["bbox"][1]) >= MIN_FACE]
        found = detector.detect(read_image_file(image.path))
        matches += match_faces(image.name, [face.kps for face in found], [np.array(f["landmarks_5"]) for f in faces])
    result = score(matches)
    assert result.faces >= 30  # the set holds this many such faces; fewer means the annotations changed
    assert result.recall >= 0.95, result
    assert result.mean_error <= 0.10, result
