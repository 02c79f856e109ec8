"""`python -m facex_core.models check | download | list`: the model files FaceX needs.

check     which files are present and intact, and for anything missing where it goes
download  fetch files from the Hugging Face Hub (SHA-256 verified) into the models folder
list      the manifest: every file with its size, hash, source and licence
"""

from __future__ import annotations

import argparse
import sys

from ..errors import FaceXError
from .download import download
from .locate import candidate_paths, default_models_dir, roots_from_models_dir
from .manifest import MODEL_FILES, ROLES, entries_for_role, entry_by_key
from .status import all_status, file_status, missing_roles, report


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m facex_core.models", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", default=None, help=f"ComfyUI models folder (default: {default_models_dir()})")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="report present, missing and damaged files")
    check.add_argument("--verify", action="store_true", help="also compare SHA-256 hashes (slow for large files)")
    get = sub.add_parser("download", help="download files (default: the first choice for every role)")
    get.add_argument("keys", nargs="*", help="manifest keys, e.g. buffalo_l/det_10g; see `list`")
    sub.add_parser("list", help="list the manifest")
    return parser


def _check(roots: dict, verify: bool) -> int:
    statuses = all_status(roots, verify_hash=verify)
    print(report(statuses, roots))
    return 1 if missing_roles(statuses) else 0


def _download(roots: dict, keys: list[str]) -> int:
    entries = [entry_by_key(key) for key in keys] or [entries_for_role(role)[0] for role in ROLES]
    failures = 0
    for entry in entries:
        if file_status(entry, roots).ok:
            print(f"{entry.key}: already present")
            continue
        destination = candidate_paths(entry, roots)[0]
        try:
            download(entry, destination)
            print(f"{entry.key}: downloaded to {destination}")
        except FaceXError as exc:
            failures += 1
            print(f"{entry.key}: {exc}", file=sys.stderr)
    return 1 if failures else 0


def _list() -> int:
    for entry in MODEL_FILES:
        size = f"{entry.size:,} bytes" if entry.size else "size unpublished"
        print(f"{entry.key} ({entry.role}): {entry.relative_path}, {size}\n"
              f"  sha256 {entry.sha256 or 'unpublished'}\n  source {entry.source}\n  licence {entry.licence}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    roots = roots_from_models_dir(args.models_dir)
    try:
        if args.command == "check":
            return _check(roots, args.verify)
        if args.command == "download":
            return _download(roots, args.keys)
        return _list()
    except (FaceXError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
