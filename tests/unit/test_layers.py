"""Dependencies run one way: config ← models ← agents ← streams ← quorum (CLI and drivers).

Read from the source with ``ast``, so a lazy import inside a function counts too. Catches: the
kernel (agents, models) reaching into I/O (streams), or config importing the models it
configures; then the embedded and Kafka drivers could no longer share one kernel.
"""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import pytest

from models.records import Label, Outcome, Vote
from models.state import dumps_state, loads_state

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ["config", "models", "agents", "streams", "quorum"]  # each may import only its left


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", LAYERS)
def test_a_package_imports_only_the_layers_below_it(package: str) -> None:
    allowed = set(LAYERS[: LAYERS.index(package) + 1])
    bad = {
        f"{path.relative_to(ROOT)} imports {sorted(set(LAYERS) & _imports(path) - allowed)}"
        for path in sorted((ROOT / package).rglob("*.py"))
        if (set(LAYERS) & _imports(path)) - allowed
    }
    assert not bad, sorted(bad)


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    """The rule has teeth: a lazy import of streams inside a function is found."""
    src = tmp_path / "x.py"
    src.write_text("def f():\n    from streams.codecs import encode_tick\n    import quorum.cli\n")
    assert {"streams", "quorum"} <= _imports(src)


def test_state_saved_before_records_moved_still_loads() -> None:
    """Blobs pickled when records lived in ``streams.records`` (Redis state of running
    deployments) must still load: the old module name is mapped to ``models.records``."""
    vote = Vote(
        "momentum", "m:1", 3, "BTCUSDT", 7, 1_723_161_300 * 10**9, 0.5, (Outcome(2, Label.UP),)
    )
    assert b"models.records" in dumps_state([vote])
    # protocol 2 names classes as "module\nname\n" text, so the module can be renamed in place
    old = pickle.dumps([vote], protocol=2).replace(b"models.records\n", b"streams.records\n")
    assert b"streams.records" in old
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(old)  # plain pickle no longer finds the old module...
    assert loads_state(old) == [vote]  # ...the state loader does
