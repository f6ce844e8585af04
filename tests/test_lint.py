"""The linter runs with the tests: the README's one test command (and CI) checks the code style
too, with the rules in pyproject.toml."""

import subprocess
import sys

from conftest import ROOT


def test_ruff_check_passes():
    # ruff comes with requirements-dev.txt: a missing ruff fails here rather than skipping.
    res = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
