"""Supply-chain finance on the consortium ledger: warehouse receipts, loans, money and
live collateral monitoring (see docs/finance.md)."""
