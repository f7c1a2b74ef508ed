"""Errors of the rules engine."""

from __future__ import annotations

from tally.config import ConfigError


class RuleConfigError(ConfigError):
    """Raised by ``RuleEngine.from_config`` when a rule's configuration is wrong.

    ``index`` is the rule's position in the site's list (from 0), ``rule_id`` its ``id`` (""
    when the id itself is missing or bad), ``key`` the offending key ("" for the rule as a
    whole) and ``problem`` what is wrong with it.
    """

    def __init__(self, site: str, index: int, rule_id: str, key: str, problem: str) -> None:
        self.site = site
        self.index = index
        self.rule_id = rule_id
        self.key = key
        self.problem = problem
        who = f"rules[{index}]" + (f" (id {rule_id!r})" if rule_id else "")
        where = f" key {key!r}" if key else ""
        super().__init__(f"rules of site {site!r}", [f"{who}{where}: {problem}"])
