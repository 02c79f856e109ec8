"""FaceXFormer analysis: the crop as upstream cuts it, every output in the right frame
(image pixels, degrees, probabilities, labels), the ways in (boxes, FACEX_FACES, the
command line) and bad input. A tiny FaceXFormer with random weights stands in for the
published one except in the command-line test, which reads a synthesised full-size file."""

from __future__ import annotations

import json
import math
from copy import deepcopy
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ANNOTATIONS, FACES_DIR, annotated, image_tensor, planted_detector_file, require_faces
from PIL import Image

from facex_core.__main__ import main as facex_main
from facex_core.errors import (
    BatchSizeError,
    FaceTooSmallError,
    FaceXError,
    ImageInputError,
    UnknownNameError,
    UsageError,
)
from facex_core.faces.crops import align_faces
from facex_core.faces.detect import FaceDetector, choose_faces
from facex_core.ford.analysis_crops import analysis_boxes, crop_points_to_image, cut_crops
from facex_core.ford.analysis_labels import AGE_BINS, ATTRIBUTES, PARSING_CLASSES
from facex_core.ford.face_analysis import FaceAnalysis, FaceAnalyzer
from facex_core.ford.facexformer import FACEXFORMER_TINY, INPUT_SIZE, FaceXFormer
from facex_core.image_files import read_image_file
from facex_core.images import load_image_batch, to_uint8
from facex_core.testing.facexformer_checkpoint import write_facexformer_checkpoint
from facex_core.testing.model_folder import PACK

# --- the crop -------------------------------------------------------------------------------


@pytest.mark.parametrize("box, image_hw, expected", [
    # 80.3 x 100.5 box: grows by 20.075 and 25.125 on each side, then truncates
    ((100.6, 50.2, 180.9, 150.7), (300, 400), (80, 25, 200, 175)),
    # grows past every edge of a 100 x 100 image: clamped to it
    ((10.0, 5.0, 90.0, 105.0), (100, 100), (0, 0, 100, 100)),
    # 20 px box: 9.99 and 39.99 truncate to 9 and 39 (rounding would give 10 and 40)
    ((14.99, 14.99, 34.99, 34.99), (100, 100), (9, 9, 39, 39)),
    # clamped on the right and bottom only: 60 x 40 box at the corner of a 200 x 120 image
    ((150.0, 90.0, 210.0, 130.0), (120, 200), (135, 80, 200, 120)),
])
def test_the_analysis_crop_grows_the_box_by_half_clamps_and_truncates_as_upstream(box, image_hw, expected):
    assert analysis_boxes(torch.tensor([box]), image_hw).tolist() == [list(expected)]


@pytest.mark.parametrize("box, error, needle", [
    ((50.0, 10.0, 40.0, 30.0), UsageError, "x2 and y2 must be greater"),
    ((float("nan"), 10.0, 40.0, 30.0), UsageError, "NaN"),
    ((-90.0, -90.0, -50.0, -50.0), UsageError, "outside the 100x100 image"),
    ((10.1, 10.1, 10.3, 10.3), FaceTooSmallError, "less than a pixel"),  # grows to 10.05..10.35: no whole pixel
])
def test_a_box_that_gives_no_crop_is_a_named_error(box, error, needle):
    with pytest.raises(error, match=needle):
        analysis_boxes(torch.tensor([box]), (100, 100))


# (image, box) -> the measured difference from PIL (mean, max over pixels and channels, in 1/255):
# shrinking a 634 px crop 0.27 / 1.0; enlarging a 74 px crop 0.29 / 5.6, PIL rounding its
# horizontal pass to 8 bits before the vertical one where torch keeps floats.
PIL_CASES = {
    "shrink": ("portraits/real_biden_portrait.jpg", 0, 0.5, 2),
    "enlarge": ("portraits/ai_baby.png", 0, 0.5, 8),
}


@pytest.mark.parametrize("case", PIL_CASES)
def test_the_crop_matches_pils_bicubic_resize_of_the_authors_transform(case):
    name, face, mean_bound, max_bound = PIL_CASES[case]
    image = annotated(name)
    pixels = read_image_file(image.path)
    crop_box = analysis_boxes(torch.tensor([image.faces[face]["bbox"]], dtype=torch.float32), pixels.shape[:2])
    # the authors' transform: PIL crop of int corners, Resize((224, 224), BICUBIC), ToTensor
    theirs = np.asarray(Image.fromarray(pixels).crop(tuple(crop_box[0].tolist()))
                        .resize((INPUT_SIZE, INPUT_SIZE), Image.BICUBIC), dtype=np.float64) / 255
    images = torch.from_numpy(pixels).float()[None] / 255
    ours = cut_crops(images, crop_box, torch.tensor([0]))[0].permute(1, 2, 0).double().numpy()
    difference = np.abs(ours - theirs) * 255
    assert difference.mean() < mean_bound and difference.max() <= max_bound, (difference.mean(), difference.max())
    if case == "shrink":  # without antialiasing the same crop is far off: the bound tells the filters apart
        x1, y1, x2, y2 = crop_box[0].tolist()
        plain = F.interpolate(images[:, y1:y2, x1:x2].permute(0, 3, 1, 2), size=(INPUT_SIZE, INPUT_SIZE),
                              mode="bicubic", align_corners=False).clamp(0, 1)[0].permute(1, 2, 0).double().numpy()
        assert np.abs(plain - theirs).max() * 255 > 10 * max_bound


def test_crop_units_map_to_the_crops_outer_edges_and_pixel_centres():
    crop_boxes = torch.tensor([[40, 30, 152, 254]])  # 112 x 224: each 224-crop pixel is 0.5 x 1 image pixels
    corners = torch.tensor([[[-1.0, -1.0], [1.0, 1.0]]])
    assert crop_points_to_image(corners, crop_boxes).tolist() == [[[39.5, 29.5], [151.5, 253.5]]]
    # upstream's crop pixel u = ((p + 1) * 224 - 1) / 2; crop pixel (0, 0)'s centre is 0.25, 0.5 into the box
    first_centre = torch.full((1, 1, 2), 1 / INPUT_SIZE - 1)
    torch.testing.assert_close(crop_points_to_image(first_centre, crop_boxes), torch.tensor([[[39.75, 30.0]]]))


# --- the analysis on a tiny network ---------------------------------------------------------


@pytest.fixture(scope="module")
def network() -> FaceXFormer:
    torch.manual_seed(0)
    return FaceXFormer(FACEXFORMER_TINY).eval()


@pytest.fixture(scope="module")
def oval_office(network) -> tuple[torch.Tensor, torch.Tensor, FaceAnalysis]:
    """The two faces of a real photo, analysed one chunk at a time: (images, boxes, analysis)."""
    image = annotated("multi/real_obama_biden_oval_office.jpg")
    images = image_tensor(image.name)
    boxes = torch.tensor([face["bbox"] for face in image.faces], dtype=torch.float32)
    return images, boxes, FaceAnalyzer(network).analyze(images, boxes, [0, 0], chunk_size=1)


def test_real_faces_give_every_output_in_its_documented_shape_and_range(oval_office):
    images, boxes, analysis = oval_office
    assert len(analysis) == 2 and analysis.image_hw == (601, 1024) and analysis.image_count == 1
    shapes = {name: tuple(getattr(analysis, name).shape) for name in
              ("boxes", "landmarks", "occlusion", "pose_degrees", "attributes", "age", "gender", "race", "parsing")}
    assert shapes == {"boxes": (2, 4), "landmarks": (2, 68, 2), "occlusion": (2, 29), "pose_degrees": (2, 3),
                      "attributes": (2, 40), "age": (2, 8), "gender": (2, 2), "race": (2, 5),
                      "parsing": (2, 224, 224)}
    assert analysis.boxes.tolist() == analysis_boxes(boxes, (601, 1024)).tolist()
    for name in ("landmarks", "occlusion", "pose_degrees", "attributes", "age", "gender", "race"):
        assert torch.isfinite(getattr(analysis, name)).all(), name
    for name in ("occlusion", "attributes", "age", "gender", "race"):
        values = getattr(analysis, name)
        assert values.min() >= 0 and values.max() <= 1, name
    for name in ("age", "gender", "race"):  # one distribution over the bins per face
        torch.testing.assert_close(getattr(analysis, name).sum(1), torch.ones(2))
    assert analysis.parsing.dtype == torch.uint8 and int(analysis.parsing.max()) < len(PARSING_CLASSES)


def test_chunks_give_the_same_analysis_as_one_pass_and_report_progress(network, oval_office):
    images, boxes, by_one = oval_office
    progress = []
    whole = FaceAnalyzer(network).analyze(images, boxes, [0, 0], chunk_size=16,
                                          on_chunk=lambda done, total: progress.append((done, total)))
    assert progress == [(2, 2)]
    for name in ("landmarks", "occlusion", "pose_degrees", "attributes", "age", "gender", "race"):
        # float32 batch-of-1 against batch-of-2 matrix products: 1e-4 of the values' scale
        torch.testing.assert_close(getattr(whole, name), getattr(by_one, name), atol=1e-4, rtol=1e-4)
    assert (whole.parsing != by_one.parsing).float().mean() < 1e-3  # a tie may flip a pixel's argmax


def test_a_callback_that_raises_stops_before_the_next_chunk(network, oval_office):
    images, boxes, _ = oval_office
    calls = []
    hook = network.register_forward_hook(lambda *_: calls.append(1))

    def interrupt(done: int, total: int) -> None:
        raise KeyboardInterrupt  # what a host's "stop" does from inside a progress callback

    try:
        with pytest.raises(KeyboardInterrupt):
            FaceAnalyzer(network).analyze(images, boxes, [0, 0], chunk_size=1, on_chunk=interrupt)
    finally:
        hook.remove()
    assert len(calls) == 1


def forced(network: FaceXFormer, **biases: list[float]) -> FaceXFormer:
    """A copy whose named heads ignore the face: last layer's weight 0, its bias the given output."""
    copy = deepcopy(network)
    for head, bias in biases.items():
        last = getattr(copy.face_decoder, f"{head}_prediction_head").layers[-1]
        with torch.no_grad():
            last.weight.zero_()
            last.bias.copy_(torch.tensor(bias))
    return copy


def test_a_landmark_at_a_crop_corner_lands_on_that_corner_in_the_image(network):
    # x, y per point: even points at the crop's bottom-left corner (-1, 1), odd ones at its top-right (1, -1)
    analyzer = FaceAnalyzer(forced(network, landmarks=[-1.0, 1.0, 1.0, -1.0] * 34))
    images = torch.rand(2, 300, 400, 3)
    boxes = torch.tensor([[100.6, 50.2, 180.9, 150.7], [150.0, 90.0, 210.0, 130.0]])
    analysis = analyzer.analyze(images, boxes, [0, 1], chunk_size=1)
    # crops (80, 25, 200, 175) and (135, 80, 225, 140), hand-computed as in the crop test; a
    # corner is the outer edge of its corner pixel, half a pixel beyond that pixel's centre
    assert analysis.boxes.tolist() == [[80, 25, 200, 175], [135, 80, 225, 140]]
    torch.testing.assert_close(analysis.landmarks[:, 0], torch.tensor([[79.5, 174.5], [134.5, 139.5]]))
    torch.testing.assert_close(analysis.landmarks[:, 1], torch.tensor([[199.5, 24.5], [224.5, 79.5]]))


def test_forced_head_outputs_read_back_as_degrees_and_named_labels(network):
    attributes = [0.0] * 40
    attributes[ATTRIBUTES.index("Smiling")] = 8.0  # sigmoid 0.9997; every other attribute 0.5
    attributes[ATTRIBUTES.index("Male")] = -8.0
    occlusion = [-8.0] * 29
    occlusion[27] = 8.0
    analyzer = FaceAnalyzer(forced(network, pose=[math.pi / 2, -math.pi / 4, math.pi / 6], attribute=attributes,
                                   visibility=occlusion, age=[0.0] * 3 + [6.0] + [0.0] * 4, gender=[0.0, 4.0],
                                   race=[0.0, 0.0, 0.0, 5.0, 0.0]))
    analysis = analyzer.analyze(torch.rand(1, 120, 100, 3), torch.tensor([[20.0, 20.0, 80.0, 100.0]]), [0])
    torch.testing.assert_close(analysis.pose_degrees, torch.tensor([[90.0, -45.0, 30.0]]))
    face = analysis.as_json()["faces"][0]
    assert face["head_pose_degrees"] == {"pitch": 90.0, "yaw": -45.0, "roll": 30.0}
    assert face["age"]["label"] == "30-39" and face["gender"]["label"] == "female" and face["race"]["label"] == "indian"
    # softmax of 6 against seven 0s: e^6 / (e^6 + 7)
    assert face["age"]["probability"] == round(math.exp(6) / (math.exp(6) + 7), 3)
    assert face["attributes"]["Smiling"] == 1.0 and face["attributes"]["Male"] == 0.0
    assert face["attributes"]["Young"] == 0.5 and face["occluded_points"] == [27]
    text = analysis.as_text()
    for needle in ("pitch 90.0, yaw -45.0, roll 30.0", "age 30-39", "gender female", "race indian",
                   "Smiling 1.00", "occluded points (of 29, p >= 0.5): 27"):
        assert needle in text, (needle, text)
    assert "Male" not in text and "Young 0.50" in text  # present from 0.5 on, as upstream's >= 0.5
    json.dumps(analysis.as_json())  # plain JSON


def parsed(analysis: FaceAnalysis, labels: torch.Tensor) -> FaceAnalysis:
    return replace(analysis, parsing=labels.to(torch.uint8).expand(len(analysis), -1, -1).clone())


def test_parsing_warped_back_lands_on_the_face_box_of_its_own_image(network):
    boxes = torch.tensor([[100.6, 50.2, 180.9, 150.7], [10.0, 20.0, 70.0, 60.0]])
    analysis = FaceAnalyzer(network).analyze(torch.rand(3, 300, 400, 3), boxes, [2, 0])
    crop = torch.ones(INPUT_SIZE, INPUT_SIZE)  # skin everywhere, a left brow in the middle half
    crop[56:168, 56:168] = PARSING_CLASSES.index("left_brow")
    labels = parsed(analysis, crop).label_map()
    assert labels.shape == (3, 300, 400) and labels.dtype == torch.uint8
    assert not labels[1].any()  # the image without a face
    for (x1, y1, x2, y2), owner in zip(analysis.boxes.tolist(), (2, 0), strict=True):
        rows, cols = labels[owner].nonzero(as_tuple=True)
        assert (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1) == (x1, y1, x2, y2)  # exactly the box
        rows, cols = (labels[owner] == PARSING_CLASSES.index("left_brow")).nonzero(as_tuple=True)
        middle = (x1 + (x2 - x1) / 4, y1 + (y2 - y1) / 4, x2 - (x2 - x1) / 4, y2 - (y2 - y1) / 4)
        found = (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
        assert all(abs(a - b) <= 1 for a, b in zip(found, middle, strict=True)), (found, middle)
    brow = parsed(analysis, crop).class_mask("left_brow")
    assert brow.dtype == torch.float32 and torch.equal(brow.bool(), labels == PARSING_CLASSES.index("left_brow"))
    assert torch.equal(parsed(analysis, crop).class_mask(["skin", "left_brow"]).bool(), labels > 0)


def test_a_neighbours_background_does_not_cover_a_face(network):
    boxes = torch.tensor([[50.0, 50.0, 150.0, 150.0], [120.0, 50.0, 220.0, 150.0]])  # crops overlap by 80 px
    analysis = FaceAnalyzer(network).analyze(torch.rand(1, 200, 300, 3), boxes, [0, 0])
    first, second = torch.zeros(INPUT_SIZE, INPUT_SIZE), torch.zeros(INPUT_SIZE, INPUT_SIZE)
    first[:, :] = 1  # all skin; the second face is all background
    both = replace(analysis, parsing=torch.stack([first, second]).to(torch.uint8))
    x1, y1, x2, y2 = analysis.boxes[0].tolist()
    assert (both.label_map()[0, y1:y2, x1:x2] == 1).all()


def test_unknown_parsing_classes_are_named(oval_office):
    with pytest.raises(UnknownNameError, match="left_ear.*the classes are background, skin"):
        oval_office[2].class_mask(["skin", "left_ear"])


def test_faces_of_a_facecrops_are_analysed_from_their_boxes_in_their_images(network):
    image = annotated("multi/real_group_t1.jpg")
    images = image_tensor(image.name).expand(2, -1, -1, -1)
    faces = align_faces(images, [image.detections()[:1], image.detections()[1:3]], 256)
    analyzer = FaceAnalyzer(network)
    analysis = analyzer.analyze_faces(images, faces)
    direct = analyzer.analyze(images, faces.boxes, faces.image_index)
    assert analysis.image_index.tolist() == [0, 1, 1] and analysis.image_count == 2
    assert torch.equal(analysis.boxes, direct.boxes) and torch.equal(analysis.landmarks, direct.landmarks)
    with pytest.raises(BatchSizeError, match="1024x709 images but these images are 512x355"):
        analyzer.analyze_faces(images[:, ::2, ::2], faces)


def test_no_face_is_an_empty_analysis(network):
    analysis = FaceAnalyzer(network).analyze(torch.rand(2, 64, 64, 3), torch.zeros(0, 4), [])
    assert len(analysis) == 0 and analysis.landmarks.shape == (0, 68, 2) and analysis.parsing.shape == (0, 224, 224)
    assert analysis.label_map().shape == (2, 64, 64) and not analysis.label_map().any()
    assert analysis.as_json() == {"faces": []}


@pytest.mark.parametrize("images, boxes, owners, error, needle", [
    (torch.rand(1, 64, 64), [[1.0, 1.0, 30.0, 30.0]], [0], ImageInputError, "expected a \\[batch, height, width, 3\\]"),
    (torch.zeros(1, 64, 64, 3, dtype=torch.uint8), [[1.0, 1.0, 30.0, 30.0]], [0], ImageInputError, "float"),
    (torch.rand(1, 64, 64, 3), [[1.0, 1.0, 30.0, 30.0]], [1], BatchSizeError, "image 1, but the batch has 1"),
    (torch.rand(1, 64, 64, 3), [[1.0, 1.0, 30.0, 30.0]], [0, 0], UsageError, "one image per face box"),
    (torch.rand(1, 64, 64, 3), [1.0, 1.0, 30.0, 30.0], [0], UsageError, "expected \\[faces, 4\\]"),
])
def test_bad_arguments_are_named_before_the_network_runs(network, images, boxes, owners, error, needle):
    with pytest.raises(error, match=needle):
        FaceAnalyzer(network).analyze(images, torch.tensor(boxes), owners)


BAD = sorted(path.name for path in (FACES_DIR / "bad").iterdir()) if FACES_DIR.is_dir() else []


def test_every_bad_file_gives_a_facex_error_or_a_valid_analysis(network, tmp_path):
    """Through the API as the command runs it: decode, detect (a detector that finds each
    decodable file's annotated faces), choose, analyse."""
    require_faces()
    decodable = [annotated(f"bad/{name}") for name in BAD if ANNOTATIONS[f"bad/{name}"].get("decodable_by_pil")
                 and min(ANNOTATIONS[f"bad/{name}"]["width"], ANNOTATIONS[f"bad/{name}"]["height"]) > 1]
    detector = FaceDetector(planted_detector_file(tmp_path / "det.onnx", decodable, keyed=True), "cpu")
    analyzer = FaceAnalyzer(network)
    outcomes = {}
    for name in BAD:
        try:
            images = load_image_batch(FACES_DIR / "bad" / name)
            faces = choose_faces(detector.detect(to_uint8(images)[0]), "all")
            boxes = torch.tensor(np.stack([face.box for face in faces]), dtype=torch.float32)
            analysis = analyzer.analyze(images, boxes, [0] * len(faces))
        except FaceXError as error:
            assert str(error), name
            outcomes[name] = type(error).__name__
        else:
            assert len(analysis) == 1 and torch.isfinite(analysis.landmarks).all(), name
            outcomes[name] = "analysed"
    assert outcomes == {"empty.png": "ImageInputError", "gray16.png": "analysed", "no_face_coffee.png": "NoFaceError",
                        "one_pixel.png": "ImageInputError", "rgb16.png": "analysed", "rgba_transparent.png": "analysed",
                        "text_not_image.png": "ImageInputError", "truncated.jpg": "ImageInputError"}


# --- the command line, on the full-size network ---------------------------------------------


@pytest.fixture(scope="module")
def facexformer_file(tmp_path_factory) -> Path:
    """A FaceXFormer-B file in the published layout with random weights, fp16 (about 190 MB)."""
    return write_facexformer_checkpoint(tmp_path_factory.mktemp("facexformer") / "model.pt", dtype=torch.float16)


def test_analyze_prints_each_face_and_writes_masks_in_the_images_pixels(facexformer_file, tmp_path, capsys):
    image = annotated("portraits/ai_glasses_man.png")
    detector = planted_detector_file(tmp_path / "det_10g.onnx", [image])
    masks = tmp_path / "masks"  # a new folder
    argv = ["--device", "cpu", "analyze", "--image", str(image.path), "--facexformer", str(facexformer_file),
            "--detector", str(detector), "--masks", str(masks)]
    assert facex_main([*argv, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["facexformer"] == str(facexformer_file) and len(printed["faces"]) == 1
    face = printed["faces"][0]
    # the planted detector gives the annotated box back through the letterbox's scale: within a pixel
    expected = analysis_boxes(torch.tensor([image.faces[0]["bbox"]], dtype=torch.float64), (350, 350))[0].tolist()
    assert all(abs(a - b) <= 1 for a, b in zip(face["box"], expected, strict=True)), (face["box"], expected)
    assert len(face["landmarks"]) == 68 and len(face["occlusion"]) == 29 and len(face["attributes"]) == 40
    assert set(face["age"]["probabilities"]) == set(AGE_BINS)

    names = [f"ai_glasses_man_{name}.png" for name in ("labels", *PARSING_CLASSES)]
    assert sorted(path.name for path in masks.iterdir()) == sorted(names)
    assert printed["masks"] == [str(masks / name) for name in names]
    labels = np.asarray(Image.open(masks / names[0]))
    assert labels.shape == (350, 350) and labels.max() < len(PARSING_CLASSES)
    x1, y1, x2, y2 = face["box"]
    assert labels[y1:y2, x1:x2].any()  # random weights label most of the crop as some part
    assert not labels[:y1].any() and not labels[y2:].any() and not labels[:, :x1].any() and not labels[:, x2:].any()
    for index, name in enumerate(PARSING_CLASSES):
        mask = np.asarray(Image.open(masks / names[index + 1]))
        assert mask.dtype == np.uint8 and np.array_equal(mask, (labels == index) * 255), name

    # as text, the files found in a models folder where the manifest puts them, into the same masks folder
    models = tmp_path / "models"
    (models / PACK).mkdir(parents=True)
    detector.rename(models / PACK / "det_10g.onnx")
    (models / "facex_extractors").mkdir()
    (models / "facex_extractors" / "facexformer.pt").symlink_to(facexformer_file)
    assert facex_main(["--models-dir", str(models), "--device", "cpu", "analyze", "--image", str(image.path),
                       "--masks", str(masks)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"1 face(s) in {image.path} (FaceXFormer facexformer.pt)")
    for needle in ("face 0 (image 0, crop ", "head pose (degrees): pitch", "age ", "attributes (p >= 0.5)",
                   f"masks: 12 PNG files in {masks}"):
        assert needle in text, (needle, text)
