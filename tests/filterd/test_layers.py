"""The import directions docs/architecture.md allows, checked on the source (a cycle or a layer
crossed fails here, not in a review)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imports(package: str) -> dict[str, set[str]]:
    """module -> modules of ours it imports (at any depth: lazy imports count too)."""
    out: dict[str, set[str]] = {}
    for path in (ROOT / package.replace(".", "/")).rglob("*.py"):
        mod = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
            elif isinstance(node, ast.ImportFrom) and node.level:
                base = mod.rsplit(".", node.level)[0] if path.name != "__init__.py" or node.level > 1 else mod
                names.add(f"{base}.{node.module}" if node.module else base)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        out[mod] = {n for n in names if n.split(".")[0] in ("filterd", "shared", "collector", "sysmon_cli")}
    return out


def crossing(package: str, forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list[str]:
    return sorted(
        f"{mod} -> {name}"
        for mod, names in imports(package).items()
        for name in names
        if name.startswith(forbidden) and not name.startswith(allowed)
    )


def test_config_is_plain_data_under_the_rules() -> None:
    # the loader and linter read the condition table (which imports nothing of ours), never the engine
    assert crossing("filterd.config", ("filterd.rules",), ("filterd.rules.conditions",)) == []
    # nothing of the config but the linter knows the events (which of them Linux emits)
    assert crossing("filterd.config", ("filterd.events", "filterd.pipeline", "filterd.state")) == [
        "filterd.config.lint -> filterd.events.registry"
    ]
    assert crossing("filterd.rules.conditions", ("filterd",)) == []


def test_events_do_not_reach_up() -> None:
    assert (
        crossing("filterd.events", ("filterd.pipeline", "filterd.rules", "filterd.config", "filterd.sink"))
        == []
    )


def test_shared_imports_nothing_of_ours_but_itself() -> None:
    assert crossing("shared", ("filterd", "collector", "sysmon_cli")) == []


def test_filterd_never_imports_the_collector() -> None:
    assert crossing("filterd", ("collector",)) == []
