#!/usr/bin/env bash
# The GPU machine's figures in one prepared run (benchmarks/gpu.py says what it measures).
#
#   bash benchmarks/gpu.sh prepare    # here, with the package registries: fills .whl/ (the
#                                     # wheels the GPU image lacks, celltwin's own included)
#                                     # and .gl/ (the GL loader libraries EGL needs)
#   bash benchmarks/gpu.sh [ARGS]     # on the GPU machine: installs .whl/ and .gl/, then runs
#                                     # benchmarks/gpu.py ARGS (default: everything, 9 minutes)
#   bash benchmarks/gpu.sh --tiny     # on any machine with the project's venv: under 2 minutes
#
# The device run carries [".whl", ".gl"]: run(command="bash benchmarks/gpu.sh --out $OUT/gpu",
# carry=[".whl", ".gl"], timeout_s=600). The GPU machine has no registry, hence the wheels.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

if [ "${1:-}" = "prepare" ]; then
  shift
  # The project's dependencies the GPU image lacks (../shared/device/README.md lists what it has).
  bash ../shared/device/prepare.sh asyncua aiofiles aiosqlite pyopenssl cryptography pytz \
    sortedcontainers onnxscript tqdm rich markdown-it-py mdurl pyyaml "$@"
  # celltwin itself: one pure-Python wheel, built from this checkout.
  py=.venv/bin/python; [ -x "$py" ] || py=python3
  "$py" -m pip wheel -q --no-deps --no-build-isolation -w .whl . && rm -rf build
  exclude=$(git rev-parse --git-path info/exclude)
  grep -qx '/.gl/' "$exclude" 2>/dev/null || echo '/.gl/' >> "$exclude"
  mkdir -p .gl /tmp/amd64/partial
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  # shellcheck disable=SC2086
  apt-get $o update -qq && (cd .gl && apt-get $o download -qq libvulkan1 libegl1 libglvnd0 \
    libopengl0 libgl1 libglx0 libgles2)
  ls .whl .gl
  exit 0
fi

if [ -d .whl ] && ! python3 -c "import celltwin" 2>/dev/null && [ ! -x .venv/bin/python ]; then
  # The GPU machine: Python 3.12 with CUDA torch, no registry (../shared/device/README.md).
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  if [ -d .gl ]; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
    export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  fi
fi

py=${PYTHON:-}
if [ -z "$py" ]; then
  if [ -x .venv/bin/python ]; then py=.venv/bin/python; else py=python3; fi
fi
exec "$py" benchmarks/gpu.py "$@"
