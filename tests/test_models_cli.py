"""Model manifest, locating files, `python -m facex_core.models` check/download/list, and download()."""

import hashlib
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import huggingface_hub
import pytest

from facex_core.errors import ModelFileError, ModelFileMissingError, UnknownNameError
from facex_core.models import __main__ as models_main
from facex_core.models import download as download_module
from facex_core.models import status as status_module
from facex_core.models.__main__ import main
from facex_core.models.download import download
from facex_core.models.locate import candidate_paths, locate_roles, require_file, roots_from_models_dir
from facex_core.models.manifest import MODEL_FILES, OPTIONAL_ROLES, ROLES, ModelFile, entries_for_role, entry_by_key

ROOT = Path(__file__).resolve().parents[1]
TINY_CONTENT = b"tiny model weights"
TINY = ModelFile(
    key="test/tiny",
    role="detection",
    filename="tiny.onnx",
    folder_key="insightface",
    subfolder="models/tiny",
    size=len(TINY_CONTENT),
    sha256=hashlib.sha256(TINY_CONTENT).hexdigest(),
    hf_repo="someone/tiny",
    hf_path="weights/remote_tiny.onnx",
    source="https://example.invalid/tiny.zip",
    licence="MIT",
)


def place(models_dir, entry, size=None):
    path = Path(models_dir, entry.relative_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.truncate(entry.size if size is None else size)
    return path


def fake_hub(monkeypatch, content=None, error=None):
    """A Hub that answers: hf_hub_download writes `content` (or raises `error`); the list of
    its calls is returned."""
    calls = []

    def hf_hub_download(repo_id, filename, local_dir=None, **kwargs):
        calls.append((repo_id, filename))
        if error is not None:
            raise error
        path = Path(local_dir, filename)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return str(path)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    monkeypatch.setattr(models_main, "hub_unreachable", lambda: None)
    return calls


def closed_port() -> int:
    """A local port nothing listens on: connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_manifest_keys_are_unique():
    keys = [entry.key for entry in MODEL_FILES]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("role", [*ROLES, *OPTIONAL_ROLES])
def test_every_role_has_an_entry(role):
    assert entries_for_role(role)
    assert all(entry.role in ROLES or entry.role in OPTIONAL_ROLES for entry in MODEL_FILES)
    assert not set(ROLES) & set(OPTIONAL_ROLES)


def test_facexformer_is_an_optional_analysis_file_from_the_authors_hub_repo():
    entry = entry_by_key("facexformer/model")
    assert entries_for_role("analysis") == [entry] and "analysis" in OPTIONAL_ROLES and "analysis" not in ROLES
    assert entry.relative_path == "facex_extractors/facexformer.pt"
    assert entry.hub_url == "https://huggingface.co/kartiknarayan/facexformer/resolve/main/ckpts/model.pt"
    assert "save it as facexformer.pt" in entry.how_to_get()
    assert entry.licence == "MIT" and entry.sha256 is None and entry.size is None  # not verifiable offline


@pytest.mark.parametrize("entry", MODEL_FILES, ids=lambda e: e.key)
def test_manifest_entry_is_well_formed(entry):
    assert entry.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", entry.sha256)
    assert not entry.hf_repo or entry.hf_path
    assert entry.relative_path.endswith("/" + entry.filename)


def test_relative_path_joins_folder_subfolder_and_filename():
    assert entry_by_key("buffalo_l/det_10g").relative_path == "insightface/models/buffalo_l/det_10g.onnx"
    assert entry_by_key("bisenet/79999_iter").relative_path == "facex_extractors/79999_iter.pth"


def test_both_detector_packs_hold_the_same_file():
    assert entry_by_key("buffalo_l/det_10g").sha256 == entry_by_key("antelopev2/scrfd_10g_bnkps").sha256


def test_unknown_key_and_role_raise_key_error_naming_them():
    with pytest.raises(UnknownNameError, match="nope"):
        entry_by_key("nope")
    with pytest.raises(UnknownNameError, match="nope"):
        entries_for_role("nope")


def test_how_to_get_names_the_download_command_and_hub_file(tmp_path):
    text = entry_by_key("buffalo_l/det_10g").how_to_get()
    assert "python -m facex_core.models download buffalo_l/det_10g" in text
    assert f"python -m facex_core.models --models-dir {tmp_path} download buffalo_l/det_10g" in (
        entry_by_key("buffalo_l/det_10g").how_to_get(tmp_path))
    assert "`" not in text
    assert "https://huggingface.co/public-data/insightface" in text
    assert "models/buffalo_l/det_10g.onnx" in text
    assert "save it as" not in text


def test_how_to_get_says_to_rename_when_the_hub_file_name_differs():
    text = entry_by_key("clip/vit-large-patch14").how_to_get()
    assert "model.safetensors" in text
    assert "save it as clip-vit-large-patch14.safetensors" in text


def test_how_to_get_without_mirror_says_by_hand():
    text = entry_by_key("l2cs/gaze360").how_to_get()
    assert "by hand" in text
    assert "Ahmednull/L2CS-Net" in text
    assert "download l2cs/gaze360" not in text


def test_check_on_empty_folder_fails_and_lists_every_path_and_role(tmp_path, capsys):
    assert main(["--models-dir", str(tmp_path), "check"]) == 1
    out = capsys.readouterr().out
    for entry in MODEL_FILES:
        assert str(tmp_path / entry.relative_path) in out
        assert entry.how_to_get(tmp_path) in out
    for description in ROLES.values():
        assert f"No usable {description}. Any one of:" in out
    assert out.count("missing") == len(MODEL_FILES)


def test_check_passes_with_one_file_of_the_right_size_per_role(tmp_path, capsys):
    for role in ROLES:
        place(tmp_path, entries_for_role(role)[0], size=None if entries_for_role(role)[0].size else 10)
    assert main(["--models-dir", str(tmp_path), "check"]) == 0
    out = capsys.readouterr().out
    assert "No usable" not in out
    assert out.count(" ok ") == len(ROLES)


def test_check_passes_without_the_optional_files_and_says_where_they_go(tmp_path, capsys):
    for role in ROLES:
        place(tmp_path, entries_for_role(role)[0], size=None if entries_for_role(role)[0].size else 10)
    assert main(["--models-dir", str(tmp_path), "check"]) == 0
    out = capsys.readouterr().out
    entry = entry_by_key("facexformer/model")
    assert f"Optional, not found: {OPTIONAL_ROLES['analysis']}; FaceX runs without it." in out
    assert str(tmp_path / "facex_extractors" / "facexformer.pt") in out and entry.how_to_get(tmp_path) in out
    assert f"Optional, not found: {OPTIONAL_ROLES['face0_identity']}" in out
    place(tmp_path, entry, size=10)
    assert main(["--models-dir", str(tmp_path), "check"]) == 0
    out = capsys.readouterr().out
    assert f"Optional, not found: {OPTIONAL_ROLES['analysis']}" not in out
    assert f"Optional, not found: {OPTIONAL_ROLES['face0_identity']}" in out


def test_cli_downloads_the_optional_facexformer_file_by_key(tmp_path, capsys, monkeypatch):
    calls = fake_hub(monkeypatch, content=b"weights")
    assert main(["--models-dir", str(tmp_path), "download", "facexformer/model"]) == 0
    assert calls == [("kartiknarayan/facexformer", "ckpts/model.pt")]
    assert (tmp_path / "facex_extractors" / "facexformer.pt").read_bytes() == b"weights"
    assert "facexformer/model: downloaded to" in capsys.readouterr().out


def test_check_reports_a_file_of_the_wrong_size_as_bad_with_both_sizes(tmp_path, capsys):
    for role in ROLES:
        place(tmp_path, entries_for_role(role)[0], size=None if entries_for_role(role)[0].size else 10)
    bad = place(tmp_path, entry_by_key("antelopev2/glintr100"), size=1234)
    assert main(["--models-dir", str(tmp_path), "check"]) == 1
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "antelopev2/glintr100" in line)
    assert "BAD: size 1,234 bytes, expected 260,665,334" in line and str(bad) in line
    assert f"No usable {ROLES['recognition']}" in out


def test_check_verify_detects_a_sha256_mismatch(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(status_module, "MODEL_FILES", (TINY,))
    monkeypatch.setattr(status_module, "ROLES", {"detection": "tiny detector"})
    path = place(tmp_path, TINY, size=0)
    path.write_bytes(b"tiny model WEIGHTS")
    assert main(["--models-dir", str(tmp_path), "check"]) == 0
    assert "BAD" not in capsys.readouterr().out
    assert main(["--models-dir", str(tmp_path), "check", "--verify"]) == 1
    assert "BAD: SHA-256 differs" in capsys.readouterr().out
    path.write_bytes(TINY_CONTENT)
    assert main(["--models-dir", str(tmp_path), "check", "--verify"]) == 0


def test_locate_roles_returns_the_first_present_alternative(tmp_path):
    roots = roots_from_models_dir(tmp_path)
    buffalo = place(tmp_path, entry_by_key("buffalo_l/det_10g"), size=3)
    assert locate_roles(("detection",), roots) == {"detection": buffalo}
    antelope = place(tmp_path, entry_by_key("antelopev2/scrfd_10g_bnkps"), size=3)
    assert locate_roles(("detection",), roots) == {"detection": antelope}


def test_locate_roles_lists_every_missing_role_in_one_error(tmp_path):
    roots = roots_from_models_dir(tmp_path)
    place(tmp_path, entry_by_key("bisenet/79999_iter"), size=3)
    with pytest.raises(ModelFileMissingError) as caught:
        locate_roles(("parsing", "gaze", "clip_vision"), roots)
    message = str(caught.value)
    assert "parsing step" not in message
    assert "No model file for the gaze step" in message
    assert "No model file for the clip_vision step" in message
    assert str(tmp_path / "facex_extractors" / "L2CSNet_gaze360.pkl") in message
    assert str(tmp_path / "clip_vision" / "clip-vit-large-patch14.safetensors") in message


def test_require_file_returns_a_present_file(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"x")
    assert require_file(path, "test") == path


def test_require_file_on_a_missing_known_file_gives_the_download_command(tmp_path):
    with pytest.raises(ModelFileMissingError) as caught:
        require_file(tmp_path / "det_10g.onnx", "face detector")
    message = str(caught.value)
    assert f"The face detector file {tmp_path / 'det_10g.onnx'} was not found" in message
    assert "python -m facex_core.models download buffalo_l/det_10g" in message


def test_require_file_on_a_missing_unknown_file_has_no_hint(tmp_path):
    with pytest.raises(ModelFileMissingError) as caught:
        require_file(tmp_path / "other.onnx", "thing")
    assert str(caught.value) == f"The thing file {tmp_path / 'other.onnx'} was not found."


def test_download_failure_names_destination_and_source_and_leaves_nothing(tmp_path, monkeypatch):
    calls = fake_hub(monkeypatch, error=OSError("network unreachable"))
    destination = tmp_path / "insightface" / "models" / "tiny" / "tiny.onnx"
    with pytest.raises(ModelFileError) as caught:
        download(TINY, destination)
    message = str(caught.value)
    assert calls == [("someone/tiny", "weights/remote_tiny.onnx")]
    assert str(destination) in message
    assert TINY.source in message and "https://huggingface.co/someone/tiny" in message
    assert "OSError: network unreachable" in message
    assert list(tmp_path.iterdir()) == []  # the folders made for the download are gone too


def test_download_with_wrong_content_is_not_installed(tmp_path, monkeypatch):
    fake_hub(monkeypatch, content=b"something else")
    destination = tmp_path / "tiny.onnx"
    with pytest.raises(ModelFileError, match="SHA-256") as caught:
        download(TINY, destination)
    assert hashlib.sha256(b"something else").hexdigest() in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_download_with_matching_hash_installs_the_file(tmp_path, monkeypatch):
    fake_hub(monkeypatch, content=TINY_CONTENT)
    destination = tmp_path / "a" / "b" / "tiny.onnx"
    assert download(TINY, destination) == destination
    assert destination.read_bytes() == TINY_CONTENT
    assert list(destination.parent.iterdir()) == [destination]


def test_download_without_mirror_says_download_by_hand(tmp_path, monkeypatch):
    calls = fake_hub(monkeypatch, content=b"x")
    destination = tmp_path / "L2CSNet_gaze360.pkl"
    with pytest.raises(ModelFileError) as caught:
        download(entry_by_key("l2cs/gaze360"), destination)
    assert "by hand" in str(caught.value) and str(destination) in str(caught.value)
    assert calls == []


def test_cli_download_of_a_manual_file_fails_with_instructions(tmp_path, capsys):
    assert main(["--models-dir", str(tmp_path), "download", "l2cs/gaze360"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("l2cs/gaze360: ")
    assert "download it by hand from https://drive.google.com" in err
    assert str(tmp_path / "facex_extractors" / "L2CSNet_gaze360.pkl") in err


def test_cli_download_installs_a_verified_file(tmp_path, capsys, monkeypatch):
    entry = entry_by_key("buffalo_l/det_10g")
    calls = fake_hub(monkeypatch, content=b"not the detector")
    assert main(["--models-dir", str(tmp_path), "download", entry.key]) == 1
    assert "SHA-256" in capsys.readouterr().err
    assert calls == [("public-data/insightface", "models/buffalo_l/det_10g.onnx")]
    assert not (tmp_path / entry.relative_path).exists()


def test_cli_download_skips_a_file_already_present(tmp_path, capsys, monkeypatch):
    entry = entry_by_key("buffalo_l/det_10g")
    place(tmp_path, entry)
    calls = fake_hub(monkeypatch, content=b"x")
    assert main(["--models-dir", str(tmp_path), "download", entry.key]) == 0
    assert capsys.readouterr().out == "buffalo_l/det_10g: already present\n"
    assert calls == []


def test_cli_download_of_an_unknown_key_returns_2(tmp_path, capsys):
    assert main(["--models-dir", str(tmp_path), "download", "no/such"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "'no/such'" in err and "buffalo_l/det_10g" in err


def test_cli_list_prints_every_key_at_its_place_in_the_models_folder(tmp_path, capsys):
    assert main(["list", "--models-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for entry in MODEL_FILES:
        assert f"{entry.key} ({entry.role}): {tmp_path / entry.relative_path}" in out
    assert "size unpublished" in out and "sha256 unpublished" in out
    assert "1,710,540,580 bytes" in out
    assert f"facex: FaceX weight file, in {tmp_path / 'facex'}" in out and "no published FaceX weights" in out
    assert f"checkpoint: Stable Diffusion checkpoint (SD1.5 family, one file), in {tmp_path / 'checkpoints'}" in out


def test_candidate_paths_follow_every_root_in_order(tmp_path):
    entry = entry_by_key("buffalo_l/det_10g")
    roots = {"insightface": [tmp_path / "a", tmp_path / "b"]}
    assert candidate_paths(entry, roots) == [
        tmp_path / "a" / "models" / "buffalo_l" / "det_10g.onnx",
        tmp_path / "b" / "models" / "buffalo_l" / "det_10g.onnx",
    ]


def test_the_hub_counts_as_unreachable_when_offline_mode_is_set(monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert download_module.hub_unreachable() == "HF_HUB_OFFLINE is set"


def test_an_endpoint_that_refuses_connections_is_unreachable_within_the_timeout(monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    started = time.monotonic()
    reason = download_module.hub_unreachable()
    assert reason is not None and "does not answer" in reason
    assert time.monotonic() - started < download_module.HUB_TIMEOUT


@pytest.mark.parametrize("offline", [{"HF_HUB_OFFLINE": "1"}, {"HF_ENDPOINT": "http://127.0.0.1:{port}"}],
                         ids=["HF_HUB_OFFLINE", "no-answer"])
def test_download_offline_says_one_line_per_file_and_creates_no_folder(tmp_path, offline):
    """The default set with no Hub: a line per file naming where it goes, fast, nothing made."""
    models = tmp_path / "models"
    env = {key: value.format(port=closed_port()) for key, value in offline.items()}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "facex_core.models", "download", "--models-dir", str(models)],
                          cwd=ROOT, env=os.environ | env, capture_output=True, text=True, timeout=60)
    took = time.monotonic() - started
    assert done.returncode == 1 and took < 30, (done.returncode, took)
    lines = done.stderr.strip().splitlines()
    defaults = [entries_for_role(role)[0] for role in ROLES]
    assert len(lines) == len(defaults), done.stderr
    assert "facexformer" not in done.stderr  # optional files are fetched by key only
    for line, entry in zip(lines, defaults, strict=True):
        assert line.startswith(f"{entry.key}: ") and str(models / entry.relative_path) in line
        assert ("cannot be reached" in line) == bool(entry.hf_repo) and "by hand" in line
    assert "Traceback" not in done.stderr and not {"'", '"', "`"} & set(done.stderr)
    assert not models.exists()
