"""`scripts/check_imports.py`: the project's import graph has no circles, and the checker finds the
circles that hide in lazy imports and in module paths handed to importlib."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path


REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "check_imports.py"

def _check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_the_backend_has_no_import_circles():
    result = _check("--packages", "--roots", "backend", str(REPO))
    assert result.returncode == 0, result.stdout
    assert "no import circles" in result.stdout


def test_the_project_has_no_import_circles():
    result = _check("--packages", str(REPO))
    assert result.returncode == 0, result.stdout
    assert "no import circles" in result.stdout


def test_a_lazy_import_inside_a_function_closes_a_circle(tmp_path):
    root = _tree(tmp_path, {
        "backend/__init__.py": "",
        "backend/engine/__init__.py": "",
        "backend/engine/job.py": "from backend.server.remote import send\n",
        "backend/server/__init__.py": "",
        "backend/server/remote.py": """
            def send():
                from ..engine import job  # lazy, relative: still an arrow back
                return job
        """,
        "blender_addon/__init__.py": "",
    })
    result = _check("--packages", str(root))
    assert result.returncode == 1
    assert "module circle: backend.engine.job -> backend.server.remote -> backend.engine.job" in result.stdout
    assert "room circle: backend.engine -> backend.server -> backend.engine" in result.stdout


def test_a_module_path_given_to_importlib_is_an_import(tmp_path):
    root = _tree(tmp_path, {
        "backend/__init__.py": "",
        "backend/cli.py": """
            import importlib
            COMMANDS = {"run": "backend.run_cmd"}
            def main():
                return importlib.import_module(COMMANDS["run"])
        """,
        "backend/run_cmd.py": "from backend.cli import main\n",
        "blender_addon/__init__.py": "",
    })
    result = _check(str(root))
    assert result.returncode == 1 and "backend.cli -> backend.run_cmd -> backend.cli" in result.stdout
    (root / "backend/run_cmd.py").write_text("import argparse\n")  # the command no longer reaches back
    result = _check(str(root))
    assert result.returncode == 0 and "no import circles among 4 modules (1 arrows)" in result.stdout
