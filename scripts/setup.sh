#!/usr/bin/env bash
# Create .venv (Python >= 3.11) with the backend, the test tools and the PyPI `bpy` module.
# Re-running is cheap: nothing is reinstalled unless pyproject.toml changed.
#   TORCH_SPEC   torch requirement to install first (default torch==2.13.0; on a GPU box you may
#                point pip at the CUDA index of your choice, e.g. TORCH_SPEC="torch --index-url ...")
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
WITH_FARM=${WITH_FARM:-1}
stamp="$VENV/.h3r-setup-$(sha1sum pyproject.toml | cut -c1-12)-$WITH_BPY-$BPY_SPEC-$WITH_FARM"
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
touch "$stamp"
