"""Sealing of organisations' sensitive fields (field envelopes of :mod:`tally.cloud.fieldcrypt`).

An organisation's sensitive fields (USCC, legal representative's id number, bank account,
financial statements …) are one JSON object — keys sorted, decimals as strings — encrypted
with :class:`~tally.cloud.fieldcrypt.FieldCipher` for the organisation's own tenant under
``FieldRef("v_orgs", "sensitive", org_id)`` and stored in ``v_orgs.sensitive``. The AAD binds
the envelope to that tenant and row: copied to another organisation's row it does not open.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from tally.cloud.errors import BadRequest
from tally.cloud.fieldcrypt import FieldCipher, FieldCryptError, FieldRef


def sensitive_ref(org_id: str) -> FieldRef:
    """Where an organisation's sealed sensitive fields live."""
    return FieldRef("v_orgs", "sensitive", org_id)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"sensitive field value of type {type(value).__name__} is not JSON")


def seal_sensitive(cipher: FieldCipher | None, org_id: str, data: Mapping[str, Any]) -> bytes:
    """The envelope of ``data`` (JSON; decimals as strings) for ``org_id``'s tenant."""
    if cipher is None:
        raise FieldCryptError(
            f"org {org_id!r}: sensitive fields were given but the read model has no field "
            "cipher to seal them; open Views with a FieldCipher"
        )
    if not isinstance(data, Mapping) or not all(isinstance(k, str) for k in data):
        raise BadRequest(f"org {org_id!r}: sensitive fields must be a mapping of names to values")
    try:
        plain = json.dumps(dict(data), sort_keys=True, ensure_ascii=False, default=_json_default)
    except TypeError as exc:
        raise BadRequest(f"org {org_id!r}: {exc}") from None
    cipher.ensure_key(org_id)
    return cipher.encrypt(org_id, sensitive_ref(org_id), plain.encode("utf-8"))
