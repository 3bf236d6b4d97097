#!/usr/bin/env bash
# Idempotent set-up: a virtualenv in .venv with cipherface, the three backend
# plugins, the FaceNet embedder plugin, the example plugin and the face models,
# from the package registries only.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${VENV:-.venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
py="$venv/bin/python"
"$py" -m pip install --quiet --upgrade pip wheel setuptools

# Pyfhel: no wheel on PyPI for this Python; build it once offline and cache it.
wheel=$(PYTHON="$py" bash scripts/pyfhel-wheel.sh | tail -n 1)

"$py" -m pip install --quiet "$wheel" \
  -e ".[faces,service,postgresql,dask,test]" \
  -e plugins/tenseal_backend \
  -e plugins/pyfhel_backend \
  -e plugins/seal_backend \
  -e plugins/paillier_backend \
  -e plugins/dcpe_backend \
  -e plugins/facenet_embedder \
  -e examples/cipherface-opcount
# The TenSEAL backend's native scan kernel (a small C file, compiled once into ~/.cache/cipherface)
"$py" -c 'from cipherface_tenseal import kernel; raise SystemExit(kernel.library() is None)'
# OpenCV 5 ships no Haar cascades; DeepFace's opencv detector reads them from cv2/data
"$py" scripts/haarcascades.py
# Sample photos for the demo ship inside the insightface wheel; it is installed
# without its dependencies because cipherface only reads its data files.
"$py" -m pip install --quiet --no-deps "insightface==2.1"
echo "cipherface installed in $venv"
