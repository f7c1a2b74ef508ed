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
    doc/<hex>                         an anchored four-flow document (hex of its salted hash)
    use/<hex>                         the double-financing registry (hex of an identity hash)
    trade/<id>                        a trade and its reconciliation result
    note/<id>                         a receivable certificate (a spend-once note)
    noteroot/<root>                   conservation bookkeeping of a note's family
    credit/<bank>/<core>              a bank's credit line for a core enterprise
    limit/<bank>/<party>              a bank's financing limit for a party

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
DOC = "doc/"
USE = "use/"
TRADE = "trade/"
NOTE = "note/"
NOTEROOT = "noteroot/"
CREDIT = "credit/"
LIMIT = "limit/"


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


def doc_key(salted_hash: bytes) -> str:
    """``doc/<hex>``: an anchored document, by the lowercase hex of its salted hash."""
    return DOC + salted_hash.hex()


def use_key(identity_hash: bytes) -> str:
    """``use/<hex>``: what an invoice or waybill backs, by the hex of its identity hash."""
    return USE + identity_hash.hex()


def trade_key(trade: str) -> str:
    """``trade/<id>``: a trade and its attested reconciliation result."""
    return TRADE + trade


def note_key(note: str) -> str:
    """``note/<id>``: a receivable certificate."""
    return NOTE + note


def noteroot_key(root: str) -> str:
    """``noteroot/<root>``: issued, settled and live amounts of a note's family."""
    return NOTEROOT + root


def credit_key(bank: str, core: str) -> str:
    """``credit/<bank>/<core>``: a bank's credit line for a core enterprise."""
    return f"{CREDIT}{bank}/{core}"


def limit_key(bank: str, party: str) -> str:
    """``limit/<bank>/<party>``: a bank's financing limit for a party."""
    return f"{LIMIT}{bank}/{party}"
