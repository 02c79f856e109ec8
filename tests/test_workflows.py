"""The published workflows (workflows/: the eight FaceX tasks, the FaceXFormer analysis and the Face0 portrait),
checked offline against the node-spec snapshot.

scripts/build_workflows.py makes them through the real ComfyUI frontend: the UI workflow
(what an artist drags into ComfyUI), its API twin (what the frontend queues) and
workflows/node_specs.json (the /object_info entries of the node types used; tier 2 checks
it against a live ComfyUI). Here, without ComfyUI: every link is well formed and typed,
the UI workflow turns into exactly its API twin, and the files name the published models.
"""

import json
from pathlib import Path

import pytest
from conftest import PACK_NODE_IDS

from facex_core.fors.tasks import TASKS
from scripts.workflow_graphs import GRAPHS

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
PUBLISHED_MODELS = {"CheckpointLoaderSimple": ("ckpt_name", "v1-5-pruned-emaonly.safetensors"),
                    "FaceXLoader": ("facex_file", "facex_sd15.safetensors"),
                    "FaceXFormerAnalyze": ("facexformer", "facexformer.pt"),
                    "Face0Loader": ("face0_file", "face0_sd15.safetensors")}
WORKFLOW_NAMES = tuple(GRAPHS)  # the task graphs, then face_analysis and face0_portrait
ANY = "*"  # an input that takes every type (PreviewAny's)
# Inputs the frontend's own extensions add to a node's prompt beyond its /object_info entry
# (PreviewAny's text box); the server ignores them.
FRONTEND_INPUTS = {"PreviewAny": {"preview": ""}}


@pytest.fixture(scope="module")
def specs() -> dict:
    return json.loads((WORKFLOWS / "node_specs.json").read_text())


def ui_workflow(task: str) -> dict:
    return json.loads((WORKFLOWS / f"{task}.json").read_text())


def api_workflow(task: str) -> dict:
    return json.loads((WORKFLOWS / "api" / f"{task}.json").read_text())


def declared_inputs(spec: dict) -> dict[str, list]:
    """name -> [type or option list, options] in the node's input order (required, then optional)."""
    order = spec.get("input_order", {})
    groups = spec["input"]
    return {name: groups[group][name] for group in ("required", "optional") for name in order.get(group, [])}


def input_type(input_spec: list) -> str:
    return "COMBO" if isinstance(input_spec[0], list) else input_spec[0]


def input_options(input_spec: list) -> dict:
    return input_spec[1] if len(input_spec) > 1 and isinstance(input_spec[1], dict) else {}


def combo_choices(input_spec: list) -> list:
    return input_spec[0] if isinstance(input_spec[0], list) else input_options(input_spec).get("options", [])


def graph_contract(specs: dict, prompts: list[dict]) -> dict:
    """What API graphs depend on in each node type's /object_info entry: the type, group and
    validity of every input they set, the required inputs they leave unset, and the type of
    every output they link. A core node that gains an output or an optional input, or offers
    more combo options, keeps the same contract; one that renames, retypes or newly requires
    an input the graphs use does not."""
    contract: dict[str, dict] = {}
    for prompt in prompts:
        for node in prompt.values():
            spec = specs.get(node["class_type"])
            entry = contract.setdefault(node["class_type"], {"inputs": {}, "unset_required": [], "outputs": {}})
            if spec is None:
                entry["missing"] = True
                continue
            declared = declared_inputs(spec)
            required = spec["input"].get("required", {})
            for name, value in node["inputs"].items():
                if name in FRONTEND_INPUTS.get(node["class_type"], {}):
                    continue
                if isinstance(value, list):
                    origin = prompt[value[0]]["class_type"]
                    origin_outputs = specs.get(origin, {}).get("output", [])
                    contract.setdefault(origin, {"inputs": {}, "unset_required": [], "outputs": {}})["outputs"][
                        str(value[1])] = origin_outputs[value[1]] if value[1] < len(origin_outputs) else None
                if name not in declared:
                    entry["inputs"][name] = "absent"
                    continue
                group = "required" if name in required else "optional"
                valid = isinstance(value, list) or accepts(declared[name], value)
                entry["inputs"][name] = [input_type(declared[name]), group, valid]
            entry["unset_required"] = sorted(set(entry["unset_required"]) | (set(required) - set(node["inputs"])))
    return contract


def accepts(input_spec: list, value) -> bool:
    """Whether a widget input takes this value (a combo offers it, a number is in range)."""
    kind = input_type(input_spec)
    if kind == "COMBO":
        return value in combo_choices(input_spec)
    options = input_options(input_spec)
    if kind in ("INT", "FLOAT"):
        return options.get("min", value) <= value <= options.get("max", value)
    return True


def graph_nodes(workflow: dict) -> list[dict]:
    return [node for node in workflow["nodes"] if node["type"] != "Note"]


def widget_values(node: dict, spec: dict) -> dict:
    """Map a UI node's widgets_values onto its widget inputs.

    The values follow the node's widget slots (UI inputs with a "widget" entry), in order.
    A slot the node spec does not declare is a frontend-only widget (LoadImage's upload
    button): its value is dropped. An input whose spec asks for control_after_generate (a
    seed) is followed by the frontend's extra control value. Values left after the last
    slot belong to widgets without a slot and must be empty.
    """
    declared = declared_inputs(spec)
    values = list(node.get("widgets_values", []))
    mapped = {}
    for slot in node["inputs"]:
        if "widget" not in slot:
            continue
        value = values.pop(0)
        if slot["name"] not in declared:
            continue
        mapped[slot["name"]] = value
        if input_options(declared[slot["name"]]).get("control_after_generate"):
            values.pop(0)
    assert not values, f"node {node['id']}: widget values left over: {values}"
    return mapped


def to_api(workflow: dict, specs: dict) -> dict:
    """The API prompt of a UI workflow, as the frontend's graphToPrompt builds it."""
    links = {link[0]: link for link in workflow["links"]}
    prompt = {}
    for node in graph_nodes(workflow):
        spec = specs[node["type"]]
        widgets = widget_values(node, spec)
        inputs = {}
        for slot in node["inputs"]:
            if slot.get("link") is not None:
                _, origin, origin_slot, *_ = links[slot["link"]]
                inputs[slot["name"]] = [str(origin), origin_slot]
            elif slot["name"] in widgets:
                inputs[slot["name"]] = widgets[slot["name"]]
        inputs = FRONTEND_INPUTS.get(node["type"], {}) | inputs
        prompt[str(node["id"])] = {"inputs": inputs, "class_type": node["type"],
                                   "_meta": {"title": node.get("title", spec["display_name"])}}
    return prompt


def test_all_eight_tasks_the_analysis_and_face0_are_published():
    assert len(TASKS) == 8 and (*TASKS, "face_analysis", "face0_portrait") == WORKFLOW_NAMES
    assert {p.stem for p in WORKFLOWS.glob("*.json")} == set(WORKFLOW_NAMES) | {"node_specs"}
    assert {p.stem for p in (WORKFLOWS / "api").glob("*.json")} == set(WORKFLOW_NAMES)


@pytest.mark.parametrize("task", WORKFLOW_NAMES)
def test_one_note_with_text_and_only_known_node_types(task, specs):
    workflow = ui_workflow(task)
    notes = [node for node in workflow["nodes"] if node["type"] == "Note"]
    assert len(notes) == 1
    assert notes[0]["widgets_values"][0].strip()
    unknown = {node["type"] for node in graph_nodes(workflow)} - set(specs)
    assert not unknown, f"node types missing from node_specs.json: {unknown}"


@pytest.mark.parametrize("task", WORKFLOW_NAMES)
def test_links_join_existing_slots_of_matching_types(task, specs):
    workflow = ui_workflow(task)
    nodes = {node["id"]: node for node in workflow["nodes"]}
    links = {link[0]: link for link in workflow["links"]}
    assert len(links) == len(workflow["links"])
    for link_id, origin, origin_slot, target, target_slot, link_type in workflow["links"]:
        assert origin in nodes and target in nodes, f"link {link_id} joins missing nodes"
        output = nodes[origin]["outputs"][origin_slot]
        slot = nodes[target]["inputs"][target_slot]
        assert link_id in output["links"] and slot["link"] == link_id
        output_type = specs[nodes[origin]["type"]]["output"][origin_slot]
        declared_type = input_type(declared_inputs(specs[nodes[target]["type"]])[slot["name"]])
        assert output_type == output["type"] and slot["type"] == declared_type, f"link {link_id}"
        # a link into an input of any type is typed like that input
        assert (link_type, declared_type) in {(output_type, output_type), (ANY, ANY)}, f"link {link_id}"
    for node in workflow["nodes"]:
        assert all(slot["link"] in links for slot in node.get("inputs", []) if slot.get("link") is not None)
        assert all(link in links for output in node.get("outputs", []) for link in output.get("links") or [])


@pytest.mark.parametrize("task", WORKFLOW_NAMES)
def test_widget_slots_follow_the_node_specs(task, specs):
    for node in graph_nodes(ui_workflow(task)):
        declared = declared_inputs(specs[node["type"]])
        widgets = [name for name, spec in declared.items() if input_type(spec) in WIDGET_TYPES]
        slots = [slot["name"] for slot in node["inputs"] if "widget" in slot and slot["name"] in declared]
        assert slots == widgets, f"node {node['id']} ({node['type']})"


@pytest.mark.parametrize("task", WORKFLOW_NAMES)
def test_ui_workflow_converts_to_its_api_twin(task, specs):
    assert to_api(ui_workflow(task), specs) == api_workflow(task)


@pytest.mark.parametrize("task", WORKFLOW_NAMES)
def test_combo_values_are_offered_and_models_are_the_published_ones(task, specs):
    prompt = api_workflow(task)
    for node_id, node in prompt.items():
        declared = declared_inputs(specs[node["class_type"]])
        for name, value in node["inputs"].items():
            if name in FRONTEND_INPUTS.get(node["class_type"], {}):
                continue
            if input_type(declared[name]) == "COMBO" and not isinstance(value, list):
                assert value in combo_choices(declared[name]), f"node {node_id}: {name}={value!r}"
    for class_type, (name, published) in PUBLISHED_MODELS.items():
        values = {node["inputs"][name] for node in prompt.values() if node["class_type"] == class_type}
        assert values <= {published}


@pytest.mark.parametrize("task", list(TASKS))
def test_facex_nodes_are_this_packs(task):
    used = {node["class_type"] for node in api_workflow(task).values()}
    facex = {t for t in used if t.lower().startswith("facex")}
    assert facex <= PACK_NODE_IDS, facex - PACK_NODE_IDS
    assert {"FaceXLoader", "FaceXFRCPatcher", "FaceXSamplerHook"} <= facex


NODE_TITLE = 30  # LiteGraph draws a node's title bar above its pos


def stage_of(stages: dict, node: dict) -> str:
    (stage,) = [stage for stage, types in stages.items() if node["type"] in types]
    return stage


def inside(box: list[float], outer: list[float]) -> bool:
    x, y, w, h = box
    ox, oy, ow, oh = outer
    return ox <= x and oy <= y and x + w <= ox + ow and y + h <= oy + oh


def overlap(a: list[float], b: list[float]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


@pytest.mark.parametrize("task", WORKFLOW_NAMES)
def test_the_graph_reads_as_the_pipeline_in_stage_groups(task):
    """Each node sits in the group of its stage, groups do not overlap, and every wire runs
    from a stage to itself or a later one (the graph's stage order), never back."""
    workflow, stages = ui_workflow(task), GRAPHS[task]().stages
    nodes = {node["id"]: node for node in graph_nodes(workflow)}
    groups = {group["title"]: group["bounding"] for group in workflow["groups"]}
    assert set(groups) == {stage_of(stages, node) for node in nodes.values()}
    for node in nodes.values():
        box = [node["pos"][0], node["pos"][1] - NODE_TITLE, node["size"][0], node["size"][1] + NODE_TITLE]
        assert inside(box, groups[stage_of(stages, node)]), (node["id"], node["type"])
    boxes = list(groups.values())
    assert not any(overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    order = list(stages)
    for _, origin, _, target, _, _ in workflow["links"]:
        assert order.index(stage_of(stages, nodes[origin])) <= order.index(stage_of(stages, nodes[target])), \
            (origin, target)


def test_the_graphs_contract_holds_in_the_snapshot(specs):
    """Every input the graphs set exists with a valid value, no required input is left unset
    and every linked output exists: what the tier-2 snapshot test compares across ComfyUI
    versions."""
    contract = graph_contract(specs, [api_workflow(task) for task in WORKFLOW_NAMES])
    for node_type, entry in contract.items():
        assert "missing" not in entry and entry["unset_required"] == [], node_type
        assert all(value != "absent" and value[2] for value in entry["inputs"].values()), node_type
        assert None not in entry["outputs"].values(), node_type


def test_the_analysis_needs_only_facexformer_and_the_detector():
    used = {node["class_type"]: node["inputs"] for node in api_workflow("face_analysis").values()}
    assert {t for t in used if t.lower().startswith("facex")} == {"FaceXFormerAnalyze"}
    analyze = used["FaceXFormerAnalyze"]
    assert (analyze["facexformer"], analyze["detector"]) == ("facexformer.pt", "models/buffalo_l/det_10g.onnx")
