"""The Representation Assembler: the FaceX input built part by part from a task row.

Inputs are broadcast: one source face can drive every frame of a target sequence
(animation), and one target can receive many sources.
"""

from __future__ import annotations

import torch

from ..errors import MissingInputError
from ..ford.regions import REGION_NAMES
from .representation import FaceRepresentation, batch_size
from .tasks import TaskRow


def assemble(
    row: TaskRow,
    source: FaceRepresentation | None = None,
    target: FaceRepresentation | None = None,
    reference: FaceRepresentation | None = None,
) -> FaceRepresentation:
    """Pick every part of the representation from the input the row names."""
    given = {"source": source, "target": target, "reference": reference}
    missing = sorted(name for name in row.inputs() if given[name] is None)
    if missing:
        raise MissingInputError(f"The {row.name} task needs the {' and '.join(missing)} representation(s); connect "
                                f"them.")
    used = {name: rep for name, rep in given.items() if rep is not None and name in row.inputs()}
    size = batch_size(*((name, len(rep)) for name, rep in used.items()))
    faces = {name: rep.expand(size, name) for name, rep in used.items()}
    order = [row.regions[name] for name in REGION_NAMES]
    regions = torch.stack([faces[source].regions[:, index] for index, source in enumerate(order)], 1)
    present = torch.stack([faces[source].present[:, index] for index, source in enumerate(order)], 1)
    motion = faces[row.motion]
    return FaceRepresentation(
        identity=faces[row.identity].identity,
        regions=regions,
        present=present,
        expression=motion.expression,
        pose=motion.pose,
        gaze=motion.gaze,
        texture=faces[row.texture_input].texture,
        lighting=faces[row.lighting].lighting,
    )
