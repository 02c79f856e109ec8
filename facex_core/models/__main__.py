"""`python -m facex_core.models check | download | list`: the model files FaceX needs.

check     which files are present and intact, and for anything missing where it goes
download  fetch files from the Hugging Face Hub (SHA-256 verified where published) into the
          models folder: by default one for each role FaceX needs, optional ones by key
list      the manifest: every file with its size, hash, source, licence and place
"""

from __future__ import annotations

import argparse
import sys

from ..cli import common_options, run
from ..errors import FaceXError
from .download import download, hub_unreachable
from .locate import candidate_paths, roots_from_models_dir
from .manifest import MODEL_FILES, ROLES, USER_FILES, entries_for_role, entry_by_key
from .status import all_status, file_status, missing_roles, report


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m facex_core.models", description=__doc__.split("\n\n")[0],
                                     parents=[common_options("--models-dir")])
    sub = parser.add_subparsers(dest="subcommand", required=True)
    after = common_options("--models-dir", after_subcommand=True)
    check = sub.add_parser("check", help="report present, missing and damaged files", parents=[after])
    check.add_argument("--verify", action="store_true", help="also compare SHA-256 hashes (slow for large files)")
    check.set_defaults(command=_check)
    get = sub.add_parser("download", parents=[after], help="download files (default: the first choice for every "
                         "role FaceX needs; optional ones, such as facexformer/model, by key)")
    get.add_argument("keys", nargs="*", help="manifest keys, e.g. buffalo_l/det_10g; see `list`")
    get.set_defaults(command=_download)
    listing = sub.add_parser("list", help="list the manifest", parents=[after])
    listing.set_defaults(command=_list)
    return parser


def _check(args: argparse.Namespace) -> int:
    roots = roots_from_models_dir(args.models_dir)
    statuses = all_status(roots, verify_hash=args.verify)
    print(report(statuses, roots))
    return 1 if missing_roles(statuses) else 0


def _download(args: argparse.Namespace) -> int:
    """Each wanted file that is missing: one line saying it was downloaded, or why not."""
    roots = roots_from_models_dir(args.models_dir)
    entries = [entry_by_key(key) for key in args.keys] or [entries_for_role(role)[0] for role in ROLES]
    wanted = [entry for entry in entries if not file_status(entry, roots).ok]
    for entry in entries:
        if entry not in wanted:
            print(f"{entry.key}: already present")
    offline = hub_unreachable() if any(entry.hf_repo for entry in wanted) else None
    failures = 0
    for entry in wanted:
        destination = candidate_paths(entry, roots)[0]
        if offline and entry.hf_repo:
            failures += 1
            print(f"{entry.key}: not downloaded, the Hugging Face Hub cannot be reached ({offline}); "
                  f"put {entry.filename} at {destination} by hand, from {entry.hub_url} or {entry.source}.",
                  file=sys.stderr)
            continue
        try:
            download(entry, destination)
            print(f"{entry.key}: downloaded to {destination}")
        except FaceXError as error:  # one file's failure; the others are still tried
            failures += 1
            print(f"{entry.key}: {error}", file=sys.stderr)
    return 1 if failures else 0


def _list(args: argparse.Namespace) -> int:
    roots = roots_from_models_dir(args.models_dir)
    for entry in MODEL_FILES:
        size = f"{entry.size:,} bytes" if entry.size else "size unpublished"
        print(f"{entry.key} ({entry.role}): {candidate_paths(entry, roots)[0]}, {size}\n"
              f"  sha256 {entry.sha256 or 'unpublished'}\n  source {entry.source}\n  licence {entry.licence}")
    for kind in USER_FILES.values():
        print(f"{kind.role}: {kind.description}, in {roots[kind.folder_key][0]}\n  {kind.advice}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
