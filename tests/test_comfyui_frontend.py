"""Tier 2: the published UI workflows in the real ComfyUI frontend, in headless Chromium.

A ComfyUI with this pack (and its web extension, when the pack declares one) serves the
frontend; each workflows/<task>.json goes through the frontend's own loader,
app.loadGraphData, as when an artist drops the file on the canvas. Every node type must
be registered, no missing-nodes dialog may appear, the loaded graph must queue as its API
twin, and the browser console must show no error from this pack. The node-spec snapshot
that tier 1 checks the workflows against must hold what the graphs depend on in the live
/object_info (and this pack's own specs exactly).
"""

import json
import shutil
import sys
import time
from pathlib import Path

import pytest
from comfy_server import COMFYUI_PATH, REPO, SKIP_REASON
from conftest import PACK_NODE_IDS
from test_workflows import WORKFLOW_NAMES, graph_contract

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = shutil.which("chromedriver")
WORKFLOWS = REPO / "workflows"
PACK_URL = "/extensions/ComfyUI-FaceX/"

pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.skipif(not COMFYUI_PATH, reason=SKIP_REASON),
    pytest.mark.skipif(not (CHROMIUM.is_file() and CHROMEDRIVER),
                       reason="tier 2 frontend: needs /usr/bin/chromium and chromedriver "
                              "(Debian: apt-get install chromium chromium-driver)"),
]


@pytest.fixture(scope="module")
def builder():
    """scripts/build_workflows.py, which knows how to start the frontend in Chromium."""
    pytest.importorskip("selenium", reason="tier 2 frontend: pip install selenium (requirements-dev.txt)")
    sys.path.insert(0, str(REPO / "scripts"))
    import build_workflows

    return build_workflows


@pytest.fixture(scope="module")
def server(comfy_server, builder):
    """The session's ComfyUI, with frontend settings that keep dialogs off the canvas."""
    builder.write_settings(comfy_server.base)
    return comfy_server


@pytest.fixture(scope="module")
def browser(server, builder):
    with builder.frontend(server.url) as driver:
        driver.startup_log = driver.get_log("browser")
        yield driver


def pack_errors(entries: list[dict]) -> list[str]:
    """SEVERE console entries from this pack's web files or about FaceX."""
    return [e["message"] for e in entries
            if e["level"] == "SEVERE" and (PACK_URL in e["message"] or "facex" in e["message"].lower())]


def load(browser, workflow: dict) -> dict:
    """Load a UI workflow with app.loadGraphData; what the frontend then shows and would queue."""
    browser.get_log("browser")  # drop older entries
    browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "app.loadGraphData(arguments[0]).then(() => done(true), e => done(String(e)));", workflow)
    time.sleep(0.5)  # dialogs open on the next frames
    state = json.loads(browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        app.graphToPrompt().catch(e => ({output: String(e)})).then(p => done(JSON.stringify({
          unregistered: app.graph.nodes.map(n => n.type).filter(t => !LiteGraph.registered_node_types[t]),
          node_count: app.graph.nodes.length,
          dialogs: [...document.querySelectorAll('.p-dialog')].map(d => d.innerText.slice(0, 300)),
          prompt: p.output,
        })));"""))
    state["console"] = browser.get_log("browser")
    return state


def close_dialogs(browser) -> None:
    browser.execute_script("document.querySelectorAll('.p-dialog .p-dialog-close-button').forEach(b => b.click())")


def test_node_specs_snapshot_holds_what_the_graphs_depend_on(server, builder):
    """This pack's node specs equal the live ones exactly (tier 1 checks the workflows against
    them); a core node is compared only on what the graphs depend on, so a ComfyUI that adds
    an output to SaveImage still passes while one that retypes a used input does not."""
    snapshot = json.loads((WORKFLOWS / "node_specs.json").read_text())
    prompts = [json.loads((WORKFLOWS / "api" / f"{task}.json").read_text()) for task in WORKFLOW_NAMES]
    live = builder.node_specs(server.get("/object_info"), prompts, server.base)
    assert sorted(live) == sorted(snapshot)
    for node_type in sorted(PACK_NODE_IDS & set(snapshot)):
        assert live[node_type] == snapshot[node_type], f"{node_type}: node_specs.json is stale; run " \
                                                       f"scripts/build_workflows.py"
    assert graph_contract(live, prompts) == graph_contract(snapshot, prompts)
    newer = json.loads(json.dumps(live))
    newer["SaveImage"]["output"] = ["IMAGE"]
    newer["SaveImage"]["input"].setdefault("optional", {})["caption"] = ["STRING", {}]
    assert graph_contract(newer, prompts) == graph_contract(snapshot, prompts)
    newer["KSampler"]["input"]["required"]["cfg"][0] = "INT"
    assert graph_contract(newer, prompts) != graph_contract(snapshot, prompts)


def test_frontend_starts_without_pack_errors(browser):
    """Whatever web files the pack declares (none is fine) log no error while the frontend starts."""
    assert not pack_errors(browser.startup_log)


@pytest.mark.parametrize("task", WORKFLOW_NAMES)
def test_workflow_loads_in_the_frontend(browser, task):
    workflow = json.loads((WORKFLOWS / f"{task}.json").read_text())
    state = load(browser, workflow)
    assert state["unregistered"] == []
    assert state["node_count"] == len(workflow["nodes"])
    assert state["dialogs"] == [], state["dialogs"]
    assert state["prompt"] == json.loads((WORKFLOWS / "api" / f"{task}.json").read_text())
    assert not pack_errors(state["console"])


def test_the_checks_can_fail(browser):
    """An unknown node type and a FaceX console error are caught by the checks above."""
    workflow = json.loads((WORKFLOWS / "face_swap.json").read_text())
    workflow["nodes"][0]["type"] = "FaceXNoSuchNode"
    state = load(browser, workflow)
    close_dialogs(browser)
    assert state["unregistered"] == ["FaceXNoSuchNode"]
    assert any("FaceXNoSuchNode" in text for text in state["dialogs"])
    browser.execute_script("console.error('FaceX: a planted error')")
    assert pack_errors(browser.get_log("browser"))
