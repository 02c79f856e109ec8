"""facex_core installs as a package: the wheel holds the library and its JSON configs, and
imports in a fresh virtual environment."""

import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_installs_into_a_fresh_venv_and_carries_its_configs(tmp_path):
    source = tmp_path / "source"  # a copy, so the build leaves nothing in the checkout
    shutil.copytree(ROOT / "facex_core", source / "facex_core", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    build = ["wheel", str(source), "--no-deps", "--no-build-isolation", "-w", str(tmp_path)]
    subprocess.run([sys.executable, "-m", "pip", *build], check=True, capture_output=True, timeout=300)
    wheel = next(tmp_path.glob("facex-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "facex_core/model/configs/sd15/unet/config.json" in names
    assert {"facex_core/train/configs/generalist.json", "facex_core/train/configs/face_swap.json",
            "facex_core/train/configs/face0.json"} <= set(names)
    # the CLIP tokenizer the face0 command and prepare-face0 encode prompts with
    assert {"facex_core/model/clip_tokenizer/vocab.json", "facex_core/model/clip_tokenizer/merges.txt"} <= set(names)
    assert not [name for name in names if name.startswith(("nodes/", "tests/", "web/", "benchmarks/"))]
    fresh = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(fresh)
    python = fresh / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                    str(wheel)], check=True, capture_output=True, timeout=300)
    probe = ("import facex_core, importlib.resources as r; print(facex_core.__version__, "
             "r.files('facex_core.train').joinpath('configs/generalist.json').is_file())")
    done = subprocess.run([str(python), "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["0.1.0", "True"], done.stderr
