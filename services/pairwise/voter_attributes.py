"""Voter attributes: what a cause lets voters declare, how a declaration is checked, and the
compact code that carries a voter's attributes in the vote log.

A cause declares up to `MAX_KEYS` attributes (e.g. "region"), each with up to `MAX_VALUES`
allowed values. Declarations only grow — keys and values are appended, never removed or
reordered — because the log names them by position: a vote's attributes are one character
per declared key, the position of its value in `VALUE_CHARS`, or `UNKNOWN` ("-"); a code
shorter than the keys leaves the later ones unknown, and "-" alone says nothing is known.
A vote without attributes is valid (every key unknown).

Population margins are, per declared key, the population's share of each declared value
(shares in [0, 1] summing to 1), which weighted rankings use.

Pure domain code: no grpc, no redis.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from pairwise.errors import FailedPrecondition, InvalidArgument

# A handful of dimensions (region, age band, gender, education...) is what sponsors ask
# for; each adds a set of segment counts to the ranker, so the number is bounded.
MAX_KEYS = 8
# Census regions and age bands fit in 32 values; one character per value in the log.
MAX_VALUES = 32
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,32}")
VALUE_CHARS = "0123456789abcdefghijklmnopqrstuv"
UNKNOWN = "-"
NO_ATTRIBUTES = UNKNOWN
# Shares of one attribute must sum to 1 within this (rounding in a census table).
SHARE_TOLERANCE = 1e-6
# Decoded codes: one column per possible key, this value where the key is unknown.
UNKNOWN_CODE = 255
_CODE_OF_BYTE = np.full(256, UNKNOWN_CODE, dtype=np.uint8)
for _position, _char in enumerate(VALUE_CHARS):
    _CODE_OF_BYTE[ord(_char)] = _position


@dataclass(frozen=True)
class Declaration:
    """A cause's declared attributes: `keys[k]` may take the values `values[k]`."""

    keys: tuple[str, ...] = ()
    values: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "_positions", {
            key: (k, {value: v for v, value in enumerate(values)})
            for k, (key, values) in enumerate(zip(self.keys, self.values, strict=True))})

    def __bool__(self) -> bool:
        return bool(self.keys)

    def items(self) -> Iterable[tuple[str, tuple[str, ...]]]:
        return zip(self.keys, self.values, strict=True)

    def position(self, key: str, value: str) -> tuple[int, int] | None:
        """(key position, value position), or None when either is not declared."""
        found = self._positions.get(key)  # type: ignore[attr-defined]
        if found is None:
            return None
        v = found[1].get(value)
        return None if v is None else (found[0], v)

    def name(self, key: int, value: int) -> tuple[str, str]:
        """The (key, value) names of a segment given by positions; IndexError if undeclared."""
        return self.keys[key], self.values[key][value]

    def segments(self) -> list[tuple[int, int]]:
        """Every declared (key, value) position, in declaration order."""
        return [(k, v) for k, values in enumerate(self.values) for v in range(len(values))]

    def encode(self, attributes: Mapping[str, str], field: str = "attributes") -> str:
        """The log code of a voter's `attributes`; raises InvalidArgument naming `field`
        and the first key or value not declared, or too many keys."""
        if not attributes:
            return NO_ATTRIBUTES
        if len(attributes) > MAX_KEYS:
            raise InvalidArgument(field, f"at most {MAX_KEYS} attributes, got {len(attributes)}")
        chars = [UNKNOWN] * len(self.keys)
        for key, value in sorted(attributes.items()):
            found = self._positions.get(key)  # type: ignore[attr-defined]
            if found is None:
                declared = ", ".join(self.keys) or "none"
                raise InvalidArgument(field, f"unknown attribute {_echo(key)}: this cause "
                                             f"declares {declared}")
            v = found[1].get(value)
            if v is None:
                raise InvalidArgument(field, f"attribute {key!r} has no value {_echo(value)}: "
                                             f"allowed are {', '.join(self.values[found[0]])}")
            chars[found[0]] = VALUE_CHARS[v]
        return "".join(chars).rstrip(UNKNOWN) or NO_ATTRIBUTES

    def to_json(self) -> str:
        return json.dumps([[key, list(values)] for key, values in self.items()],
                          separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes | None) -> Declaration:
        """A declaration stored by `to_json` (an empty one for None or "")."""
        if not text:
            return cls()
        pairs = json.loads(text)
        return cls(tuple(key for key, _ in pairs), tuple(tuple(values) for _, values in pairs))


def _echo(text: str) -> str:
    return repr(text[:40] + ("..." if len(text) > 40 else ""))


def check_declaration(pairs: Iterable[tuple[str, Iterable[str]]],
                      current: Declaration) -> Declaration:
    """The declaration `pairs` ((key, values) in order) after checks: bounded names and
    sizes, no repeats (InvalidArgument naming `attributes`), and an extension of `current`
    (FailedPrecondition: keys and values may only be appended)."""
    keys: list[str] = []
    values: list[tuple[str, ...]] = []
    for k, (key, raw_values) in enumerate(pairs):
        where = f"attributes[{k}]"
        if not NAME_PATTERN.fullmatch(key):
            raise InvalidArgument(f"{where}.key", f"must match {NAME_PATTERN.pattern}, "
                                                  f"got {_echo(key)}")
        if key in keys:
            raise InvalidArgument(f"{where}.key", f"{key!r} is declared twice")
        listed = tuple(raw_values)
        if not listed:
            raise InvalidArgument(f"{where}.values", "at least one value is required")
        if len(listed) > MAX_VALUES:
            raise InvalidArgument(f"{where}.values",
                                  f"at most {MAX_VALUES} values, got {len(listed)}")
        for value in listed:
            if not NAME_PATTERN.fullmatch(value):
                raise InvalidArgument(f"{where}.values", f"each must match "
                                      f"{NAME_PATTERN.pattern}, got {_echo(value)}")
        if len(set(listed)) != len(listed):
            raise InvalidArgument(f"{where}.values", f"a value of {key!r} is listed twice")
        keys.append(key)
        values.append(listed)
        if len(keys) > MAX_KEYS:
            raise InvalidArgument("attributes", f"at most {MAX_KEYS} attributes")
    for k, (key, old_values) in enumerate(current.items()):
        if k >= len(keys) or keys[k] != key or values[k][:len(old_values)] != old_values:
            raise FailedPrecondition(
                f"attribute {key!r} and its values {', '.join(old_values)} are declared "
                "already: keys and values may be added after them, never removed, renamed "
                "or reordered (votes in the log name them by position)")
    return Declaration(tuple(keys), tuple(values))


Margins = dict[str, dict[str, float]]
"""Per declared key (in declaration order), per value, the population's share."""


def check_margins(pairs: Iterable[tuple[str, Mapping[str, float]]],
                  declaration: Declaration | None) -> Margins:
    """The margins `pairs` ((key, value -> share)) after checks, in declaration order, every
    declared value of a given key listed (0 when left out). Raises InvalidArgument naming
    the first problem: a key given twice, a share outside [0, 1], shares not summing to 1
    within SHARE_TOLERANCE; then an undeclared key or value. With `declaration` None, only
    the checks that need no declaration are made (and an empty result returned)."""
    pairs = list(pairs)
    seen: set[str] = set()
    for m, (key, shares) in enumerate(pairs):
        where = f"margins[{m}]"
        if key in seen:
            raise InvalidArgument(f"{where}.key", f"{_echo(key)} is given twice")
        seen.add(key)
        for value, share in shares.items():
            if not (math.isfinite(share) and 0.0 <= share <= 1.0):
                raise InvalidArgument(f"{where}.shares", f"share of {_echo(key)}="
                                      f"{_echo(value)} must be in [0, 1], got {share}")
        total = math.fsum(shares.values())
        if abs(total - 1.0) > SHARE_TOLERANCE:
            raise InvalidArgument(f"{where}.shares",
                                  f"the shares of {_echo(key)} must sum to 1, got {total!r}")
    if declaration is None:
        return {}
    given: dict[str, Mapping[str, float]] = {}
    for m, (key, shares) in enumerate(pairs):
        where = f"margins[{m}]"
        if key not in declaration.keys:
            declared = ", ".join(declaration.keys) or "none"
            raise InvalidArgument(f"{where}.key", f"unknown attribute {_echo(key)}: this "
                                                  f"cause declares {declared}")
        allowed = declaration.values[declaration.keys.index(key)]
        for value in shares:
            if value not in allowed:
                raise InvalidArgument(f"{where}.shares", f"attribute {key!r} has no value "
                                      f"{_echo(value)}: allowed are {', '.join(allowed)}")
        given[key] = shares
    return {key: {value: float(given[key].get(value, 0.0)) for value in values}
            for key, values in declaration.items() if key in given}


def margins_to_json(margins: Margins) -> str:
    return json.dumps(margins, separators=(",", ":"))


def margins_from_json(text: str | bytes | None) -> Margins:
    return json.loads(text) if text else {}


def decode_codes(codes: Iterable[bytes]) -> np.ndarray:
    """Log codes (one per vote) as a (votes, MAX_KEYS) uint8 array: the value position per
    key, UNKNOWN_CODE where unknown (characters outside VALUE_CHARS read as unknown)."""
    padded = b"".join(code[:MAX_KEYS].ljust(MAX_KEYS, b"-") for code in codes)
    return _CODE_OF_BYTE[np.frombuffer(padded, dtype=np.uint8)].reshape(-1, MAX_KEYS)
