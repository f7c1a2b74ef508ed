"""The enterprise knowledge graph, its analytics and objective credit (see docs/graph.md).

Modules: ``records`` (what the graph is built from) and ``record_json`` (their JSON form),
``store`` (the incremental typed graph), ``load`` (a directory of JSON-lines records),
``ledger_state`` (records from the finance contracts' state), ``cycles`` (components and
bounded cycle enumeration), ``queries`` (supplier tiers, relatives, guarantee circles),
``exposure`` and ``contagion``, ``patterns`` (shell companies, circular trades), ``signals``
and ``mining`` (financing needs), ``features``, ``scorecard`` and ``calibrate`` (objective
credit), ``brief`` (the daily brief). Pure Python: no I/O but ``load``, no clock,
deterministic answers.
"""
