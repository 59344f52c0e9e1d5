"""The extension zip: layout, manifest validity (Blender's own validator), and what it must not contain.

Built with --no-wheels (offline). Validation uses the `blender_ext.py` that ships inside the PyPI
`bpy` wheel; run this file under each bpy version's interpreter to validate against each.
"""
from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import build_extension  # noqa: E402

FORBIDDEN_IMPORTS = ("torch", "backend", "blender_addon")  # no backend code, no absolute self-imports


@pytest.fixture(scope="module")
def built_zip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    made = build_extension.build(out, wheels=False, use_blender_ext=False)
    assert len(made) == 1
    return made[0]


def blender_ext_or_skip() -> Path:
    tool = build_extension.find_blender_ext()
    if tool is None:
        pytest.skip("blender_ext.py not found (install the `bpy` module)")
    return tool


def validate(tool: Path, target: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(tool), "validate", *extra, str(target)], capture_output=True,
                          text=True, timeout=120)


def tags_file(tool: Path) -> Path | None:
    """Blender's list of valid extension tags (next to blender_ext.py in the same bpy install)."""
    scripts = tool.parents[3]
    path = scripts / "modules" / "_bpy_internal" / "extensions" / "tags.py"
    return path if path.is_file() else None


def test_zip_root_holds_init_and_manifest(built_zip):
    with zipfile.ZipFile(built_zip) as zf:
        names = zf.namelist()
    assert "__init__.py" in names and "blender_manifest.toml" in names
    # each required file on its own (no `a and b or c` chain that lets one file excuse the others)
    for required in ("core/protocol.py", "core/resultfile.py", "client/__init__.py", "client/zmq_client.py"):
        assert required in names, required
    assert "blender/operators.py" in names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert not any(n.startswith(("backend/", "tests/", "scripts/")) for n in names)


def test_no_file_imports_torch_or_backend(built_zip):
    offenders = []
    with zipfile.ZipFile(built_zip) as zf:
        for name in zf.namelist():
            if not name.endswith(".py"):
                continue
            tree = ast.parse(zf.read(name), filename=name)
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    mods = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    mods = [node.module or ""]
                else:
                    continue
                offenders += [f"{name}: {m}" for m in mods if m.split(".")[0] in FORBIDDEN_IMPORTS]
    assert not offenders, "the extension must not import these: " + ", ".join(offenders)


def test_module_level_init_does_not_import_bpy(built_zip):
    with zipfile.ZipFile(built_zip) as zf:
        tree = ast.parse(zf.read("__init__.py"))
    top_level = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not top_level, "blender_addon/__init__.py imports at module level; bpy must stay inside register()"


def test_manifest_validates_with_blender_ext(built_zip, tmp_path):
    tool = blender_ext_or_skip()
    result = validate(tool, built_zip)
    assert result.returncode == 0, result.stdout + result.stderr
    tags = tags_file(tool)
    if tags is not None:
        result = validate(tool, built_zip, "--valid-tags", str(tags))
        assert result.returncode == 0, result.stdout + result.stderr


def test_validator_is_strict(tmp_path):
    """Guard against a validator that accepts anything: a trailing period in a reason must fail."""
    tool = blender_ext_or_skip()
    text = (REPO / "blender_manifest.toml").read_text()
    (tmp_path / "__init__.py").write_text("def register():\n    pass\n\ndef unregister():\n    pass\n")
    (tmp_path / "blender_manifest.toml").write_text(
        text.replace('network = "Talks to the Human3R inference server over ZeroMQ"',
                     'network = "Talks to the server."'))
    assert validate(tool, tmp_path).returncode != 0


def test_blender_ext_build_makes_the_same_layout(tmp_path):
    tool = blender_ext_or_skip()
    made = build_extension.build(tmp_path, wheels=False, blender_ext=tool)
    with zipfile.ZipFile(made[0]) as zf:
        names = set(zf.namelist())
    assert {"__init__.py", "blender_manifest.toml", "core/session.py"} <= names


def test_wheels_are_written_into_the_manifest():
    text = (REPO / "blender_manifest.toml").read_text()
    wheels = ["msgpack-1.2.4-cp311-cp311-win_amd64.whl", "pyzmq-27.3.0-cp312-abi3-win_amd64.whl"]
    out = build_extension.set_wheels(text, wheels)
    assert '"./wheels/pyzmq-27.3.0-cp312-abi3-win_amd64.whl",' in out
    assert out.count("wheels = [") == 1
    assert build_extension.set_wheels(out, []).count("wheels = []") == 1  # multi-line list replaced too
    if importlib.util.find_spec("tomllib"):
        import tomllib

        assert tomllib.loads(out)["wheels"] == [f"./wheels/{w}" for w in wheels]
    assert build_extension.read_platforms(text) == list(build_extension.PLATFORM_TAGS)
