"""The state keys of the finance contracts (layout in docs/formats.md §27–31).

Build keys with these functions rather than by hand, so that the contracts, the bank's monitor
and any reader of the state agree byte for byte::

    party/<id>                        a registered party (an SME acting through consents)
    commodity/<name>                  unit and stock tolerance of a commodity
    stock/<site>/<location>           the latest measured stock at a storage location
    rcpt/<no>                         an electronic warehouse receipt
    rloc/<site>/<location>/<no>       weight of a live receipt at a location (the stock index)
    relord/<site>/<id>                a release order for the site's edge
    price/<commodity>                 the current price of a commodity
    params/<bank>/<commodity>         a bank's lending parameters for a commodity
    loan/<id>                         a loan

Identifiers placed in keys (party ids, receipt numbers, sites, locations) never contain "/",
so that a prefix range over ``rloc/<site>/<location>/`` holds exactly that location's receipts.
"""

from __future__ import annotations

PARTY = "party/"
COMMODITY = "commodity/"
STOCK = "stock/"
RCPT = "rcpt/"
RLOC = "rloc/"
RELORD = "relord/"
PRICE = "price/"
PARAMS = "params/"
LOAN = "loan/"


def party_key(party: str) -> str:
    """``party/<id>``: a party registered by its sponsoring bank."""
    return PARTY + party


def commodity_key(name: str) -> str:
    """``commodity/<name>``: unit and tolerance of a commodity."""
    return COMMODITY + name


def stock_key(site: str, location: str) -> str:
    """``stock/<site>/<location>``: the latest measured stock at a location."""
    return f"{STOCK}{site}/{location}"


def receipt_key(no: str) -> str:
    """``rcpt/<no>``: an electronic warehouse receipt."""
    return RCPT + no


def rloc_prefix(site: str, location: str) -> str:
    """``rloc/<site>/<location>/``: the prefix of a location's live-receipt index."""
    return f"{RLOC}{site}/{location}/"


def rloc_key(site: str, location: str, no: str) -> str:
    """``rloc/<site>/<location>/<no>``: the weight of one live receipt at a location."""
    return rloc_prefix(site, location) + no


def relord_prefix(site: str) -> str:
    """``relord/<site>/``: the prefix of a site's release orders."""
    return f"{RELORD}{site}/"


def relord_key(site: str, order: str) -> str:
    """``relord/<site>/<id>``: one release order for the site's edge."""
    return relord_prefix(site) + order


def price_key(commodity: str) -> str:
    """``price/<commodity>``: the current price of a commodity."""
    return PRICE + commodity


def params_key(bank: str, commodity: str) -> str:
    """``params/<bank>/<commodity>``: a bank's lending parameters for a commodity."""
    return f"{PARAMS}{bank}/{commodity}"


def loan_key(loan: str) -> str:
    """``loan/<id>``: a loan."""
    return LOAN + loan
