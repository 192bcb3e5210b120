"""Where the conformance data produced by the original SEDD and MDLM code lives (../shared/conformance)."""

import os
from pathlib import Path

import pytest
from safetensors.torch import load_file

CONFORMANCE_DIR = Path(os.environ.get("DLM_CONFORMANCE_DIR", Path(__file__).resolve().parents[2] / "shared" / "conformance"))


def load(name: str, kind: str) -> dict:
    """The tensors of ``<kind>/<name>.safetensors``; skips the test when the data are absent."""
    path = CONFORMANCE_DIR / kind / f"{name}.safetensors"
    if not path.exists():
        pytest.skip(f"conformance data not found at {path}")
    return load_file(path)
