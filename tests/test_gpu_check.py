"""benchmarks/gpu_check.sh --dry-run: the GPU check script and every benchmark it runs still
work (CPU, tiny networks), so the script cannot rot before a GPU is lent."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import require_faces

ROOT = Path(__file__).resolve().parents[1]
# every section the script writes, with the header of its table
TABLES = {
    "FRC overhead per UNet step": "| image | UNet step, median (s) | with FRC, median (s) | ratio of medians |",
    "FORD extractors per face": "| step | ms per face, batch 1 |",
    "Training step": "| image | s / step | samples / s | peak memory (GiB) | trainable parameters |",
    "Training step, larger image": "| image | s / step | samples / s |",
    "Training step, CLIP tokens stored": "| image | s / step | samples / s |",
    "Training step, eager attention": "| image | s / step | samples / s |",
    "FaceXFormer analysis per face": "| faces per call | ms per face | faces / s | network alone, faces / s |",
    "Paste-back of a long video": "| frames | frame size | seconds | ms per frame |",
    "edit end to end": "| task | steps | target image | first run, end to end (s) |",
}
NUMBER = re.compile(r"^(-?[\d,]+(\.\d+)?(e[+-]\d+)?( h \([\d,.]+ days\)|M)?|\d+x\d+)$")


def test_the_dry_run_writes_every_table_with_numbers(tmp_path):
    require_faces()
    out = tmp_path / "gpu_tables.md"
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run", "--out", str(out)],
                            cwd=ROOT, env=os.environ | {"PYTHON": sys.executable}, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    sections = {part.split(" (`")[0]: part for part in out.read_text().split("\n## ")[1:]}
    assert set(TABLES) <= set(sections)
    for title, header in TABLES.items():
        lines = sections[title].splitlines()
        assert any(line.startswith("device: CPU") for line in lines), title
        assert any(line.startswith(header) for line in lines), (title, lines)
        rows = [line for line in lines if line.startswith("|") and not line.startswith(("|---", header[:8]))]
        assert rows, title
        for row in rows:
            cells = [cell.strip() for cell in row.strip("|").split("|")][1:]  # the first cell names the row
            assert all(NUMBER.match(cell) or cell == "not run" for cell in cells), (title, row)
    targets = out.read_text().split("## Targets")[1]
    assert "generalist schedule (20k x 32) on one device" in targets and "ratio of medians" in targets


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU the check would run in full")
def test_without_a_gpu_the_check_stops_at_once_and_says_why(tmp_path):
    out = tmp_path / "gpu_tables.md"
    result = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--out", str(out)], cwd=ROOT,
                            env=os.environ | {"PYTHON": sys.executable}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "no CUDA GPU is available" in result.stderr and "--dry-run" in result.stderr, result.stderr
    assert not out.exists()  # stopped before the first benchmark
