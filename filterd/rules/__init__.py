"""Sysmon rule matching, compiled from a Config (which never imports this package).

conditions.py: the condition table; terms.py: one filter compiled for one event type; orset.py:
indexed OR sets as generated code; compiler.py: an event type's terms and sets; exact.py: upstream's
algorithm literally (the specification); matcher.py: the fast matcher; ruleset.py: all of a config's
matchers, the event types it logs, FieldSizes.
"""

from filterd.rules.matcher import Matcher
from filterd.rules.ruleset import RuleSet, rule_set

__all__ = ["Matcher", "RuleSet", "rule_set"]
