"""Proof bundles built from storage: one stored item, provable offline.

The inclusion path is recomputed from the batch's stored items (the Merkle leaves are their
COSE bytes, in batch order) and checked against the root in the stored header before the bundle
is handed out, so a damaged database yields an error rather than a bundle that cannot verify.
"""

from __future__ import annotations

from tally.cloud.errors import NotFound, StorageError
from tally.cloud.storage.api import ItemRecord, Storage
from tally.crypto import parse_sign1
from tally.device.registration import decode_registration
from tally.device.trust import Trust
from tally.edge.formats import decode_batch_header
from tally.merkle import Hasher, MerkleError, Tree, verify_inclusion
from tally.verify.bundle import Bundle, ChainProof


def build_bundle(
    storage: Storage,
    trust: Trust,
    item: ItemRecord,
    cloud_id: str | None = None,
    cloud_registration: bytes | None = None,
    chain: ChainProof | None = None,
) -> Bundle:
    """The proof bundle of stored ``item``.

    ``registrations`` holds, in this order and without repeats, the registrations of the
    item's device, of its signer, of the batch's edge and of the cloud that signed the receipt
    (``cloud_id``: from storage, else ``cloud_registration``); ``anchors`` the root keys of
    their organisations. ``chain`` is the bundle's chain part (the anchoring of the batch up to
    a final checkpoint, :meth:`tally.cloud.anchoring.LedgerLink.chain_proof`), when the batch
    is anchored and final. Raises NotFound when the batch is gone and StorageError when the
    stored items do not give the header's root.
    """
    batch = storage.batch_by_id(item.batch_id)
    if batch is None:
        raise NotFound(f"batch of item {item.hash.hex()} is not stored")
    hasher = Hasher.for_name(trust.suite.hash_name)
    tree = Tree(hasher)
    tree.extend(storage.batch_items(batch.id))
    if tree.size != batch.n:
        raise StorageError(f"batch {batch.id} has {tree.size} stored items, header says {batch.n}")
    path = tree.inclusion_proof(item.index, batch.n)
    header_root = decode_batch_header(parse_sign1(batch.header).payload).root
    try:
        leaf = hasher.hash_leaf(item.cose)
        verify_inclusion(hasher, item.index, batch.n, leaf, path, header_root)
    except MerkleError as exc:
        raise StorageError(f"stored batch {batch.id} does not prove item: {exc}") from exc

    wanted = [s for s in (item.device, item.signer, batch.edge, cloud_id) if s]
    regs = storage.registrations(wanted)
    raws: list[bytes] = []
    orgs: list[str] = []
    for subject in dict.fromkeys(wanted):
        reg = regs.get(subject)
        if reg is None:
            continue
        raws.append(reg.raw)
        orgs.append(reg.org)
    if cloud_id is not None and cloud_id not in regs and cloud_registration is not None:
        raws.append(cloud_registration)
        orgs.append(decode_registration(parse_sign1(cloud_registration).payload).org)
    if item.signer not in regs and item.signer in trust.orgs:
        orgs.append(item.signer)  # an item signed by an organisation (assurance "manual")
    anchors = {o: trust.orgs[o].raw for o in dict.fromkeys(orgs) if o in trust.orgs}
    return Bundle(
        suite=trust.suite.name,
        item=item.cose,
        index=item.index,
        size=batch.n,
        path=tuple(path),
        header=batch.header,
        registrations=tuple(raws),
        anchors=anchors,
        receipt=batch.receipt,
        chain=chain,
    )
