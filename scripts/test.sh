#!/usr/bin/env bash
# The test command (README, CI): set up .venv, run the whole suite on bpy 5.0.1, then the Blender
# tier again on bpy 4.2 LTS (legacy animation API) in .venv42.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/python -m pytest "$@"
if [ "${SKIP_BPY42:-0}" != 1 ]; then
  if [ ! -x .venv42/bin/python ]; then
    python3 -m venv .venv42
    .venv42/bin/python -m pip install -q --upgrade pip
    .venv42/bin/python -m pip install -q "bpy==4.2.0" pytest pytest-timeout msgpack pyzmq smplx
  fi
  .venv42/bin/python -m pytest -m bpy tests/blender tests/core -p no:cacheprovider
fi
