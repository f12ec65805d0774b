"""On a Redis Cluster a command or script may only touch keys of one slot: every key of a
cause is in the cause's slot, the rankers' directory is in one slot, and every script call
in the services names keys of one cause (or the directory) only."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
from redis.crc import key_slot

from pairwise import keys

SERVICES = Path(__file__).resolve().parents[2] / "services"
CAUSES = ["c", "main", "Cause-1.x_y", "a" * 64, "rankers", "0"]


def cause_key_builders() -> list[tuple[str, object]]:
    return [(name, fn) for name, fn in inspect.getmembers(keys, inspect.isfunction)
            if fn.__module__ == keys.__name__
            and next(iter(inspect.signature(fn).parameters), None) == "cause_id"]


def slot(key: str) -> int:
    return key_slot(key.encode())


def test_every_key_builder_of_a_cause_is_known_here() -> None:
    assert len(cause_key_builders()) >= 30


@pytest.mark.parametrize("cause_id", CAUSES)
def test_every_key_of_a_cause_is_in_the_cause_slot(cause_id: str) -> None:
    for name, builder in cause_key_builders():
        extra = ["x"] * (len(inspect.signature(builder).parameters) - 1)  # type: ignore[arg-type]
        key = builder(cause_id, *extra)  # type: ignore[operator]
        assert slot(key) == slot(f"{{{cause_id}}}"), (name, key)


def test_the_rankers_directory_is_in_one_slot() -> None:
    assert slot(keys.RANKERS) == slot(keys.RANKER_ADDRESSES)


# Script calls whose keys are not written out at the call: what the keys are, checked here by
# reading the code that builds them.
BUILT_KEYS = {
    # The voter's and the cause's buckets (one cause), or the platform's alone.
    ("gateway/rate_limit.py", "tuple((key for key, _, _ in buckets))"),
    # `source`: the cause's proposal ids, or its proposals with one status.
    ("gateway/catalog_store.py", "[keys.cause(cause_id), source, keys.proposals(cause_id)]"),
    # The cause's newcomer pool keys (ranker.selection_publisher builds them from one cause).
    ("ranker/selection_publisher.py", "pool_keys"),
    # The cause's vote log, the stream of the consumer.
    ("ranker/redis_vote_stream.py", "[self._stream]"),
    # `fixed`: more keys of the same cause (receipts, checkpoint, ...).
    ("gateway/archive.py",
     "[keys.cause(cause_id), keys.lease(cause_id), keys.votes(cause_id), *fixed]"),
}


def script_calls() -> list[tuple[str, int, ast.expr]]:
    """Every (file, line, keys expression) of a script call in the services: `run`,
    `run_now` (keys second) and the (script, keys, args) tuples of `run_all`."""
    found = []
    for path in sorted(SERVICES.rglob("*.py")):
        if "loadtest" in path.parts or "bench" in path.parts or path.parent.name == "v1":
            continue
        tree = ast.parse(path.read_text())
        scripts = {target.id for node in tree.body if isinstance(node, ast.Assign)
                   for target in node.targets if isinstance(target, ast.Name)
                   and isinstance(node.value, ast.Call)
                   and getattr(node.value.func, "id", "") == "Script"}
        name = str(path.relative_to(SERVICES))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("run", "run_now") and len(node.args) >= 2
                    and isinstance(node.args[0], ast.Name) and node.args[0].id in scripts):
                found.append((name, node.lineno, node.args[1]))
            elif (isinstance(node, ast.Tuple) and len(node.elts) == 3
                  and isinstance(node.elts[0], ast.Name) and node.elts[0].id in scripts):
                found.append((name, node.lineno, node.elts[1]))
    return found


def test_every_script_call_names_keys_of_one_slot() -> None:
    calls = script_calls()
    assert len(calls) >= 20
    problems = []
    for path, line, expression in calls:
        text = ast.unparse(expression)
        if (path, text) in BUILT_KEYS:
            continue
        if not isinstance(expression, ast.List | ast.Tuple):
            problems.append(f"{path}:{line}: keys {text} are not written out; add them to "
                            "BUILT_KEYS once checked to be of one slot")
            continue
        owners = set()
        for element in expression.elts:
            if isinstance(element, ast.Starred):
                element = element.value
            if isinstance(element, ast.GeneratorExp):
                element = element.elt
            if (isinstance(element, ast.Call) and isinstance(element.func, ast.Attribute)
                    and ast.unparse(element.func.value) == "keys"):
                owners.add(ast.unparse(element.args[0]) if element.args else "platform")
            elif (isinstance(element, ast.Attribute)
                  and ast.unparse(element.value) == "keys"):
                owners.add("rankers directory"
                           if element.attr in ("RANKERS", "RANKER_ADDRESSES") else element.attr)
            else:
                owners.add(f"unchecked {ast.unparse(element)}")
        if len(owners) != 1 or next(iter(owners)).startswith("unchecked"):
            problems.append(f"{path}:{line}: keys {text} belong to {sorted(owners)}")
    assert not problems, "\n".join(problems)
