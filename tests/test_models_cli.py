"""Model manifest, locating files, `python -m facex_core.models` check/download/list, and download()."""

import hashlib
import re
from pathlib import Path

import huggingface_hub
import pytest

from facex_core.errors import ModelFileError, ModelFileMissingError
from facex_core.models import status as status_module
from facex_core.models.__main__ import main
from facex_core.models.download import download
from facex_core.models.locate import candidate_paths, locate_roles, require_file, roots_from_models_dir
from facex_core.models.manifest import MODEL_FILES, ROLES, ModelFile, entries_for_role, entry_by_key

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


def fake_hub(content=None, error=None):
    calls = []

    def hf_hub_download(repo_id, filename, local_dir=None, **kwargs):
        calls.append((repo_id, filename))
        if error is not None:
            raise error
        path = Path(local_dir, filename)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return str(path)

    return hf_hub_download, calls


def test_manifest_keys_are_unique():
    keys = [entry.key for entry in MODEL_FILES]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("role", list(ROLES))
def test_every_role_has_an_entry(role):
    assert entries_for_role(role)
    assert all(entry.role in ROLES for entry in MODEL_FILES)


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
    with pytest.raises(KeyError, match="nope"):
        entry_by_key("nope")
    with pytest.raises(KeyError, match="nope"):
        entries_for_role("nope")


def test_how_to_get_names_the_download_command_and_hub_file():
    text = entry_by_key("buffalo_l/det_10g").how_to_get()
    assert "python -m facex_core.models download buffalo_l/det_10g" in text
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
        assert entry.how_to_get() in out
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
    fake, calls = fake_hub(error=OSError("network unreachable"))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake)
    destination = tmp_path / "insightface" / "models" / "tiny" / "tiny.onnx"
    with pytest.raises(ModelFileError) as caught:
        download(TINY, destination)
    message = str(caught.value)
    assert calls == [("someone/tiny", "weights/remote_tiny.onnx")]
    assert str(destination) in message
    assert TINY.source in message and "https://huggingface.co/someone/tiny" in message
    assert "OSError: network unreachable" in message
    assert list(destination.parent.iterdir()) == []


def test_download_with_wrong_content_is_not_installed(tmp_path, monkeypatch):
    fake, _ = fake_hub(content=b"something else")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake)
    destination = tmp_path / "tiny.onnx"
    with pytest.raises(ModelFileError, match="SHA-256") as caught:
        download(TINY, destination)
    assert hashlib.sha256(b"something else").hexdigest() in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_download_with_matching_hash_installs_the_file(tmp_path, monkeypatch):
    fake, _ = fake_hub(content=TINY_CONTENT)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake)
    destination = tmp_path / "a" / "b" / "tiny.onnx"
    assert download(TINY, destination) == destination
    assert destination.read_bytes() == TINY_CONTENT
    assert list(destination.parent.iterdir()) == [destination]


def test_download_without_mirror_says_download_by_hand(tmp_path, monkeypatch):
    fake, calls = fake_hub(content=b"x")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake)
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
    fake, calls = fake_hub(content=b"not the detector")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake)
    assert main(["--models-dir", str(tmp_path), "download", entry.key]) == 1
    assert "SHA-256" in capsys.readouterr().err
    assert calls == [("public-data/insightface", "models/buffalo_l/det_10g.onnx")]
    assert not (tmp_path / entry.relative_path).exists()


def test_cli_download_skips_a_file_already_present(tmp_path, capsys, monkeypatch):
    entry = entry_by_key("buffalo_l/det_10g")
    place(tmp_path, entry)
    fake, calls = fake_hub(content=b"x")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake)
    assert main(["--models-dir", str(tmp_path), "download", entry.key]) == 0
    assert capsys.readouterr().out == "buffalo_l/det_10g: already present\n"
    assert calls == []


def test_cli_download_of_an_unknown_key_returns_2(tmp_path, capsys):
    assert main(["--models-dir", str(tmp_path), "download", "no/such"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "'no/such'" in err and "buffalo_l/det_10g" in err


def test_cli_list_prints_every_key(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for entry in MODEL_FILES:
        assert f"{entry.key} ({entry.role}): {entry.relative_path}" in out
    assert "size unpublished" in out and "sha256 unpublished" in out
    assert "1,710,540,580 bytes" in out


def test_candidate_paths_follow_every_root_in_order(tmp_path):
    entry = entry_by_key("buffalo_l/det_10g")
    roots = {"insightface": [tmp_path / "a", tmp_path / "b"]}
    assert candidate_paths(entry, roots) == [
        tmp_path / "a" / "models" / "buffalo_l" / "det_10g.onnx",
        tmp_path / "b" / "models" / "buffalo_l" / "det_10g.onnx",
    ]
