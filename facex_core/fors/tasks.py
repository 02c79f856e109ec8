"""The task table: for each FaceX task, which input each part of the representation comes
from and how the inpainting reference I_R is composed.

Rows are data. Mixture editing is just a row built by the user (`custom_row`), validated
the same way, so any region can come from any input. Inputs are the source face S, the
target face T and, for attribute editing, a reference face R.

Defaults follow the design: 3DMM texture travels with the skin region, SH lighting with
the environment (the target), and the background region is the target's except in
reenactment and animation, where the whole source image is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..errors import MissingInputError, UnknownNameError
from ..ford.regions import REGION_NAMES

INPUTS = ("source", "target", "reference")
# How I_R is composed; the Region Assembler holds one composer per kind.
REFERENCE_KINDS = ("face_swap", "head_swap", "source_image", "regions_replaced", "hole_blanked", "target_image")

FACE_PARTS = ("eyebrows", "eyes", "nose", "lips", "skin")
HEAD_PARTS = FACE_PARTS + ("hair", "ears", "glasses", "hat", "earrings")


def _regions(default: str, **overrides: tuple[str, ...]) -> dict[str, str]:
    """Every region from `default`, except those listed under another input."""
    chosen = {region: default for region in REGION_NAMES}
    for source, names in overrides.items():
        chosen.update({name: source for name in names})
    return chosen


@dataclass(frozen=True)
class TaskRow:
    """Where each part of the representation comes from, for one task."""

    name: str
    identity: str
    motion: str  # expression, pose and gaze
    regions: dict[str, str]
    reference: str  # how I_R is composed (REFERENCE_KINDS)
    lighting: str = "target"
    texture: str = ""  # empty: follows the skin region
    description: str = ""
    swapped_regions: tuple[str, ...] = field(default=())  # regions I_R takes from the other face

    @property
    def texture_input(self) -> str:
        return self.texture or self.regions["skin"]

    def inputs(self) -> set[str]:
        """The inputs this row reads."""
        return {self.identity, self.motion, self.lighting, self.texture_input, *self.regions.values()}

    def with_regions(self, names: tuple[str, ...] | list[str], source: str) -> TaskRow:
        """The same row with `names` taken from `source` (e.g. attribute editing's chosen regions)."""
        return validate(replace(self, regions={**self.regions, **{name: source for name in names}},
                                swapped_regions=tuple(dict.fromkeys((*self.swapped_regions, *names)))))


TASKS: dict[str, TaskRow] = {
    row.name: row
    for row in (
        TaskRow("face_swap", identity="source", motion="target",
                regions=_regions("target", source=FACE_PARTS), reference="face_swap",
                swapped_regions=FACE_PARTS,
                description="Source face on the target's head, hair and background."),
        TaskRow("head_swap", identity="source", motion="target",
                regions=_regions("source", target=("background", "neck", "cloth")), reference="head_swap",
                swapped_regions=HEAD_PARTS,
                description="Source head (face and hair) on the target's body and background; the generalist training "
                            "task."),
        TaskRow("reenactment", identity="source", motion="target",
                regions=_regions("source"), reference="source_image", lighting="source",
                description="The source person making the target's expression, pose and gaze."),
        TaskRow("animation", identity="source", motion="target",
                regions=_regions("source"), reference="source_image", lighting="source",
                description="Reenactment driven by every frame of a target sequence."),
        TaskRow("attribute_editing", identity="target", motion="target",
                regions=_regions("target"), reference="regions_replaced",
                description="The target with chosen regions (e.g. hair) taken from a reference face."),
        TaskRow("inpainting", identity="target", motion="target",
                regions=_regions("target"), reference="hole_blanked",
                description="The target with a masked hole filled in; pixels outside the hole are kept."),
        TaskRow("motion_editing", identity="target", motion="target",
                regions=_regions("target"), reference="target_image",
                description="The target with user-set pose, gaze or expression."),
        TaskRow("mixture_editing", identity="target", motion="target",
                regions=_regions("target"), reference="regions_replaced",
                description="Any region from any face; start from this row and pick regions."),
    )
}


def validate(row: TaskRow) -> TaskRow:
    """Check a (custom) row; errors name the wrong entry and list what is allowed."""
    for part in ("identity", "motion", "lighting"):
        if getattr(row, part) not in INPUTS:
            raise UnknownNameError(f"task row '{row.name}': {part} comes from {getattr(row, part)!r}; use one of "
                                   f"{INPUTS}")
    if row.texture and row.texture not in INPUTS:
        raise UnknownNameError(f"task row '{row.name}': texture comes from {row.texture!r}; use one of {INPUTS}")
    unknown = sorted(set(row.regions) - set(REGION_NAMES))
    if unknown:
        raise UnknownNameError(f"task row '{row.name}': unknown region(s) {unknown}; regions are "
                               f"{', '.join(REGION_NAMES)}")
    missing = [name for name in REGION_NAMES if name not in row.regions]
    if missing:
        raise MissingInputError(f"task row '{row.name}': no input given for region(s) {missing}")
    bad = {name: source for name, source in row.regions.items() if source not in INPUTS}
    if bad:
        raise UnknownNameError(f"task row '{row.name}': region input(s) {bad} are not among {INPUTS}")
    if row.reference not in REFERENCE_KINDS:
        raise UnknownNameError(f"task row '{row.name}': reference {row.reference!r}; use one of {REFERENCE_KINDS}")
    return row


def custom_row(regions: dict[str, str], identity: str = "target", motion: str = "target",
               lighting: str = "target", texture: str = "", name: str = "custom") -> TaskRow:
    """A mixture-editing row: `regions` names the input of each region it changes; the rest
    stay the target's. I_R replaces the regions that come from another face."""
    row = TaskRow(name, identity=identity, motion=motion, regions={**_regions("target"), **regions},
                  reference="regions_replaced", lighting=lighting, texture=texture,
                  swapped_regions=tuple(name for name, source in regions.items() if source != "target"))
    return validate(row)


def task_row(name: str) -> TaskRow:
    if name not in TASKS:
        raise UnknownNameError(f"unknown task {name!r}; tasks are {', '.join(TASKS)}")
    return TASKS[name]


def parse_picks(text: str) -> dict[str, str]:
    """'hair,eyebrows' (regions from the reference) or 'eyes=source,hair=reference' -> region: input."""
    pairs = [item.split("=", 1) if "=" in item else (item, "reference") for item in text.split(",") if item.strip()]
    return {name.strip(): source.strip() for name, source in pairs}


def row_for(task: str, picks: dict[str, str] | None = None, identity: str = "target") -> TaskRow:
    """The row of `task`, with the user's picks: the regions attribute editing takes from the
    reference, or a mixture row's region inputs (and its identity input)."""
    picks = picks or {}
    if task == "mixture_editing":
        return custom_row(picks, identity=identity, name="mixture_editing")
    row = task_row(task)
    return row.with_regions(list(picks), "reference") if picks else row


@dataclass(frozen=True)
class TaskChoice:
    """A task and the user's picks, chosen once for every stage that builds the task's row
    (the representation and I_R must come from the same row)."""

    task: str
    picks: dict[str, str]

    @classmethod
    def parse(cls, task: str, picks: str) -> TaskChoice:
        """From the picks text ('hair,eyebrows' or 'eyes=source,hair=reference'); a wrong task,
        region or input is named here, before any face is processed."""
        choice = cls(task, parse_picks(picks))
        choice.row()
        return choice

    def row(self, has_source: bool = False) -> TaskRow:
        """The row; a mixture takes its identity from the source face when one is given."""
        return row_for(self.task, self.picks, identity="source" if has_source else "target")

