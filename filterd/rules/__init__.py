"""Sysmon rule matching: the condition table (conditions.py) and the compiled engine (engine.py)."""

from filterd.rules.engine import Matcher, compile_matcher

__all__ = ["Matcher", "compile_matcher"]
