"""Write the format and proof-bundle test vectors of docs/formats.md.

Run from the repository root::

    python tests/vectors/formats/generate.py            # intl and gm
    python tests/vectors/formats/generate.py --suite intl
    python tests/vectors/formats/generate.py --no-chain  # leave the chained bundles as they are

The chained bundles (``tests/vectors/bundles/*/chain/``) are written by
``tests/vectors/bundles/generate_chain.py``, which this script runs after the rest: they need
a live in-process consortium and are not byte-reproducible (see that script).

Everything is built with tally's own code (registrations, DeviceSigner, edge formats,
tally.merkle, Bundle) from fixed test keys and fixed times, so:

* ``intl`` (Ed25519 is deterministic) is reproduced byte for byte on every run; the tests
  check that the committed files equal what :func:`build` returns;
* ``gm`` SM2 signatures are randomised, so each run gives other signature bytes; the gm
  files were generated once and committed, and are checked by verifying them (the format
  vectors are "verify-only": public key, message, signature).

Test keys (public by design, never use them for anything else): the Ed25519 seed of
``name`` is SHA-256("tally test vector key: " + name); the SM2 private scalar is
``int(SHA-256("tally test vector sm2 key: " + name)) mod (n - 1) + 1`` and its public key
is computed below by plain affine arithmetic on the SM2 curve (GB/T 32918.5).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tally import formats as F
from tally.crypto import GM, INTL, SigningKey, Suite, cbor, get_suite, parse_sign1
from tally.crypto.cose import sig_structure
from tally.device.envelope import DeviceSigner, Measurement
from tally.device.registration import (
    Assurance,
    Registration,
    Revocation,
    sign_registration,
    sign_revocation,
)
from tally.device.trust import Trust
from tally.edge.formats import (
    BatchHeader,
    Event,
    Gap,
    Receipt,
    Summary,
    encode_upload,
    sign_object,
)
from tally.merkle import Hasher, Tree
from tally.verify.bundle import Bundle, decode_bundle
from tally.verify.verifier import verify_bundle

VECTORS = Path(__file__).resolve().parents[1]
SOURCE = "tests/vectors/formats/generate.py (fixed test keys and times)"
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, ms since the Unix epoch
MINUTE = 60_000
PASSPHRASE = "tally test vector passphrase"

# -- test keys -------------------------------------------------------------------------------

SM2_P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
SM2_A = SM2_P - 3
SM2_N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
SM2_G = (
    0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7,
    0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0,
)
Point = tuple[int, int] | None


def _sm2_add(p: Point, q: Point) -> Point:
    if p is None:
        return q
    if q is None:
        return p
    if p[0] == q[0] and (p[1] + q[1]) % SM2_P == 0:
        return None
    if p == q:
        lam = (3 * p[0] * p[0] + SM2_A) * pow(2 * p[1], -1, SM2_P) % SM2_P
    else:
        lam = (q[1] - p[1]) * pow(q[0] - p[0], -1, SM2_P) % SM2_P
    x = (lam * lam - p[0] - q[0]) % SM2_P
    return x, (lam * (p[0] - x) - p[1]) % SM2_P


def _sm2_public(d: int) -> bytes:
    r: Point = None
    p: Point = SM2_G
    while d:
        if d & 1:
            r = _sm2_add(r, p)
        p = _sm2_add(p, p)
        d >>= 1
    assert r is not None
    return r[0].to_bytes(32, "big") + r[1].to_bytes(32, "big")


def test_key(suite: Suite, name: str) -> SigningKey:
    """The fixed test key called ``name`` in ``suite``."""
    if suite is INTL:
        return SigningKey(INTL, hashlib.sha256(f"tally test vector key: {name}".encode()).digest())
    h = hashlib.sha256(f"tally test vector sm2 key: {name}".encode()).digest()
    d = int.from_bytes(h, "big") % (SM2_N - 1) + 1
    return SigningKey(GM, d.to_bytes(32, "big"), _sm2_public(d))


# -- JSON form of CBOR values ----------------------------------------------------------------


def jsonable(obj: Any) -> Any:
    """CBOR value → JSON: bytes as {"hex"}, decimals as {"decimal"}, tags as {"tag", "value"},
    maps with non-text keys as {"map": [[k, v], ...]}."""
    if isinstance(obj, bytes):
        return {"hex": obj.hex()}
    if isinstance(obj, Decimal):
        return {"decimal": str(obj)}
    if isinstance(obj, cbor.Tag):
        return {"tag": obj.number, "value": jsonable(obj.value)}
    if isinstance(obj, list | tuple):
        return [jsonable(x) for x in obj]
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: jsonable(v) for k, v in obj.items()}
        return {"map": [[jsonable(k), jsonable(v)] for k, v in obj.items()]}
    return obj


def from_jsonable(obj: Any) -> Any:
    """The inverse of :func:`jsonable`."""
    if isinstance(obj, list):
        return [from_jsonable(x) for x in obj]
    if isinstance(obj, dict):
        if set(obj) == {"hex"}:
            return bytes.fromhex(obj["hex"])
        if set(obj) == {"decimal"}:
            return Decimal(obj["decimal"])
        if set(obj) == {"tag", "value"}:
            return cbor.Tag(obj["tag"], from_jsonable(obj["value"]))
        if set(obj) == {"map"}:
            return {from_jsonable(k): from_jsonable(v) for k, v in obj["map"]}
        return {k: from_jsonable(v) for k, v in obj.items()}
    return obj


def dump_json(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode()


# -- the scenario ----------------------------------------------------------------------------


@dataclass
class Scenario:
    """Every object of one suite's vectors, built with tally's code."""

    suite: Suite
    keys: dict[str, SigningKey] = field(default_factory=dict)
    signed: dict[str, tuple[SigningKey, bytes]] = field(default_factory=dict)
    regs: dict[str, bytes] = field(default_factory=dict)
    items: list[bytes] = field(default_factory=list)
    names: dict[str, int] = field(default_factory=dict)
    trust: Trust = field(init=False)
    tree: Tree = field(init=False)
    header: bytes = field(init=False)
    receipt: bytes = field(init=False)

    def key(self, name: str) -> SigningKey:
        if name not in self.keys:
            self.keys[name] = test_key(self.suite, name)
        return self.keys[name]

    def add(self, name: str, key: SigningKey, cose: bytes, in_batch: bool = False) -> bytes:
        self.signed[name] = (key, cose)
        if in_batch:
            self.names[name] = len(self.items)
            self.items.append(cose)
        return cose


def registration(
    sc: Scenario,
    kind: str,
    id_: str,
    org: str,
    site: str,
    profile: str,
    level: Assurance,
    with_key: bool = True,
    signer: str | None = None,
    t: int = T0 - 86_400_000,
) -> bytes:
    pub = sc.key(id_).public.raw if with_key else b""
    reg = Registration(kind, id_, org, site, profile, sc.suite.name, pub, level, t)
    return sign_registration(sc.key(signer or org), reg)


def build_scenario(suite: Suite) -> Scenario:
    sc = Scenario(suite)
    h = suite.hash
    trust_orgs = ("acme", "bank")
    sc.trust = Trust(suite, {o: sc.key(o).public for o in trust_orgs})

    reg = sc.regs
    reg["lc-03"] = registration(
        sc, "device", "site-1/lc-03", "acme", "site-1", "load_cell", Assurance.DEVICE
    )
    reg["scale-07"] = registration(
        sc,
        "device",
        "site-1/scale-07",
        "acme",
        "site-1",
        "platform_scale",
        Assurance.EDGE,
        with_key=False,
    )
    reg["edge-1"] = registration(sc, "edge", "edge-1", "acme", "site-1", "", Assurance.DEVICE)
    reg["cloud-1"] = registration(sc, "cloud", "cloud-1", "bank", "", "", Assurance.DEVICE)
    reg["lc-04"] = registration(
        sc, "device", "site-1/lc-04", "acme", "site-1", "load_cell", Assurance.DEVICE
    )
    for name in ("lc-03", "scale-07", "edge-1", "cloud-1"):
        sc.add(f"registration-{name}", sc.key("bank" if name == "cloud-1" else "acme"), reg[name])
    rev = Revocation("site-1/lc-02", "acme", T0 - 3_600_000, "key compromised")
    sc.add("revocation", sc.key("acme"), sign_revocation(sc.key("acme"), rev))

    fw = h(b"tally simulated firmware load_cell 1.4.2")
    lc = DeviceSigner(
        "site-1/lc-03",
        sc.key("site-1/lc-03"),
        fw,
        boot=0,
        ctr=40,
        prev=h(b"tally test vector: stand-in for envelope 39"),
    )
    sim = (("sim", "1"),)
    for i, kg in enumerate(("1234.5", "1234.5", "1113.25")):
        m = (Measurement("mass", Decimal(kg), "kg"),)
        sc.add(
            f"reading-{40 + i}",
            sc.key("site-1/lc-03"),
            lc.next(T0 + i * MINUTE, m, sim),
            in_batch=True,
        )
    sc.add("heartbeat", sc.key("site-1/lc-03"), lc.next(T0 + 3 * MINUTE, (), sim, True), True)

    scale = DeviceSigner(
        "site-1/scale-07", sc.key("edge-1"), h(b"tally simulated scale 2.0"), signer="edge-1"
    )
    for i in range(2):
        m = (Measurement("mass", Decimal(20_000 + 250 * i), "kg"),)
        sc.add(
            f"reading-edge-signed-{i}",
            sc.key("edge-1"),
            scale.next(T0 + i * MINUTE + 500, m, sim),
            in_batch=True,
        )

    ev = Event(
        "edge-1",
        "site-1",
        3,
        "load-drop",
        "weight.drop",
        "warning",
        T0 + 2 * MINUTE + 900,
        ("site-1/lc-03",),
        (h(sc.signed["reading-42"][1]),),
        (("drop_kg", Decimal("121.25")), ("window_s", 60)),
    )
    sc.add(
        "event",
        sc.key("edge-1"),
        sign_object(sc.key("edge-1"), F.CTY_EVENT, "edge-1", ev.to_cbor()),
        True,
    )
    gap = Gap("edge-1", "site-1/lc-03", 0, 30, 39, "not received", T0 + 5_000)
    sc.add(
        "gap",
        sc.key("edge-1"),
        sign_object(sc.key("edge-1"), F.CTY_GAP, "edge-1", gap.to_cbor()),
        True,
    )

    th = DeviceSigner("site-1/th-01", sc.key("site-1/th-01"), h(b"tally simulated th 0.9"))
    condensed = Tree(Hasher.for_name(suite.hash_name))
    temps = [Decimal("4.5") + Decimal(i % 3) / 2 for i in range(10)]
    for i, c in enumerate(temps):
        condensed.append(th.next(T0 - 600_000 + i * MINUTE, (Measurement("temp", c, "Cel"),), sim))
    summ = Summary(
        "edge-1",
        "site-1/th-01",
        0,
        0,
        9,
        10,
        condensed.root(),
        (("temp", min(temps), max(temps), sum(temps, Decimal(0)), "Cel"),),
        T0 + 6_000,
    )
    sc.add(
        "summary",
        sc.key("edge-1"),
        sign_object(sc.key("edge-1"), F.CTY_SUMMARY, "edge-1", summ.to_cbor()),
        True,
    )

    tree = Tree(Hasher.for_name(suite.hash_name))
    tree.extend(sc.items)
    hdr = BatchHeader(
        "edge-1",
        "site-1",
        suite.name,
        12,
        h(b"tally test vector: stand-in for batch header 11"),
        T0,
        T0 + 5 * MINUTE,
        tree.size,
        tree.root(),
    )
    header = sc.add(
        "batch-header",
        sc.key("edge-1"),
        sign_object(sc.key("edge-1"), F.CTY_BATCH, "edge-1", hdr.to_cbor()),
    )
    sc.tree = tree
    sc.header = header
    sc.receipt = receipt(sc, ctr=12, header_hash=h(header), n=tree.size)
    sc.add("receipt", sc.key("cloud-1"), sc.receipt)
    return sc


def receipt(sc: Scenario, ctr: int, header_hash: bytes, n: int, edge: str = "edge-1") -> bytes:
    rc = Receipt("cloud-1", edge, ctr, header_hash, n, T0 + 5 * MINUTE + 2_000, False)
    return sign_object(sc.key("cloud-1"), F.CTY_RECEIPT, "cloud-1", rc.to_cbor())


# -- bundles ---------------------------------------------------------------------------------


def bundle_for(sc: Scenario, name: str, regs: list[str], with_receipt: bool, **over: Any) -> Bundle:
    index = sc.names[name]
    tree: Tree = sc.tree
    fields: dict[str, Any] = {
        "suite": sc.suite.name,
        "item": sc.items[index],
        "index": index,
        "size": tree.size,
        "path": tuple(tree.inclusion_proof(index, tree.size)),
        "header": sc.header,
        "registrations": tuple(sc.regs[r] for r in regs),
        "anchors": {o: k.raw for o, k in sc.trust.orgs.items()},
        "receipt": sc.receipt if with_receipt else None,
    }
    fields.update(over)
    return Bundle(**fields)


def flip(data: bytes, pos: int, bit: int = 0) -> bytes:
    return data[:pos] + bytes((data[pos] ^ (1 << bit),)) + data[pos + 1 :]


def flip_last_of(cose: bytes, part: bytes) -> bytes:
    """Flip the low bit of the last byte of ``part`` (a field) inside ``cose``."""
    return flip(cose, cose.index(part) + len(part) - 1)


@dataclass
class Case:
    file: str
    data: bytes
    expect: str  # "VALID …" line, or the INVALID reason prefix
    trust: bool = True
    accept: bool = False
    note: str = ""


def bundle_cases(sc: Scenario) -> list[Case]:
    s = sc.suite.name
    reading = ["lc-03", "edge-1", "cloud-1"]
    valid = bundle_for(sc, "reading-41", reading, True)
    vb = valid.encode()
    item = valid.item
    payload = parse_sign1(item).payload
    h = sc.suite.hash
    ok = "VALID reading site-1/lc-03 boot 0 ctr 41 (assurance device) in batch edge-1#12"
    cases = [
        Case(
            f"{s}/valid-reading.cbor",
            vb,
            f"{ok} — anchors: acme, bank (pinned)",
            note="a device-signed reading with the cloud's receipt",
        ),
        Case(
            f"{s}/valid-reading.cbor",
            vb,
            f"{ok} — anchors not pinned: acme, bank (taken from the bundle)",
            trust=False,
            accept=True,
            note="the same bundle checked against its own anchors",
        ),
        Case(
            f"{s}/valid-reading.cbor",
            vb,
            "anchors: no trust anchors pinned",
            trust=False,
            note="no trust file and bundled anchors not accepted",
        ),
        Case(
            f"{s}/valid-event.cbor",
            bundle_for(sc, "event", ["edge-1", "cloud-1"], True).encode(),
            "VALID event edge-1 seq 3 rule load-drop (warning) in batch edge-1#12"
            " — anchors: acme, bank (pinned)",
            note="an edge event",
        ),
    ]
    if s == "gm":
        other = test_key(INTL, "site-1/lc-03")
        mixed_item = DeviceSigner("site-1/lc-03", other, b"").next(T0)
        cases += [
            Case(
                "gm/flip-item-bit.cbor",
                vb.replace(item, flip_last_of(item, payload[-32:])),
                "item signature: signature does not verify (signer 'site-1/lc-03', alg -65601)",
            ),
            Case(
                "gm/flip-path-bit.cbor",
                bundle_for(
                    sc, "reading-41", reading, True, path=(flip(valid.path[0], 0), *valid.path[1:])
                ).encode(),
                "inclusion proof: root mismatch: header root",
            ),
            Case(
                "gm/wrong-suite.cbor",
                bundle_for(sc, "reading-41", reading, True, suite="intl").encode(),
                "suite: bundle suite 'intl', trust file suite 'gm'",
            ),
            Case(
                "gm/mixed-suite.cbor",
                bundle_for(sc, "reading-41", reading, True, item=mixed_item).encode(),
                "suite: item is signed with alg -8 (intl), bundle suite 'gm' uses alg -65601",
            ),
        ]
        return cases

    root = sc.tree.root()
    sig_item = item[:-1] + bytes((item[-1] ^ 1,))
    mallory = test_key(sc.suite, "mallory")

    def reg_variant(**kw: Any) -> bytes:
        base = dict(
            kind="device",
            id="site-1/lc-03",
            org="acme",
            site="site-1",
            profile="load_cell",
            suite=s,
            pub=sc.key("site-1/lc-03").public.raw,
            assurance=Assurance.DEVICE,
            t=T0 - 86_400_000,
        )
        signer = kw.pop("_signer", None)
        base.update(kw)
        r = Registration(**base)  # type: ignore[arg-type]
        return sign_registration(signer or sc.key(r.org), r)

    def with_regs(first: bytes) -> dict[str, Any]:
        return {"registrations": (first, sc.regs["edge-1"], sc.regs["cloud-1"])}

    def b(**over: Any) -> bytes:
        return bundle_for(sc, "reading-41", reading, True, **over).encode()

    anchors_forged = {"acme": mallory.public.raw, "bank": sc.key("bank").public.raw}
    cases += [
        Case(
            "intl/valid-heartbeat.cbor",
            bundle_for(sc, "heartbeat", reading, False).encode(),
            "VALID heartbeat site-1/lc-03 boot 0 ctr 43 (assurance device) in batch edge-1#12"
            " — anchors: acme (pinned)",
            note="a heartbeat, no receipt",
        ),
        Case(
            "intl/valid-edge-signed.cbor",
            bundle_for(sc, "reading-edge-signed-1", ["scale-07", "edge-1"], False).encode(),
            "VALID reading site-1/scale-07 boot 0 ctr 1 (assurance edge) in batch edge-1#12"
            " — anchors: acme (pinned)",
            note="a device that cannot sign; the edge signs for it",
        ),
        Case(
            "intl/valid-gap.cbor",
            bundle_for(sc, "gap", ["edge-1", "cloud-1"], True).encode(),
            "VALID gap site-1/lc-03 boot 0 ctr 30..39 (certified by edge-1) in batch edge-1#12"
            " — anchors: acme, bank (pinned)",
            note="a gap certificate",
        ),
        Case(
            "intl/valid-summary.cbor",
            bundle_for(sc, "summary", ["edge-1"], False).encode(),
            "VALID summary site-1/th-01 boot 0 ctr 0..9 n 10 (condensed by edge-1) in batch"
            " edge-1#12 — anchors: acme (pinned)",
            note="a summary, the last leaf (index 8)",
        ),
        Case(
            "intl/flip-item-bit.cbor",
            b(item=flip_last_of(item, payload[-32:])),
            "item signature: signature does not verify (signer 'site-1/lc-03', alg -8)",
            note="low bit of the last byte of the reading's prev hash flipped",
        ),
        Case(
            "intl/flip-signature-bit.cbor",
            b(item=sig_item),
            "item signature: signature does not verify (signer 'site-1/lc-03', alg -8)",
            note="low bit of the item's last signature byte flipped",
        ),
        Case(
            "intl/flip-path-bit.cbor",
            b(path=(flip(valid.path[0], 0), *valid.path[1:])),
            "inclusion proof: root mismatch: header root",
            note="bit 0 of path[0] flipped",
        ),
        Case(
            "intl/flip-header-bit.cbor",
            b(header=flip_last_of(sc.header, root)),
            "batch header: signature does not verify (signer 'edge-1', alg -8)",
            note="low bit of the last byte of the header's root flipped",
        ),
        Case(
            "intl/other-reading.cbor",
            b(item=sc.signed["reading-42"][1]),
            "inclusion proof: root mismatch: header root",
            note="a validly signed reading (ctr 42) with the proof of ctr 41",
        ),
        Case(
            "intl/wrong-index.cbor",
            b(index=0),
            "inclusion proof: root mismatch: header root",
            note="index 0 instead of 1",
        ),
        Case(
            "intl/index-out-of-range.cbor",
            b(index=9),
            "inclusion proof: index 9 out of range for tree size 9",
        ),
        Case("intl/wrong-size.cbor", b(size=8), "inclusion proof: bundle size 8, header n 9"),
        Case(
            "intl/short-path.cbor",
            b(path=valid.path[:-1]),
            "inclusion proof: wrong proof size 3, want 4",
        ),
        Case(
            "intl/swapped-registration.cbor",
            b(**with_regs(sc.regs["lc-04"])),
            "item: device 'site-1/lc-03' has no registration in the bundle",
            note="the device's registration replaced by another device's",
        ),
        Case(
            "intl/rekeyed-registration.cbor",
            b(**with_regs(reg_variant(pub=sc.key("site-1/lc-03b").public.raw))),
            "item signature: signature does not verify (signer 'site-1/lc-03', alg -8)",
            note="a genuine registration of the device with another key",
        ),
        Case(
            "intl/forged-registration.cbor",
            b(**with_regs(reg_variant(_signer=mallory))),
            "registration of 'site-1/lc-03': signature does not verify (signer 'acme', alg -8)",
            note="registration claiming org acme, signed by another key",
        ),
        Case(
            "intl/unknown-org.cbor",
            b(**with_regs(reg_variant(org="mallory", _signer=mallory))),
            "registration of 'site-1/lc-03': organisation 'mallory' is not a trust anchor",
        ),
        Case(
            "intl/other-site.cbor",
            b(**with_regs(reg_variant(site="site-2"))),
            "device site: device 'site-1/lc-03' is registered at site 'site-2',"
            " the batch is from site 'site-1'",
        ),
        Case(
            "intl/no-edge-registration.cbor",
            b(registrations=(sc.regs["lc-03"], sc.regs["cloud-1"])),
            "batch header: edge 'edge-1' has no registration in the bundle",
        ),
        Case(
            "intl/forged-anchor.cbor",
            b(anchors=anchors_forged),
            "anchors: bundle anchor 'acme' differs from the trust file's key",
        ),
        Case(
            "intl/receipt-wrong-ctr.cbor",
            b(receipt=receipt(sc, 11, h(sc.header), 9)),
            "receipt: batch ctr 11, header ctr 12",
        ),
        Case(
            "intl/receipt-wrong-header.cbor",
            b(receipt=receipt(sc, 12, h(b"other"), 9)),
            "receipt: header hash mismatch: receipt",
        ),
        Case("intl/trailing-bytes.cbor", vb + b"\x00\x00", "bundle: 2 trailing bytes"),
        Case("intl/truncated.cbor", vb[:-7], "bundle: malformed CBOR"),
        Case(
            "intl/wrong-suite.cbor",
            b(suite="gm"),
            "suite: bundle suite 'gm', trust file suite 'intl'",
        ),
        Case(
            "intl/unknown-suite.cbor",
            b(suite="rsa"),
            "suite: unknown crypto suite or algorithm 'rsa'",
        ),
    ]
    return cases


def check_cases(sc: Scenario, cases: list[Case]) -> None:
    """Stop if any case does not verify or fail as it says (catches generator mistakes)."""
    for c in cases:
        v = verify_bundle(c.data, sc.trust if c.trust else None, c.accept)
        got = v.line() if v.ok else v.reason
        if not (got == c.expect if c.expect.startswith("VALID") else got.startswith(c.expect)):
            raise SystemExit(f"{c.file}: expected {c.expect!r}, got {got!r}")


# -- format vectors --------------------------------------------------------------------------


def signed_vector(sc: Scenario, name: str, decoder: Callable[[bytes], Any] | None = None) -> Any:
    key, cose = sc.signed[name]
    msg = parse_sign1(cose)
    out: dict[str, Any] = {
        "name": name,
        "suite": sc.suite.name,
        "source": SOURCE,
        "cty": msg.content_type,
        "kid": msg.kid,
        "key": {"alg": msg.alg, "public": key.public.raw.hex()},
    }
    if sc.suite is INTL:
        out["key"]["seed"] = key.secret_bytes().hex()
        out["key"]["note"] = "test key, public by design"
    else:
        out["verify_only"] = True
    out.update(
        {
            "payload": msg.payload.hex(),
            "protected": msg.protected.hex(),
            "sig_structure": sig_structure(msg.protected, msg.payload).hex(),
            "signature": msg.signature.hex(),
            "cose": cose.hex(),
            "hash": sc.suite.hash(cose).hex(),
            "decoded": jsonable(cbor.decode(msg.payload)),
        }
    )
    return out


def keyfile(suite: Suite, key: SigningKey) -> bytes:
    """A key file per crypto/keystore.py, with a fixed salt and nonce (so it is reproducible)."""
    salt = hashlib.sha256(b"tally test vector salt").digest()[:16]
    nonce = hashlib.sha256(b"tally test vector nonce").digest()[:12]
    n, r, p = 1024, 8, 1
    kek = hashlib.scrypt(PASSPHRASE.encode(), salt=salt, n=n, r=r, p=p, dklen=suite.aead_key_size)
    aad = b"tally.key" + key.public.raw
    if suite is INTL:
        ct = nonce + AESGCM(kek).encrypt(nonce, key.secret_bytes(), aad)
    else:
        enc = Cipher(algorithms.SM4(kek), modes.GCM(nonce)).encryptor()
        enc.authenticate_additional_data(aad)
        body = enc.update(key.secret_bytes()) + enc.finalize()
        ct = nonce + body + enc.tag
    kdf = {"alg": "scrypt", "n": n, "r": r, "p": p, "salt": salt}
    return cbor.encode(
        {
            "v": 1,
            "kind": "tally.key",
            "suite": suite.name,
            "pub": key.public.raw,
            "kdf": kdf,
            "ct": ct,
        }
    )


def unsigned_vector(sc: Scenario, name: str, data: bytes, **extra: Any) -> Any:
    out = {"name": name, "suite": sc.suite.name, "source": SOURCE, "cbor": data.hex()}
    out.update(extra)
    out["decoded"] = jsonable(cbor.decode(data))
    return out


def format_vectors(sc: Scenario, cases: list[Case]) -> dict[str, Any]:
    s = sc.suite.name
    names = [
        "registration-lc-03",
        "registration-scale-07",
        "registration-edge-1",
        "registration-cloud-1",
        "revocation",
        "reading-41",
        "heartbeat",
        "reading-edge-signed-1",
        "event",
        "gap",
        "summary",
        "batch-header",
        "receipt",
    ]
    out: dict[str, Any] = {f"{s}-{n}": signed_vector(sc, n) for n in names}
    trust: Trust = sc.trust
    out[f"{s}-trust"] = unsigned_vector(sc, "trust", trust.to_cbor())
    out[f"{s}-upload"] = unsigned_vector(sc, "upload", encode_upload(sc.header, sc.items))
    edge = sc.key("edge-1")
    out[f"{s}-keyfile"] = unsigned_vector(
        sc,
        "keyfile",
        keyfile(sc.suite, edge),
        passphrase=PASSPHRASE,
        public=edge.public.raw.hex(),
        note="the key of edge-1; test key, public by design",
    )
    vb = cases[0].data
    bd = decode_bundle(vb)
    hasher = Hasher.for_name(sc.suite.hash_name)
    out[f"{s}-bundle"] = unsigned_vector(
        sc,
        "bundle",
        vb,
        leaf_hash=hasher.hash_leaf(bd.item).hex(),
        root=sc.tree.root().hex(),
        line=cases[0].expect,
    )
    return out


def cbor_vectors() -> dict[str, Any]:
    """Suite-independent deterministic CBOR vectors: encodings and rejections."""
    good: list[tuple[str, Any]] = [
        ("0", 0),
        ("23", 23),
        ("24", 24),
        ("255", 255),
        ("256", 256),
        ("65536", 65536),
        ("-1", -1),
        ("-25", -25),
        ("2**32", 1 << 32),
        ("text", "a/ü"),
        ("bytes", b"\x01\x02"),
        ("empty array", []),
        ("true", True),
        ("false", False),
        ("null", None),
        ("decimal 1234.5", Decimal("1234.5")),
        ("decimal 1.50 normalised", Decimal("1.50")),
        ("decimal 100", Decimal("100")),
        ("decimal -0.001", Decimal("-0.001")),
        ("decimal 0.0", Decimal("0.0")),
        ("map keys sorted by encoded bytes", {"t": 1, "m": [], "dev": "d", "boot": 0, 10: 1}),
        ("COSE protected header", {1: -8, 3: F.CTY_READING, 4: b"site-1/lc-03"}),
    ]
    bad = [
        ("1817", "not the deterministic encoding", "23 with a 1-byte argument"),
        ("19001f", "not the deterministic encoding", "31 with a 2-byte argument"),
        ("a2617401616101", "not the deterministic encoding", "map keys out of order"),
        ("9f01ff", "not the deterministic encoding", "indefinite-length array"),
        ("f93c00", "not allowed", "half-precision float 1.0"),
        ("fb3ff0000000000000", "not allowed", "double 1.0"),
        ("c482211896", "not the deterministic encoding", "decimal 1.50 not normalised"),
        ("0000", "1 trailing bytes", "trailing byte"),
        ("", "empty input", "no bytes"),
        ("c11a00000000", "not allowed", "tag 1 (date) is not a tally type"),
    ]
    return {
        "name": "cbor-deterministic",
        "source": SOURCE,
        "encode": [
            {"what": w, "value": jsonable(v), "cbor": cbor.encode(v).hex()} for w, v in good
        ],
        "reject": [{"what": w, "cbor": x, "reason": r} for x, r, w in bad],
    }


def build(suite_name: str) -> dict[str, bytes]:
    """Every vector file of one suite: path relative to tests/vectors → bytes."""
    suite = get_suite(suite_name)
    sc = build_scenario(suite)
    cases = bundle_cases(sc)
    check_cases(sc, cases)
    files: dict[str, bytes] = {}
    trust: Trust = sc.trust
    files[f"bundles/{suite_name}/trust.cbor"] = trust.to_cbor()
    for c in cases:
        files[f"bundles/{c.file}"] = c.data
    for name, obj in format_vectors(sc, cases).items():
        files[f"formats/{name}.json"] = dump_json(obj)
    if suite is INTL:
        files["formats/cbor-deterministic.json"] = dump_json(cbor_vectors())
    files[f"bundles/manifest-{suite_name}.json"] = dump_json(
        {
            "source": SOURCE,
            "suite": suite_name,
            "cases": [
                {
                    "file": c.file,
                    "trust": f"{suite_name}/trust.cbor" if c.trust else None,
                    "accept_bundled_anchors": c.accept,
                    "valid": c.expect.startswith("VALID"),
                    ("line" if c.expect.startswith("VALID") else "reason_prefix"): c.expect,
                    "note": c.note,
                }
                for c in cases
            ],
        }
    )
    return files


def chain_generator() -> Any:
    """tests/vectors/bundles/generate_chain.py: the chained bundles (a live consortium)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "tally_chain_vector_generator", VECTORS / "bundles" / "generate_chain.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--suite", choices=["intl", "gm", "all"], default="all")
    ap.add_argument(
        "--no-chain",
        action="store_true",
        help="do not rewrite the chained bundles (not reproducible)",
    )
    args = ap.parse_args()
    for s in ("intl", "gm") if args.suite == "all" else (args.suite,):
        for rel, data in build(s).items():
            path = VECTORS / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            print(f"wrote {path.relative_to(VECTORS.parents[1])}")
        if not args.no_chain:
            chain = chain_generator()
            chain.write(chain.build_chain(s))


if __name__ == "__main__":
    main()
