"""``tally verify BUNDLE [--trust FILE] [--json]``: check a proof bundle offline.

Prints ONE line on standard output and returns the exit code:

* ``VALID reading site-1/lc-03 boot 0 ctr 41 (assurance device) in batch edge-1#12
  — anchors: acme (pinned)`` (on one line) and exit code 0;
* ``INVALID: <reason>`` and exit code 1;
* with ``--json``, one JSON object (see :meth:`tally.verify.verdict.Verdict.to_json`, plus
  ``"trust"``: the trust file used or null) instead, same exit codes;
* exit code 2, with ``error: …`` on standard error, when the arguments cannot be used (a
  missing or unreadable bundle, a missing or malformed trust file).

Without ``--trust`` the trust file is ``trust.cbor`` in the bundle's directory, else in its
parent directory; if neither exists the bundle's own anchors are accepted and the output
says ``anchors not pinned``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tally.crypto import CryptoError
from tally.device.trust import Trust, load_trust
from tally.verify.verifier import verify_bundle

TRUST_FILE_NAME = "trust.cbor"


def find_trust(bundle_path: Path) -> Path | None:
    """``trust.cbor`` next to the bundle, else in the directory above; None if neither."""
    here = bundle_path.resolve().parent
    for d in (here, here.parent):
        candidate = d / TRUST_FILE_NAME
        if candidate.is_file():
            return candidate
    return None


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def run_verify(path: Path, trust_path: Path | None, as_json: bool) -> int:
    """Verify the bundle at ``path``, print one line, return 0 (valid), 1 (invalid) or 2."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return _error(f"cannot read bundle {str(path)!r}: {exc.strerror or exc}")
    if trust_path is None:
        trust_path = find_trust(path)
    trust: Trust | None = None
    if trust_path is not None:
        try:
            trust = load_trust(trust_path)
        except OSError as exc:
            return _error(f"cannot read trust file {str(trust_path)!r}: {exc.strerror or exc}")
        except CryptoError as exc:
            return _error(f"trust file {str(trust_path)!r} is not usable: {exc}")
    verdict = verify_bundle(data, trust, accept_bundled_anchors=trust is None)
    if as_json:
        out = verdict.to_json()
        out["trust"] = str(trust_path) if trust_path is not None else None
        print(json.dumps(out, ensure_ascii=False))
    else:
        print(verdict.line())
    return 0 if verdict.ok else 1
