#!/usr/bin/env bash
# One command from a fresh machine to a result file:
#   scripts/run.sh VIDEO [-o OUT.h3r] [any `human3r infer` option]
# Sets up .venv on first use (see scripts/setup.sh), then runs the offline inference.
set -euo pipefail
cd "$(dirname "$0")/.."
WITH_BPY=${WITH_BPY:-0} scripts/setup.sh
exec .venv/bin/human3r infer "$@"
