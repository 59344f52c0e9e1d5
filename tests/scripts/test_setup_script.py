"""scripts/setup.sh says plainly when the Python is too old (before installing anything) and needs no sha1sum."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_old_python_is_refused_with_what_to_do(tmp_path):
    fake = tmp_path / "python3.9"
    fake.write_text('#!/bin/sh\nif [ "$1" = "-V" ]; then echo "Python 3.9.2"; exit 0; fi\nexit 1\n')
    fake.chmod(0o755)
    env = dict(os.environ, PYTHON=str(fake), VENV=str(tmp_path / "venv"))
    done = subprocess.run(["bash", str(REPO / "scripts" / "setup.sh")], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert "Python 3.9.2" in done.stderr and "Python 3.11 or newer is needed" in done.stderr
    assert "PYTHON=python3.11 scripts/setup.sh" in done.stderr
    assert not (tmp_path / "venv").exists()  # nothing was created


def test_no_sha1sum_needed():
    lines = (REPO / "scripts" / "setup.sh").read_text().splitlines()
    assert not [line for line in lines if "sha1sum" in line and not line.lstrip().startswith("#")]
