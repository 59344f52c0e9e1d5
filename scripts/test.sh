#!/usr/bin/env bash
# The test command (README, CI): set up .venv, run the whole suite on bpy 5.0.1, then the Blender
# tier again on bpy 4.2 LTS (legacy animation API) in .venv42.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/python -m pytest "$@"
if [ "${SKIP_BPY42:-0}" != 1 ]; then
  VENV=.venv42 BPY_SPEC=bpy==4.2.0 WITH_FARM=0 scripts/setup.sh  # the Blender tier needs no Ray
  .venv42/bin/python -m pytest -m bpy tests/blender -p no:cacheprovider
fi
