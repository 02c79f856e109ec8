"""The frontend extension: the data it repeats from facex_core stays equal, and it keeps to
the rules for extensions (no remote requests, no eval)."""

import re
from pathlib import Path

from facex_core.ford.regions import REGION_NAMES
from facex_core.fors.tasks import TASKS, parse_picks, row_for

SCRIPT = (Path(__file__).resolve().parents[1] / "web" / "facex.js").read_text()


def js_list(name: str) -> list[str]:
    body = re.search(rf"const {name} = \[(.*?)\];", SCRIPT, re.S).group(1)
    return re.findall(r'"([^"]+)"', body)


def test_the_region_list_is_the_libraries():
    assert tuple(js_list("REGIONS")) == REGION_NAMES


def test_pickers_exist_for_real_tasks_and_their_presets_make_valid_rows():
    pickers = re.search(r"const PICKERS = \{(.*?)\n\};", SCRIPT, re.S).group(1)
    found = re.findall(r"(\w+): \{ kind: \"\w+\", preset: \{([^}]*)\} \}", pickers)
    assert {task for task, _ in found} == {"attribute_editing", "mixture_editing"}
    for task, preset in found:
        assert task in TASKS
        picks = {name: source for name, source in re.findall(r"(\w+): \"(\w+)\"", preset)}
        text = ",".join(f"{name}={source}" for name, source in picks.items())
        row = row_for(task, parse_picks(text), identity="source")
        assert all(row.regions[name] == source for name, source in picks.items())


def test_no_remote_requests_and_no_eval():
    for forbidden in ("fetch(", "XMLHttpRequest", "eval(", "new Function", "http://", "https://", "import(\"http"):
        assert forbidden not in SCRIPT
