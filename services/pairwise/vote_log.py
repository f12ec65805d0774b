"""The format of one entry of a cause's vote log (a Redis Stream), shared by ingest and ranker.

Fields (bytes as Redis returns them):
    k   kind: "w" (a beat b), "t" (a and b tied), "s" (skipped; a shown left, b right)
    a   proposal index (decimal)
    b   proposal index (decimal)
    v   vote_id
    u   voter_id
    r   skip reason (only with kind "s"; may be empty)
    q   trust: "1" trusted, "0" suspicious (kept, flagged; see PRODUCT.md Integrity)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["w", "t", "s"]
WIN: Kind = "w"
TIE: Kind = "t"
SKIP: Kind = "s"


@dataclass(frozen=True, slots=True)
class VoteEntry:
    kind: Kind
    a: int
    b: int
    vote_id: str
    voter_id: str
    skip_reason: str = ""
    trusted: bool = True

    def fields(self) -> dict[str, str]:
        """The stream fields for XADD."""
        out = {"k": self.kind, "a": str(self.a), "b": str(self.b), "v": self.vote_id,
               "u": self.voter_id, "q": "1" if self.trusted else "0"}
        if self.kind == SKIP:
            out["r"] = self.skip_reason
        return out


def decode(fields: dict[bytes, bytes]) -> VoteEntry:
    """Parse the fields of one stream entry; raises KeyError/ValueError on a malformed entry."""
    kind = fields[b"k"].decode()
    if kind not in (WIN, TIE, SKIP):
        raise ValueError(f"unknown vote kind {kind!r}")
    return VoteEntry(
        kind=kind,  # type: ignore[arg-type]
        a=int(fields[b"a"]),
        b=int(fields[b"b"]),
        vote_id=fields.get(b"v", b"").decode(),
        voter_id=fields.get(b"u", b"").decode(),
        skip_reason=fields.get(b"r", b"").decode(),
        trusted=fields.get(b"q", b"1") == b"1",
    )
