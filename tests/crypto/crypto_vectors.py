"""Shared helpers for the crypto tests: the vector files under tests/vectors/crypto/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "crypto"


def load_vectors(name: str) -> Any:
    """Return the parsed JSON of ``tests/vectors/crypto/<name>.json``."""
    return json.loads((VECTORS / f"{name}.json").read_text(encoding="utf-8"))
