#!/usr/bin/env bash
# Screenshots of the Human3R extension in a real Blender 4.2+ GUI, as a new user meets it.
#
#   scripts/gui_screenshots.sh BLENDER [OUT_DIR]      (OUT_DIR default: out/screens)
#
# Builds the extension zip, installs it into a throw-away Blender user folder (HOME is a temporary
# folder), makes result files with the parity fixture's tiny checkpoint (`human3r infer` on tennis.mp4,
# the same with its video moved away, and a synthetic 40-person file), starts `human3r serve` on a free
# loopback port, then runs Blender with scripts/gui_screenshots.py, which drives the panel and grabs
# the display. Needs the repo's .venv (scripts/setup.sh), $HUMAN3R_SHARED (default ../shared) with
# fixtures/parity-small and videos/tennis.mp4, ImageMagick (`import`, `convert`) where Blender runs,
# and an X display: $DISPLAY, or Xvfb on PATH (started here). BLENDER may be a wrapper script (e.g.
# one that runs a distribution's blender in a chroot sharing /tmp and this checkout's paths).
set -euo pipefail

BLENDER=${1:?usage: scripts/gui_screenshots.sh BLENDER [OUT_DIR]}
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(realpath -m "${2:-$REPO/out/screens}")
SHARED=${HUMAN3R_SHARED:-$REPO/../shared}
FIXTURE=$SHARED/fixtures/parity-small
VIDEO=$SHARED/videos/tennis.mp4
PY=${PYTHON:-$REPO/.venv/bin/python}
WORK=$(mktemp -d /tmp/h3r-gui.XXXXXX)
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
mkdir -p "$OUT"
export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}

echo "== extension zip"
"$PY" "$REPO/scripts/build_extension.py" --split-platforms --output-dir "$WORK/dist" >/dev/null
ZIP=$(ls "$WORK"/dist/*linux_x64.zip)

echo "== result files (tiny checkpoint, 40 frames)"
infer() {
  "$PY" -m backend.cli.main infer "$1" -o "$2" --checkpoint "$FIXTURE/checkpoint.pth" \
    --smplx "$FIXTURE/SMPLX_NEUTRAL.npz" --size 112 --end 40 --detection-threshold 0.44 --device cpu --quiet
}
infer "$VIDEO" "$WORK/tennis.h3r"
mkdir -p "$WORK/moved" && cp "$VIDEO" "$WORK/moved/tennis_moved.mp4"
infer "$WORK/moved/tennis_moved.mp4" "$WORK/tennis_moved.h3r"
rm "$WORK/moved/tennis_moved.mp4"  # the result now names a video that is gone
"$PY" - "$WORK/crowd.h3r" <<'EOF'
import sys
from tests.support.synthetic_job import make_job, write_job
n = 300
write_job(sys.argv[1], make_job(n_frames=n, people=tuple((k, 0, n) for k in range(1, 41)),
                                video_path="/footage/crowd.mp4", points_per_frame=200))
EOF

echo "== server (tiny model) on a free loopback port"
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$PY" -m backend.cli.main serve --bind "tcp://127.0.0.1:$PORT" --checkpoint "$FIXTURE/checkpoint.pth" \
  --smplx "$FIXTURE/SMPLX_NEUTRAL.npz" --device cpu --media-root "$(dirname "$VIDEO")" \
  --results-dir "$WORK/results" --live "desk=/dev/video0" --live "stage=rtsp://127.0.0.1:8554/stage" \
  >"$WORK/serve.log" 2>&1 &
PIDS+=($!)

echo "== Blender user folder with the extension"
export HOME=$WORK/home
mkdir -p "$HOME"
"$BLENDER" --command extension install-file -r user_default -e "$ZIP"
"$BLENDER" -b --python-expr 'import bpy; bpy.context.preferences.view.show_splash = False; bpy.ops.wm.save_userpref()' >/dev/null

if [ -z "${DISPLAY:-}" ]; then
  Xvfb :97 -screen 0 1600x1000x24 >"$WORK/xvfb.log" 2>&1 &
  PIDS+=($!)
  export DISPLAY=:97
  sleep 2
fi

echo "== Blender GUI"
"$BLENDER" --python "$REPO/scripts/gui_screenshots.py" -- --out "$OUT" --h3r "$WORK/tennis.h3r" \
  --moved "$WORK/tennis_moved.h3r" --crowd "$WORK/crowd.h3r" --server "tcp://127.0.0.1:$PORT" --video "$VIDEO"
echo "screenshots in $OUT (see INDEX.md)"
