"""Build the eight FaceX workflows (UI and API) through the real ComfyUI frontend.

Why a browser: a UI workflow is the frontend's own format (node sizes, widget order,
frontend-only widget values such as the image-upload button or a seed's "control after
generate", link records, format version). Written by hand it drifts from what ComfyUI
really loads and saves; made by the frontend it cannot. So this script starts ComfyUI with
this pack (tests/comfy_server.py) on a throwaway base directory holding random-weight
models and the input images (tests/comfy_models.py), opens the real frontend in headless
Chromium and, for each graph of scripts/workflow_graphs.py:

- loads the API graph with the frontend's own importer, `app.loadApiJson(graph, name)`;
- adds a Note that tells an artist what to load where and which model files go where;
- lays the nodes out in titled groups, one per stage (STAGES), the pipeline's stages left
  to right under a band holding the note and the models;
- writes `app.graph.serialize()` to workflows/<task>.json, the `output` of
  `app.graphToPrompt()` to workflows/api/<task>.json and a screenshot of the fitted
  canvas to docs/workflows/<task>.png.

It also writes workflows/node_specs.json, the /object_info entry of every node type the
workflows use, so tier-1 tests can check links and widget values without ComfyUI. Combo
options that name files of the throwaway base directory (its checkpoint, images, model
files) are replaced by the files the workflows name, so the snapshot reads as ComfyUI
would report it on a machine holding exactly the published files.

Run from the repository root, in an environment with selenium and the test requirements:
    COMFYUI_PATH=... COMFYUI_PYTHON=... python scripts/build_workflows.py
Chromium and chromedriver come from the system (Debian: apt-get install chromium chromium-driver).
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for folder in (REPO, REPO / "scripts", REPO / "tests"):  # facex_core, the graphs, the tier-2 helpers
    if str(folder) not in sys.path:
        sys.path.append(str(folder))

from PIL import Image  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from workflow_graphs import CHECKPOINT, FACEX, GRAPHS, TOP_BAND, Graph  # noqa: E402

WORKFLOWS = REPO / "workflows"
SCREENSHOTS = REPO / "docs" / "workflows"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Headless, and nothing that reaches beyond the loopback server (Chromium otherwise calls
# Google services at start and the frontend asks api.comfy.org for release notes).
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
# No first-run template dialog, no minimap or canvas overlays in the screenshots, and full
# node detail at any zoom (text, widgets and the note stay drawn when zoomed out).
SETTINGS = {"Comfy.TutorialCompleted": True, "Comfy.Minimap.Visible": False, "Comfy.Graph.CanvasInfo": False,
            "Comfy.Graph.CanvasMenu": False, "LiteGraph.Canvas.MinFontSizeForLOD": 0}

MODELS = (f"Model files: an SD1.5 checkpoint ({CHECKPOINT} or any SD1.5 fine-tune) in models/checkpoints, the "
          f"FaceX weights {FACEX} in models/facex, and the face extractors (insightface buffalo_l, face parsing, "
          "3DMM, gaze, CLIP) in the folders listed in the README's Model files table; a FaceX Doctor node says "
          "what is missing.")
NOTES = {
    "face_swap": "Face swap: puts the face of one person onto another, keeping the target's pose, expression, "
                 "hair, lighting and background. Load the face you want in 'source image' and the photo to change "
                 "in 'target image'. Only the face area of the target is redrawn and pasted back into the photo.",
    "head_swap": "Head swap: replaces the whole head (face, hair and ears) of the person in the target photo with "
                 "the source person's head, on the target's body and background. Load the new head in 'source "
                 "image' and the photo to change in 'target image'. Pose and expression follow the target.",
    "reenactment": "Reenactment: the source person takes the pose, expression and gaze of the target face. Load "
                   "the person to move in 'source image' and the face to imitate in 'target image'. Identity, "
                   "hair, lighting and background stay the source's, and the result is pasted into the source "
                   "photo.",
    "animation": "Animation: the source person is driven by a sequence of frames, one generated face per frame. "
                 "Load the person in 'source image' and the driving frames in 'driving frame 1', 2 and 3 (add "
                 "more with further Load Image and Batch Images nodes, or feed a video's frames instead). For a "
                 "style, swap the checkpoint for any SD1.5 community checkpoint or insert a LoraLoaderModelOnly "
                 "between Load Checkpoint and the FRC patcher.",
    "attribute_editing": "Attribute editing: takes chosen regions of a reference face, here the hair, and gives "
                         "them to the target person; everything else stays. Load the photo to change in 'target "
                         "image' and the face with the wanted hair in 'reference image'. To pick other regions, "
                         "use 'pick regions…' on the task node or write them in its picks field, e.g. "
                         "'hair,eyebrows' (eyebrows, eyes, nose, lips, ears, skin, hair).",
    "inpainting": "Inpainting: fills a hole in the target face so that it fits the rest of the face. Load the "
                  "photo in 'target image' and, in 'the hole (white = fill)', a mask the size of the photo that is "
                  "white where to fill and black elsewhere. Everything outside the hole is kept exactly.",
    "motion_editing": "Motion editing: turns the head, moves the eyes or changes the strength of the expression of "
                      "the person in 'target image'. Set the angles in degrees on 'turn the head, look aside': "
                      "each angle has its own mode: offset adds it to the current pose, set replaces it, keep "
                      "leaves it as measured; "
                      "change_gaze with gaze_yaw and gaze_pitch moves the eyes, and expression_scale 0 makes the "
                      "face neutral.",
    "mixture_editing": "Mixture editing: builds one face from parts of several, here the eyes and nose of the source "
                       "and the hair of the reference on the target. Load the three photos in 'source image', "
                       "'reference image' and 'target image'. Choose the parts with 'pick regions…' on "
                       "the task node or in its picks field as region=input pairs, e.g. "
                       "'eyes=source,hair=reference'.",
    "face_analysis": "Face analysis with FaceXFormer: for every face of the photo, its parsing (11 classes: skin, "
                     "brows, eyes, nose, lips, inner mouth, hair and background; no ears, glasses or hat), 68 "
                     "landmarks, head pose, 40 attributes, age, gender and race, and which landmarks are occluded. "
                     "Load a photo in 'photo'; pick the mask on 'analyse every face' (the whole face, a region or "
                     "one class). The report shows the readings as text; the json output has every number.",
    "face0_portrait": "Face0 portrait: a picture of the person in 'face photo' made from the prompt, with no "
                      "training on that person. Face0 Apply writes the face into the prompt's last 3 positions; "
                      "Face0 Guidance weighs the prompt with the face (combined_weight, plain CFG's scale), the "
                      "prompt alone (text_weight) and the face alone (face_weight) against the negative prompt. "
                      "Edit the prompt; raise face_weight for more likeness, text_weight for more of the prompt.",
}
MODEL_NOTES = {  # a workflow that needs other files than the FaceX tasks
    "face_analysis": "Model files: FaceXFormer's published model.pt saved as models/facex_extractors/facexformer.pt "
                     "(python -m facex_core.models download facexformer/model) and insightface buffalo_l's "
                     "det_10g.onnx in models/insightface/models/buffalo_l.",
    "face0_portrait": f"Model files: an SD1.5 checkpoint ({CHECKPOINT} or any SD1.5 fine-tune) in models/checkpoints, "
                      "a Face0 file made with the Face0 training recipe (face0_sd15.safetensors) in models/face0, "
                      "and insightface buffalo_l (det_10g.onnx, w600k_r50.onnx) in "
                      "models/insightface/models/buffalo_l.",
}
IMAGE_LOADERS = {"LoadImage", "LoadImageMask"}
NOTE_SIZE = (460, 250)
TITLE_HEIGHT = 30  # LiteGraph draws a node's title above its pos
COLUMN_GAP, ROW_GAP = 70, 30
# Group titles large enough to read in the README's scaled-down pictures; LiteGraph's title
# bar is 1.4 font sizes high.
GROUP_FONT = 48
GROUP_TITLE, GROUP_PAD, GROUP_GAP = 70, 20, 60  # a group's title bar, its inner margin, the space between groups
MAX_SHOT_WIDTH, SHOT_SCALE = 3000, 0.8
MAX_PNG_BYTES = 300_000


def prepare_base(base: Path) -> None:
    """Models and input images (tests/comfy_models.py) and frontend settings for a throwaway ComfyUI base."""
    import comfy_models

    comfy_models.populate(base)
    write_settings(base)


def write_settings(base: Path) -> None:
    """Frontend settings that keep dialogs and overlays off the canvas."""
    settings = base / "user" / "default" / "comfy.settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps(SETTINGS))


@contextmanager
def frontend(url: str) -> Iterator[webdriver.Chrome]:
    """Headless Chromium (fresh profile, console log kept) on the ComfyUI frontend, once
    `window.app` has its graph, canvas and node types."""
    with tempfile.TemporaryDirectory(prefix="facex-chromium-") as profile:
        options = Options()
        options.binary_location = str(CHROMIUM)
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1600,1000"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            driver.set_script_timeout(60)
            driver.get(url)
            wait_until(driver, "return !!(window.app && app.graph && app.canvas && window.LiteGraph"
                               " && LiteGraph.registered_node_types['KSampler'])", "the frontend to start")
            yield driver
        finally:
            driver.quit()


def wait_until(driver: webdriver.Chrome, script: str, what: str, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while not driver.execute_script(script):
        if time.time() > deadline:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.2)


def load_api_graph(driver: webdriver.Chrome, graph: dict, name: str) -> None:
    # app.clean() first, as app.loadGraphData does: loadApiJson keeps the previous graph's
    # image previews, keyed by node id, and would show them on the new graph's nodes.
    driver.execute_script("app.clean(); app.loadApiJson(arguments[0], arguments[1])", graph, name)
    # Image loaders grow once their preview has loaded; the layout needs their final size.
    wait_until(driver, "return app.graph.nodes.filter(n => n.widgets?.some(w => w.name === 'upload'))"
                       ".every(n => n.imgs?.length && n.imgs.every(i => i.complete))", "the image previews")


def add_note(driver: webdriver.Chrome, text: str) -> int:
    return driver.execute_script("""
        const note = LiteGraph.createNode('Note');
        note.title = 'How to use this workflow';
        note.widgets[0].value = arguments[0];
        note.size = arguments[1];
        app.graph.add(note);
        return note.id;""", text, list(NOTE_SIZE))


def fit_node_sizes(driver: webdriver.Chrome) -> dict[str, tuple[float, float]]:
    """Sizes after growing each node to its content, as app.loadGraphData does, and wide
    enough for its whole title (loadApiJson sets titles after sizing, and LiteGraph cuts a
    title to the node's width less two title heights)."""
    return {str(n): (w, h) for n, w, h in driver.execute_script("""
        const ctx = document.createElement('canvas').getContext('2d');
        return app.graph.nodes.map(n => {
          ctx.font = n.titleFontStyle;
          const title = ctx.measureText(n.title).width + 2 * LiteGraph.NODE_TITLE_HEIGHT + 10;
          const size = n.computeSize();
          n.setSize([Math.max(n.size[0], size[0], title), Math.max(n.size[1], size[1])]);
          return [n.id, n.size[0], n.size[1]];
        });""")}


def columns(graph: dict) -> dict[str, int]:
    """Column of each node: as late as its consumers allow, except that the images an artist
    loads stay in the first column and outputs (nodes nothing consumes) sit right after
    their inputs."""
    parents = {node: [value[0] for value in spec["inputs"].values() if isinstance(value, list)]
               for node, spec in graph.items()}
    children = {node: [child for child, ps in parents.items() if node in ps] for node in graph}
    earliest: dict[str, int] = {}

    def asap(node: str) -> int:
        if node not in earliest:
            earliest[node] = max((asap(p) + 1 for p in parents[node]), default=0)
        return earliest[node]

    latest: dict[str, int] = {}

    def alap(node: str) -> int:
        if node not in latest:
            pinned = graph[node]["class_type"] in IMAGE_LOADERS
            latest[node] = 0 if pinned else min((alap(c) - 1 for c in children[node]), default=asap(node))
        return latest[node]

    return {node: alap(node) for node in graph}


def stage_of(graph: dict, stages: dict, node: str) -> str:
    class_type = graph[node]["class_type"]
    found = [stage for stage, types in stages.items() if class_type in types]
    if len(found) != 1:
        raise KeyError(f"{class_type} belongs to no stage group (or to several): add it to the graph's stages")
    return found[0]


@dataclass
class Block:
    """One stage's group: its nodes in sub-columns (by depth), placed from an origin."""

    stage: str
    stacks: list[list[str]]
    x: float = 0.0
    y: float = 0.0

    def width(self, sizes: dict[str, tuple[float, float]]) -> float:
        return sum(max(sizes[n][0] for n in stack) for stack in self.stacks) + COLUMN_GAP * (len(self.stacks) - 1)

    def place(self, sizes: dict[str, tuple[float, float]], positions: dict[str, list[float]]) -> None:
        x = self.x + GROUP_PAD
        for stack in self.stacks:
            y = self.y + GROUP_TITLE + GROUP_PAD
            for node in stack:
                positions[node] = [x, y + TITLE_HEIGHT]
                y += TITLE_HEIGHT + sizes[node][1] + ROW_GAP
            x += max(sizes[n][0] for n in stack) + COLUMN_GAP

    def bounds(self, sizes: dict[str, tuple[float, float]], positions: dict[str, list[float]]) -> list[float]:
        """[x, y, width, height] of the group around the placed nodes."""
        nodes = [n for stack in self.stacks for n in stack]
        bottom = max(positions[n][1] + sizes[n][1] for n in nodes)
        return [self.x, self.y, self.width(sizes) + 2 * GROUP_PAD, bottom + GROUP_PAD - self.y]


def blocks_of(graph: dict, stages: dict) -> list[Block]:
    """A block per stage present, its sub-columns the distinct depths of its nodes."""
    depth = columns(graph)
    blocks = []
    for stage in stages:
        nodes = [n for n in graph if stage_of(graph, stages, n) == stage]
        if nodes:
            levels = sorted({depth[n] for n in nodes})
            blocks.append(Block(stage, [[n for n in nodes if depth[n] == level] for level in levels]))
    return blocks


def layout(graph: dict, stages: dict, sizes: dict[str, tuple[float, float]],
           note: str) -> tuple[dict, list[tuple[str, list]]]:
    """Node positions and the stage groups ([title, bounds]): the note and the model loaders
    in a band on top, the pipeline's stages left to right below it, each stage's sub-columns
    sorted by a few barycentre sweeps so that links run mostly straight."""
    blocks = blocks_of(graph, stages)
    top = [b for b in blocks if b.stage in TOP_BAND]
    row = [b for b in blocks if b.stage not in TOP_BAND]
    x = NOTE_SIZE[0] + GROUP_GAP
    for block in top:
        block.x, x = x, x + block.width(sizes) + 2 * GROUP_PAD + GROUP_GAP
    positions: dict[str, list[float]] = {note: [0.0, GROUP_TITLE + GROUP_PAD + TITLE_HEIGHT]}
    for block in top:
        block.place(sizes, positions)
    band = max([NOTE_SIZE[1] + GROUP_TITLE + GROUP_PAD] + [b.bounds(sizes, positions)[3] for b in top])
    x = 0.0
    for block in row:
        block.x, block.y = x, band + GROUP_GAP
        x += block.width(sizes) + 2 * GROUP_PAD + GROUP_GAP
    neighbours: dict[str, list[str]] = {node: [] for node in graph}
    for node, spec in graph.items():
        for value in spec["inputs"].values():
            if isinstance(value, list):
                neighbours[node].append(value[0])
                neighbours[value[0]].append(node)
    for block in row:
        block.place(sizes, positions)
    for _ in range(4):
        for block in blocks:
            for stack in block.stacks:
                stack.sort(key=lambda n: sum(centre(positions[m], sizes[m]) for m in neighbours[n])
                           / max(1, len(neighbours[n])))
            block.place(sizes, positions)
    return positions, [(b.stage, b.bounds(sizes, positions)) for b in blocks]


def centre(pos: list[float], size: tuple[float, float]) -> float:
    return pos[1] + size[1] / 2


def add_groups(driver: webdriver.Chrome, groups: list[tuple[str, list]]) -> None:
    driver.execute_script("""
        for (const [title, bounds] of arguments[0]) {
          const group = new LiteGraph.LGraphGroup(title);
          group.font_size = arguments[1];
          group.pos = [bounds[0], bounds[1]];
          group.size = [bounds[2], bounds[3]];
          app.graph.add(group);
        }
        app.graph.setDirtyCanvas(true, true);""", [[title, bounds] for title, bounds in groups], GROUP_FONT)


def place(driver: webdriver.Chrome, positions: dict[str, list[float]]) -> None:
    driver.execute_script("""
        for (const [id, pos] of Object.entries(arguments[0])) app.graph.getNodeById(+id).pos = pos;
        app.graph.setDirtyCanvas(true, true);""", positions)


def graph_bounds(driver: webdriver.Chrome) -> list[float]:
    """[left, top, width, height] of all nodes, titles included, and groups (from pos and
    size: a node's boundingRect is only brought up to date when the canvas next draws it)."""
    return driver.execute_script("""
        const b = [Infinity, Infinity, -Infinity, -Infinity];
        const boxes = app.graph.nodes.map(n => [n.pos[0], n.pos[1] - LiteGraph.NODE_TITLE_HEIGHT, n.size[0],
                                                n.size[1] + LiteGraph.NODE_TITLE_HEIGHT]);
        for (const g of app.graph.groups ?? app.graph._groups ?? []) {
          boxes.push([g.pos[0], g.pos[1], g.size[0], g.size[1]]);
        }
        for (const [x, y, w, h] of boxes) {
          b[0] = Math.min(b[0], x); b[1] = Math.min(b[1], y);
          b[2] = Math.max(b[2], x + w); b[3] = Math.max(b[3], y + h);
        }
        return [b[0], b[1], b[2] - b[0], b[3] - b[1]];""")


def fit_view(driver: webdriver.Chrome, zoom: float) -> None:
    driver.execute_script("app.canvas.ds.fitToBounds(arguments[0], {zoom: arguments[1]});"
                          "app.canvas.setDirty(true, true);", graph_bounds(driver), zoom)


def screenshot(driver: webdriver.Chrome, path: Path) -> None:
    """The whole graph fitted into a canvas sized so that node text stays readable; the
    browser window is given back its size afterwards."""
    _, _, width, height = graph_bounds(driver)
    normal_width, normal_height, margin_x, margin_y = driver.execute_script(
        "const c = app.canvas.canvas; return [c.width, c.height, innerWidth - c.clientWidth, innerHeight - "
        "c.clientHeight]")
    scale = min(SHOT_SCALE, MAX_SHOT_WIDTH / width)
    shot_width, shot_height = int(width * scale) + 40, int(height * scale) + 40
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": shot_width + margin_x, "height": shot_height + margin_y, "deviceScaleFactor": 1, "mobile": False})
    wait_until(driver, f"return app.canvas.canvas.width === {shot_width} && app.canvas.canvas.height === {shot_height}",
               "the canvas to grow")
    fit_view(driver, 0.98)
    time.sleep(1.0)  # the DOM widgets (note and prompt text) follow the canvas on the next frames
    save_png(Image.open(io.BytesIO(driver.execute_script("return app.canvas.canvas").screenshot_as_png)), path)
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    wait_until(driver,
               f"return app.canvas.canvas.width === {normal_width} && app.canvas.canvas.height === {normal_height}",
               "the canvas to shrink back")


def save_png(image: Image.Image, path: Path) -> None:
    """A palette PNG, shrunk by a quarter at a time until it is under MAX_PNG_BYTES."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = image.convert("RGB")
    while True:
        data = io.BytesIO()
        image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(data, "PNG", optimize=True)
        if data.tell() <= MAX_PNG_BYTES:
            path.write_bytes(data.getvalue())
            return
        image = image.resize((image.width * 3 // 4, image.height * 3 // 4), Image.Resampling.LANCZOS)


def serialized(driver: webdriver.Chrome) -> tuple[dict, dict]:
    """The UI workflow and its API twin, as the frontend itself saves and queues them."""
    workflow = json.loads(driver.execute_script("return JSON.stringify(app.graph.serialize())"))
    prompt = json.loads(driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "app.graphToPrompt().then(p => done(JSON.stringify(p.output)));"))
    return workflow, prompt


def build(driver: webdriver.Chrome, task: str, graph: Graph) -> dict:
    load_api_graph(driver, graph.nodes, task)
    note = str(add_note(driver, f"{NOTES[task]} {MODEL_NOTES.get(task, MODELS)}"))
    positions, groups = layout(graph.nodes, graph.stages, fit_node_sizes(driver), note)
    place(driver, positions)
    add_groups(driver, groups)
    screenshot(driver, SCREENSHOTS / f"{task}.png")
    fit_view(driver, 0.75)  # the view the workflow opens with, as the frontend fits a graph without one
    workflow, prompt = serialized(driver)
    write_json(WORKFLOWS / f"{task}.json", workflow)
    write_json(WORKFLOWS / "api" / f"{task}.json", prompt)
    return prompt


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def base_files(base: Path) -> list[str]:
    """The model files and input images of a base directory, as paths relative to it."""
    return [p.relative_to(base).as_posix() for folder in ("models", "input") for p in (base / folder).rglob("*")
            if p.is_file()]


def node_specs(object_info: dict, prompts: list[dict], base: Path) -> dict:
    """The /object_info entries of the node types in `prompts`, with combo options that name
    files of `base` replaced by the values the prompts give that input (see the module doc)."""
    files = base_files(base)
    used: dict[tuple[str, str], set] = {}
    for prompt in prompts:
        for node in prompt.values():
            for name, value in node["inputs"].items():
                if not isinstance(value, list):
                    used.setdefault((node["class_type"], name), set()).add(value)
    specs = {}
    for node_type in sorted({node["class_type"] for prompt in prompts for node in prompt.values()}):
        spec = json.loads(json.dumps(object_info[node_type]))
        for group in spec["input"].values():
            for name, input_spec in group.items():
                if isinstance(input_spec, list):
                    published_options(input_spec, sorted(used.get((node_type, name), ())), files)
        specs[node_type] = spec
    return specs


def published_options(input_spec: list, values: list, files: list[str]) -> None:
    """Rewrite the options of a file combo in place: `values` first, then the options that
    are not files of the base directory. A combo is [options, {...}] (core nodes) or
    ["COMBO", {"options": [...], ...}] (V3 nodes)."""
    if isinstance(input_spec[0], list):
        holder, key = input_spec, 0
    elif input_spec[0] == "COMBO" and len(input_spec) > 1:
        holder, key = input_spec[1], "options"
    else:
        return
    options = holder[key]
    if any(is_file(option, files) for option in options):
        holder[key] = values + [option for option in options if not is_file(option, files) and option not in values]


def is_file(option, files: list[str]) -> bool:
    return isinstance(option, str) and any(f.endswith("/" + option) for f in files)


def main() -> None:
    from comfy_server import ComfyServer

    with tempfile.TemporaryDirectory(prefix="facex-workflows-") as tmp:
        base = Path(tmp)
        prepare_base(base)
        server = ComfyServer(base).start()
        try:
            with frontend(server.url) as driver:
                prompts = []
                for task, make in GRAPHS.items():
                    prompts.append(build(driver, task, make()))
                    print(f"{task}: workflows/{task}.json, workflows/api/{task}.json, docs/workflows/{task}.png")
            write_json(WORKFLOWS / "node_specs.json", node_specs(server.get("/object_info"), prompts, base))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
