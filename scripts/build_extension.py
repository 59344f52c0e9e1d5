#!/usr/bin/env python3
"""Build the installable Blender extension zip of Human3R (`human3r-<version>.zip`).

    python scripts/build_extension.py                 # dist/human3r-0.1.0.zip with wheels for all platforms
    python scripts/build_extension.py --no-wheels     # offline / tests: the add-on code only
    python scripts/build_extension.py --split-platforms

Steps: stage `blender_addon/*` and `blender_manifest.toml` side by side (the zip root must hold both
`__init__.py` and the manifest), download the unmodified PyPI wheels of pyzmq and msgpack for every
platform in the manifest and for CPython 3.11 (Blender 4.2-5.0) and 3.13 (5.1+; pyzmq ships a
cp312-abi3 wheel that covers it), write their paths into the staged manifest's `wheels`, then zip.
numpy is left out because Blender ships it. The zip is made by Blender's own `blender_ext.py build`
(found inside the installed `bpy` module, or given with --blender-ext), which also validates the
manifest; without it, plain `zipfile` makes the same layout.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ADDON_DIR = REPO / "blender_addon"
MANIFEST = REPO / "blender_manifest.toml"

# Pinned so two builds of one version ship the same bytes.
WHEEL_REQUIREMENTS = ("pyzmq==27.3.0", "msgpack==1.2.4")
# Blender's Python: 3.11 in Blender 4.2-5.0, 3.13 from 5.1.
PYTHON_VERSIONS = ("3.11", "3.13")
# manifest platform -> pip --platform tags (pip also accepts older macOS/manylinux tags and universal2)
PLATFORM_TAGS = {
    "linux-x64": ("manylinux_2_28_x86_64",),
    "macos-arm64": ("macosx_11_0_arm64",),
    "macos-x64": ("macosx_11_0_x86_64",),
    "windows-x64": ("win_amd64",),
}
EXCLUDE_DIRS = {"__pycache__"}
EXCLUDE_SUFFIXES = {".pyc", ".pyo"}


def read_manifest_field(text: str, key: str) -> str:
    """The string value of a top-level `key = "value"` line of a TOML manifest."""
    match = re.search(rf'^{re.escape(key)}\s*=\s*"([^"]*)"', text, re.MULTILINE)
    if not match:
        raise SystemExit(f"blender_manifest.toml has no {key!r}")
    return match.group(1)


def read_platforms(text: str) -> list[str]:
    match = re.search(r"^platforms\s*=\s*\[([^\]]*)\]", text, re.MULTILINE)
    return re.findall(r'"([^"]+)"', match.group(1)) if match else list(PLATFORM_TAGS)


def set_wheels(text: str, wheels: list[str]) -> str:
    """Replace the manifest's `wheels = [...]` (possibly multi-line) with `wheels`."""
    body = "".join(f'\n  "./wheels/{name}",' for name in wheels)
    new = f"wheels = [{body}\n]" if wheels else "wheels = []"
    text, n = re.subn(r"^wheels\s*=\s*\[[^\]]*\]", lambda _m: new, text, count=1, flags=re.MULTILINE)
    if n == 0:
        raise SystemExit("blender_manifest.toml needs a `wheels = []` line for the build to fill")
    return text


def stage(stage_dir: Path) -> Path:
    """Copy the add-on package and the manifest into `stage_dir` (no caches); return the manifest path."""
    for src in sorted(ADDON_DIR.rglob("*")):
        rel = src.relative_to(ADDON_DIR)
        if any(part in EXCLUDE_DIRS for part in rel.parts) or src.suffix in EXCLUDE_SUFFIXES or src.is_dir():
            continue
        dst = stage_dir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    shutil.copy2(MANIFEST, stage_dir / MANIFEST.name)
    return stage_dir / MANIFEST.name


def download_wheels(dest: Path, platforms: list[str], cache: Path) -> list[str]:
    """pip-download binary wheels for every (platform, Python) pair; return their file names, sorted.

    Files already in `cache` are reused (pip skips downloads whose file exists in `-d`).
    """
    cache.mkdir(parents=True, exist_ok=True)
    names: set[str] = set()
    for platform in platforms:
        tags = PLATFORM_TAGS.get(platform)
        if tags is None:
            raise SystemExit(f"no wheel platform tags known for manifest platform {platform!r}")
        for py in PYTHON_VERSIONS:
            out = cache / f"{platform}-cp{py.replace('.', '')}"
            cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                   "--only-binary=:all:", "--no-deps", "--implementation", "cp", "--python-version", py,
                   *[arg for tag in tags for arg in ("--platform", tag)], "-d", str(out), *WHEEL_REQUIREMENTS]
            print(f"wheels: {platform} / CPython {py}", flush=True)
            subprocess.run(cmd, check=True)
            for whl in out.glob("*.whl"):
                if any(whl.name.lower().startswith(req.split("==")[0] + "-") for req in WHEEL_REQUIREMENTS):
                    names.add(whl.name)
                    shutil.copy2(whl, dest / whl.name)
    return sorted(names)


def find_blender_ext() -> Path | None:
    """`blender_ext.py` from the installed `bpy` module (it ships inside the wheel), or None."""
    if os.environ.get("BLENDER_EXT"):
        return Path(os.environ["BLENDER_EXT"])
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.origin:
        return None
    root = Path(spec.origin).parent
    found = sorted(root.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    return found[-1] if found else None


def zip_stage(stage_dir: Path, out_path: Path) -> Path:
    """Zip `stage_dir`'s contents at the archive root (the layout Blender installs)."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out_path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(stage_dir.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(stage_dir).as_posix())
    return out_path


def build(output_dir: Path, *, wheels: bool = True, split_platforms: bool = False, blender_ext: Path | None = None,
          use_blender_ext: bool = True, wheel_cache: Path | None = None, keep_stage: Path | None = None) -> list[Path]:
    """Build the zip(s) into `output_dir`; return their paths. See the module docstring."""
    manifest_text = MANIFEST.read_text(encoding="utf-8")
    ext_id = read_manifest_field(manifest_text, "id")
    version = read_manifest_field(manifest_text, "version")
    with tempfile.TemporaryDirectory(prefix="human3r-ext-") as tmp:
        stage_dir = keep_stage or Path(tmp) / ext_id
        if stage_dir.exists():
            shutil.rmtree(stage_dir)
        stage_dir.mkdir(parents=True)
        staged_manifest = stage(stage_dir)
        wheel_names: list[str] = []
        if wheels:
            (stage_dir / "wheels").mkdir()
            wheel_names = download_wheels(stage_dir / "wheels", read_platforms(manifest_text),
                                          wheel_cache or REPO / ".whl")
        staged_manifest.write_text(set_wheels(manifest_text, wheel_names), encoding="utf-8")

        output_dir.mkdir(parents=True, exist_ok=True)
        tool = (blender_ext or find_blender_ext()) if use_blender_ext else None
        if tool is not None and tool.is_file():
            before = set(output_dir.glob(f"{ext_id}-{version}*.zip"))
            cmd = [sys.executable, str(tool), "build", "--source-dir", str(stage_dir)]
            if split_platforms:
                cmd += ["--output-dir", str(output_dir), "--split-platforms"]
            else:
                cmd += ["--output-filepath", str(output_dir / f"{ext_id}-{version}.zip")]
            subprocess.run(cmd, check=True)
            made = sorted(set(output_dir.glob(f"{ext_id}-{version}*.zip")) - before)
            return made if split_platforms else [output_dir / f"{ext_id}-{version}.zip"]
        if split_platforms:
            raise SystemExit("--split-platforms needs blender_ext.py (install the `bpy` module or pass --blender-ext)")
        return [zip_stage(stage_dir, output_dir / f"{ext_id}-{version}.zip")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, default=REPO / "dist", help="where the zip goes (default dist/)")
    parser.add_argument("--no-wheels", action="store_true", help="leave out pyzmq/msgpack wheels (offline, tests)")
    parser.add_argument("--split-platforms", action="store_true", help="one zip per platform (smaller downloads)")
    parser.add_argument("--blender-ext", type=Path, help="path to blender_ext.py (default: from the bpy module)")
    parser.add_argument("--zipfile", action="store_true", help="zip with Python's zipfile, not blender_ext.py")
    parser.add_argument("--wheel-cache", type=Path, help="download cache for wheels (default .whl/)")
    parser.add_argument("--keep-stage", type=Path, help="stage into this folder and keep it (for inspection)")
    args = parser.parse_args(argv)
    made = build(args.output_dir, wheels=not args.no_wheels, split_platforms=args.split_platforms,
                 blender_ext=args.blender_ext, use_blender_ext=not args.zipfile, wheel_cache=args.wheel_cache,
                 keep_stage=args.keep_stage)
    for path in made:
        print(f"built {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
