#!/usr/bin/env bash
# Create .venv (Python >= 3.11) with the backend, the test tools and the PyPI `bpy` module.
# Re-running is cheap: nothing is reinstalled unless pyproject.toml changed.
#   TORCH_SPEC   torch requirement to install first (default torch==2.13.0 from plain PyPI: on Linux
#                that is a CUDA build, what a GPU user wants; for a CPU-only machine or CI use
#                TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu", much smaller)
#   WITH_BPY     1 (default) installs BPY_SPEC for the Blender test tier; 0 skips it
#   BPY_SPEC     default bpy==5.0.1 (CI also builds .venv42 with bpy==4.2.0)
#   WITH_FARM    1 (default) installs the `farm` extra (Ray, for `human3r batch` and its tests); 0 skips it
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
WITH_BPY=${WITH_BPY:-1}
BPY_SPEC=${BPY_SPEC:-bpy==5.0.1}
# Python >= 3.11 (the bpy wheels and the code need it); say so before anything is installed
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "scripts/setup.sh: $PY is $("$PY" -V 2>&1 || echo missing); Python 3.11 or newer is needed." >&2
  echo "  Install it (e.g. python3.11) and run: PYTHON=python3.11 scripts/setup.sh" >&2
  exit 2
fi
# the hash comes from Python itself: macOS has no sha1sum
digest=$("$PY" -c 'import hashlib; print(hashlib.sha1(open("pyproject.toml", "rb").read()).hexdigest()[:12])')
WITH_FARM=${WITH_FARM:-1}
stamp="$VENV/.h3r-setup-$digest-$WITH_BPY-$BPY_SPEC-$WITH_FARM"
if [ -f "$stamp" ]; then exit 0; fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
# torch first and alone, so the project's torch range never pulls a different (CUDA) build
"$VENV/bin/python" -m pip install -q $TORCH_SPEC
extras=()
[ "$WITH_BPY" = 1 ] && extras+=("$BPY_SPEC")
project_extras=test
[ "$WITH_FARM" = 1 ] && project_extras+=",farm"
"$VENV/bin/python" -m pip install -q -e ".[$project_extras]" "${extras[@]}"
# Khronos glTF validator for the export tests (skipped with a reason where npm is missing)
if command -v npm >/dev/null && [ ! -d .tools/gltf-validator/node_modules/gltf-validator ]; then
  npm install -q --prefix .tools/gltf-validator gltf-validator@2.0.0-dev.3.10 || echo "gltf-validator not installed"
fi
touch "$stamp"
