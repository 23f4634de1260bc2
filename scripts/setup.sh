#!/usr/bin/env bash
# Set up celltwin in ./.venv from a clean clone: CPU torch where no GPU is present (never a
# multi-GB CUDA download by default), then celltwin itself as a regular, non-editable install.
# Usage: bash scripts/setup.sh [EXTRAS]   e.g. bash scripts/setup.sh test
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"

if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)

if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    "${pip[@]}" install "torch>=2.3,<3"
  else
    # The CPU wheel index is tried as an extra source; the +cpu local version wins when found.
    "${pip[@]}" install "torch==2.13.0" --extra-index-url https://download.pytorch.org/whl/cpu
  fi
fi

target="."
[ -n "$extras" ] && target=".[${extras}]"
# --force-reinstall of celltwin alone (not its dependencies) so edits in the tree are picked up.
"${pip[@]}" install "$target"
"${pip[@]}" install --no-deps --force-reinstall .
