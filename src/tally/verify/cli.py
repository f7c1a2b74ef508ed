"""``tally verify BUNDLE [--genesis FILE] [--trust FILE] [--require-anchor] [--json]``.

Checks a proof bundle offline. Prints ONE line on standard output and returns the exit code:

* ``VALID reading site-1/lc-03 boot 0 ctr 41 (assurance device) in batch edge-1#12
  — anchors: acme (pinned)`` (on one line) and exit code 0; checked against a genesis,
  ``VALID … in batch edge-1#1 anchored in tx 5 of checkpoint 7 (signed by acme, bank, wh-1,
  quorum 3 of 4) — genesis 3f2a07c19b1c44d0``, or ``…, not anchored — genesis …``;
* ``INVALID: <reason>`` and exit code 1 (with ``--require-anchor``, also a bundle that is not
  proven anchored: ``INVALID: chain: not anchored: the bundle has no chain part``);
* with ``--json``, one JSON object (see :meth:`tally.verify.verdict.Verdict.to_json`, plus
  ``"genesis_file"`` and ``"trust"``: the files used, or null) instead, same exit codes;
* exit code 2, with ``error: …`` on standard error, when the arguments cannot be used: a
  missing or unreadable bundle, a missing or malformed genesis or trust file, a trust file
  that contradicts the genesis, ``--require-anchor`` without any genesis.

A transaction bundle (kind ``tally.txbundle``, :mod:`tally.verify.txverify`) is recognised by
its kind and checked against the genesis alone (a trust file given too must agree with it):
``VALID transaction 3f2a07c1… market.set_price("steel coil", 3800, "CNY") by bank → {…}:
ordered and endorsed under final checkpoint 7 (…); validity (MVCC) is the peers' verdict, not
proven here — genesis …``;
without a genesis it is exit code 2.

Without ``--genesis`` and ``--trust`` the anchors are looked for beside the bundle and one
directory up: ``genesis.cbor`` (in either place) is preferred to ``trust.cbor``. If none is
found the bundle's own anchors are accepted and the output says ``anchors not pinned``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tally.crypto import CryptoError
from tally.device.trust import Trust, load_trust
from tally.ledger.genesis import Genesis, load_genesis
from tally.verify.chain import trust_disagreement
from tally.verify.txbundle import TX_BUNDLE_KIND, bundle_kind
from tally.verify.txverify import TxVerdict, verify_tx_bundle
from tally.verify.verdict import Verdict
from tally.verify.verifier import verify_bundle

TRUST_FILE_NAME = "trust.cbor"
GENESIS_FILE_NAME = "genesis.cbor"


def _find(bundle_path: Path, name: str) -> Path | None:
    here = bundle_path.resolve().parent
    for d in (here, here.parent):
        candidate = d / name
        if candidate.is_file():
            return candidate
    return None


def find_trust(bundle_path: Path) -> Path | None:
    """``trust.cbor`` next to the bundle, else in the directory above; None if neither."""
    return _find(bundle_path, TRUST_FILE_NAME)


def find_genesis(bundle_path: Path) -> Path | None:
    """``genesis.cbor`` next to the bundle, else in the directory above; None if neither."""
    return _find(bundle_path, GENESIS_FILE_NAME)


def find_anchors(bundle_path: Path) -> tuple[Path | None, Path | None]:
    """(genesis, trust) to use when neither is given: a genesis if one is found, else a
    trust file if one is found (never both)."""
    genesis = find_genesis(bundle_path)
    if genesis is not None:
        return genesis, None
    return None, find_trust(bundle_path)


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def run_verify(
    path: Path,
    trust_path: Path | None,
    as_json: bool,
    genesis_path: Path | None = None,
    require_anchor: bool = False,
) -> int:
    """Verify the bundle at ``path``, print one line, return 0 (valid), 1 (invalid) or 2."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return _error(f"cannot read bundle {str(path)!r}: {exc.strerror or exc}")
    if trust_path is None and genesis_path is None:
        genesis_path, trust_path = find_anchors(path)
    genesis: Genesis | None = None
    if genesis_path is not None:
        try:
            genesis = load_genesis(genesis_path.read_bytes())
        except OSError as exc:
            return _error(f"cannot read genesis {str(genesis_path)!r}: {exc.strerror or exc}")
        except CryptoError as exc:
            return _error(f"genesis {str(genesis_path)!r} is not usable: {exc}")
    trust: Trust | None = None
    if trust_path is not None:
        try:
            trust = load_trust(trust_path)
        except OSError as exc:
            return _error(f"cannot read trust file {str(trust_path)!r}: {exc.strerror or exc}")
        except CryptoError as exc:
            return _error(f"trust file {str(trust_path)!r} is not usable: {exc}")
    if trust is not None and genesis is not None:
        why = trust_disagreement(trust, genesis)
        if why is not None:
            return _error(f"the trust file contradicts the genesis: {why}")
    verdict: Verdict | TxVerdict
    if bundle_kind(data) == TX_BUNDLE_KIND:
        if genesis is None:
            return _error(
                "a transaction bundle is checked against the consortium's genesis (--genesis"
                f" FILE, or {GENESIS_FILE_NAME} beside the bundle)"
            )
        verdict = verify_tx_bundle(data, genesis)
    elif require_anchor and genesis is None:
        return _error(
            "--require-anchor needs the consortium's genesis (--genesis FILE, or"
            f" {GENESIS_FILE_NAME} beside the bundle)"
        )
    else:
        verdict = verify_bundle(
            data,
            trust,
            accept_bundled_anchors=trust is None and genesis is None,
            genesis=genesis,
            require_anchor=require_anchor,
        )
    if as_json:
        out = verdict.to_json()
        out["genesis_file"] = str(genesis_path) if genesis_path is not None else None
        out["trust"] = str(trust_path) if trust_path is not None else None
        print(json.dumps(out, ensure_ascii=False))
    else:
        print(verdict.line())
    return 0 if verdict.ok else 1
