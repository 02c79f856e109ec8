"""The task table and the Representation Assembler, checked against DESIGN.md section 3."""

import math

import pytest
import torch

from facex_core.errors import BatchSizeError, MissingInputError, UnknownNameError
from facex_core.ford.regions import REGION_NAMES
from facex_core.fors.assemble import assemble
from facex_core.fors.representation import (
    FaceRepresentation,
    edit_pose,
    expression_from,
    scale_expression,
    set_gaze,
    set_pose,
)
from facex_core.fors.tasks import TASKS, TaskChoice, custom_row, parse_picks, row_for, task_row

S, T, R = "source", "target", "reference"
FACE = {"eyebrows", "eyes", "nose", "lips", "skin"}
HEAD = FACE | {"hair", "ears", "glasses", "hat", "earrings"}
# The design's table, written out independently of facex_core.fors.tasks:
# task -> (identity, motion, inputs of the regions, texture, lighting)
EXPECTED = {
    "face_swap": (S, T, {r: S if r in FACE else T for r in REGION_NAMES}, S, T),
    "head_swap": (S, T, {r: S if r in HEAD else T for r in REGION_NAMES}, S, T),
    "reenactment": (S, T, {r: S for r in REGION_NAMES}, S, S),
    "animation": (S, T, {r: S for r in REGION_NAMES}, S, S),
    "attribute_editing": (T, T, {r: T for r in REGION_NAMES}, T, T),
    "inpainting": (T, T, {r: T for r in REGION_NAMES}, T, T),
    "motion_editing": (T, T, {r: T for r in REGION_NAMES}, T, T),
    "mixture_editing": (T, T, {r: T for r in REGION_NAMES}, T, T),
}
VALUE = {S: 1.0, T: 2.0, R: 3.0}


def constant(value: float, faces: int = 1) -> FaceRepresentation:
    """A representation whose every number is `value`, so each part shows where it came from."""
    n, r = faces, len(REGION_NAMES)
    return FaceRepresentation(
        identity=torch.full((n, 49, 512), value), regions=torch.full((n, r, 8), value),
        present=torch.full((n, r), value != 3.0), expression=torch.full((n, 64), value),
        pose=torch.full((n, 6), value), gaze=torch.full((n, 2), value), texture=torch.full((n, 80), value),
        lighting=torch.full((n, 27), value),
    )


def origin(tensor: torch.Tensor) -> str:
    values = set(tensor.flatten().tolist())
    assert len(values) == 1, f"mixed origins {values}"
    return {v: k for k, v in VALUE.items()}[values.pop()]


def test_the_table_has_the_eight_tasks():
    assert list(TASKS) == list(EXPECTED)


@pytest.mark.parametrize("task", list(EXPECTED))
def test_each_row_picks_the_documented_parts(task):
    identity, motion, regions, texture, lighting = EXPECTED[task]
    rep = assemble(task_row(task), source=constant(VALUE[S]), target=constant(VALUE[T]), reference=constant(VALUE[R]))
    assert origin(rep.identity) == identity
    assert origin(rep.expression) == origin(rep.pose) == origin(rep.gaze) == motion
    assert {name: origin(rep.regions[:, i]) for i, name in enumerate(REGION_NAMES)} == regions
    assert origin(rep.texture) == texture and origin(rep.lighting) == lighting


def test_attribute_editing_takes_the_chosen_regions_from_the_reference():
    row = task_row("attribute_editing").with_regions(["hair", "eyebrows"], "reference")
    rep = assemble(row, target=constant(VALUE[T]), reference=constant(VALUE[R]))
    chosen = {name: origin(rep.regions[:, i]) for i, name in enumerate(REGION_NAMES)}
    assert chosen["hair"] == chosen["eyebrows"] == R
    assert {v for k, v in chosen.items() if k not in ("hair", "eyebrows")} == {T}
    assert rep.present[0, REGION_NAMES.index("hair")].item() is False
    assert origin(rep.identity) == T


def test_mixture_row_from_three_faces():
    row = custom_row({"eyes": "source", "hair": "reference", "lips": "source"}, identity="source")
    rep = assemble(row, source=constant(VALUE[S]), target=constant(VALUE[T]), reference=constant(VALUE[R]))
    picked = {name: origin(rep.regions[:, i]) for i, name in enumerate(REGION_NAMES)}
    assert (picked["eyes"], picked["hair"], picked["lips"], picked["nose"]) == (S, R, S, T)
    assert origin(rep.identity) == S and set(row.swapped_regions) == {"eyes", "hair", "lips"}


@pytest.mark.parametrize(
    "arguments, words",
    [
        (dict(regions={"beard": "source"}), "unknown region(s) ['beard']"),
        (dict(regions={"eyes": "friend"}), "region input(s) {'eyes': 'friend'}"),
        (dict(regions={}, identity="someone"), "identity comes from 'someone'"),
        (dict(regions={}, lighting="sun"), "lighting comes from 'sun'"),
    ],
)
def test_malformed_custom_rows_are_rejected_with_the_entry(arguments, words):
    with pytest.raises(UnknownNameError) as caught:
        custom_row(**arguments)
    assert words in str(caught.value)


def test_a_missing_input_is_named():
    with pytest.raises(MissingInputError, match="face_swap task needs the source representation"):
        assemble(task_row("face_swap"), target=constant(VALUE[T]))
    with pytest.raises(UnknownNameError, match="unknown task 'beautify'"):
        task_row("beautify")


def test_one_source_drives_every_frame_and_mismatched_batches_are_named():
    rep = assemble(task_row("animation"), source=constant(VALUE[S]), target=constant(VALUE[T], faces=5))
    assert len(rep) == 5 and origin(rep.identity) == S and origin(rep.pose) == T
    with pytest.raises(BatchSizeError, match="source: 2, target: 3"):
        assemble(task_row("reenactment"), source=constant(VALUE[S], 2), target=constant(VALUE[T], 3))


def test_motion_edits_in_degrees():
    rep = constant(0.0)
    edited = set_pose(rep, yaw=30, pitch=-10)
    assert edited.pose[0, :3].tolist() == pytest.approx([math.radians(-10), math.radians(30), 0.0])
    assert edited.pose[0, 3:].tolist() == [0.0, 0.0, 0.0]
    turned = set_pose(edited, yaw=15, relative=True)
    assert turned.pose[0, 1].item() == pytest.approx(math.radians(45))
    assert set_gaze(rep, yaw=20, pitch=5).gaze[0].tolist() == pytest.approx([math.radians(20), math.radians(5)])
    assert torch.equal(scale_expression(constant(2.0), 0.5).expression, torch.ones(1, 64))
    assert torch.equal(expression_from(constant(1.0, 3), constant(7.0)).expression, torch.full((3, 64), 7.0))


def test_each_head_angle_is_edited_on_its_own():
    """Motion Edit's contract: setting yaw leaves pitch and roll as measured (the node once
    zeroed them), offsets add, keep keeps."""
    rep = set_pose(constant(0.0), pitch=-10, yaw=30, roll=5)
    pitch, yaw, roll = (rep.pose[0, axis].item() for axis in range(3))
    edited = edit_pose(rep, {"yaw": ("set", 15.0), "pitch": ("keep", 40.0), "roll": ("offset", -5.0)})
    # the pose is float32: angles agree to its rounding of radians, 1e-7
    assert edited.pose[0, :3].tolist() == pytest.approx([pitch, math.radians(15), roll - math.radians(5)], abs=1e-6)
    assert torch.equal(edited.pose[0, 3:], rep.pose[0, 3:])
    assert torch.equal(edit_pose(rep, {"yaw": ("keep", 20.0)}).pose, rep.pose)
    with pytest.raises(UnknownNameError, match="pose mode"):
        edit_pose(rep, {"yaw": ("turn", 20.0)})


def test_a_task_choice_is_checked_once_and_builds_the_row_for_each_assembler():
    choice = TaskChoice.parse("mixture_editing", "eyes=source,hair=reference")
    assert choice.row(has_source=True).identity == "source" and choice.row().identity == "target"
    assert choice.row().regions["hair"] == "reference"
    with pytest.raises(UnknownNameError, match="wings"):
        TaskChoice.parse("attribute_editing", "wings")


def test_user_picks_become_rows():
    assert parse_picks("hair, eyebrows") == {"hair": "reference", "eyebrows": "reference"}
    assert parse_picks("eyes=source,hair=reference") == {"eyes": "source", "hair": "reference"}
    row = row_for("attribute_editing", parse_picks("hair"))
    assert row.regions["hair"] == "reference" and row.swapped_regions == ("hair",)
    mixture = row_for("mixture_editing", parse_picks("eyes=source"), identity="source")
    assert mixture.identity == "source" and mixture.regions["eyes"] == "source"
    assert row_for("face_swap") is task_row("face_swap")
