"""Real trained models that the package registry holds (FACTS.md), fetched at test time.

The source archive of `scrfd==0.3.0` on PyPI carries a real SCRFD-2.5G face detector with
five keypoints (models/scrfd.onnx). It is found through the registry's simple index, the
archive is checked against its published SHA-256, and the model is unpacked into the test
session's temporary folder. Without the registry the tests that need it skip and say why.
The file is never committed: insightface's non-commercial model terms apply to it.
"""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

SCRFD_ARCHIVE = "scrfd-0.3.0.tar.gz"
SCRFD_ARCHIVE_SHA256 = "35855c664d565492aab0068f1c64b4957a15ca6cd106b9c8b1642d67cfeeb5fc"
SCRFD_MEMBER = "scrfd-0.3.0/models/scrfd.onnx"
TIMEOUT = 30


def simple_index() -> str:
    return os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/") + "/"


def fetch_real_scrfd(folder: Path) -> Path:
    """models/scrfd.onnx of the scrfd 0.3.0 source archive, unpacked into `folder`."""
    page = urllib.parse.urljoin(simple_index(), "scrfd/")
    try:
        html = urllib.request.urlopen(page, timeout=TIMEOUT).read().decode()
        link = next(match for match in re.findall(r'href="([^"]+)"', html) if SCRFD_ARCHIVE in match)
        archive = urllib.request.urlopen(urllib.parse.urljoin(page, link.replace("&amp;", "&")), timeout=TIMEOUT).read()
    except (urllib.error.URLError, OSError, StopIteration) as error:
        pytest.skip(f"the real SCRFD-2.5G ({SCRFD_ARCHIVE}) could not be fetched from {page}: {error!r}")
    assert hashlib.sha256(archive).hexdigest() == SCRFD_ARCHIVE_SHA256, "the registry serves another scrfd-0.3.0"
    (folder / SCRFD_ARCHIVE).write_bytes(archive)
    with tarfile.open(folder / SCRFD_ARCHIVE) as bundle:
        bundle.extract(SCRFD_MEMBER, folder, filter="data")
    return folder / SCRFD_MEMBER
