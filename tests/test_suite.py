"""The test suite itself: without ../shared/faces it still collects, and the tests that read
the faces skip with the reason instead of failing."""

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def test_missing_faces_skip_the_tests_that_read_them_and_the_rest_run(tmp_path):
    # test_bad_inputs lists the faces while it is collected; test_images mixes both kinds
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_bad_inputs.py",
                           "test_images.py"], cwd=HERE, env=os.environ | {"FACEX_TEST_FACES": str(tmp_path / "none")},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert " passed" in summary and " skipped" in summary and "error" not in summary, summary
    assert f"the annotated test faces are missing ({tmp_path / 'none' / 'annotations.json'})" in done.stdout
