"""Prompt tokens: HMAC-SHA256-signed, expiring, single-use proof that a voter was shown a pair.

The gateway issues one with each NextPair; ingest verifies it on SubmitVote and consumes its
nonce atomically with recording the vote. Both hold the same secret (PAIRWISE_TOKEN_SECRET).

Wire form: ``base64url(payload) + "." + base64url(hmac)`` where payload is
``v1|cause_id|voter_id|left_id|right_id|issued_ms|expires_ms|nonce`` (ids never contain "|").
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from pairwise.errors import FailedPrecondition, InvalidArgument, PermissionDenied

_VERSION = "v1"


@dataclass(frozen=True, slots=True)
class PromptToken:
    cause_id: str
    voter_id: str
    left_id: str
    right_id: str
    issued_ms: int
    expires_ms: int
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, payload, hashlib.sha256).digest()


def issue(secret: bytes, cause_id: str, voter_id: str, left_id: str, right_id: str,
          now_ms: int, ttl_ms: int) -> tuple[str, PromptToken]:
    """Sign a new token valid for `ttl_ms` from `now_ms`; returns (wire form, token)."""
    token = PromptToken(cause_id, voter_id, left_id, right_id, now_ms, now_ms + ttl_ms,
                        secrets.token_hex(12))
    payload = "|".join([_VERSION, token.cause_id, token.voter_id, token.left_id,
                        token.right_id, str(token.issued_ms), str(token.expires_ms),
                        token.nonce]).encode()
    return f"{_b64(payload)}.{_b64(_sign(secret, payload))}", token


def verify(secret: bytes, wire: str, cause_id: str, voter_id: str, now_ms: int) -> PromptToken:
    """Check signature, binding and expiry of `wire`; single use is enforced by the caller.

    Raises InvalidArgument (malformed or forged), PermissionDenied (issued for another voter
    or cause) or FailedPrecondition (expired).
    """
    if not wire:
        raise InvalidArgument("prompt_token", "is required")
    try:
        payload_text, signature_text = wire.split(".")
        payload, signature = _unb64(payload_text), _unb64(signature_text)
    except ValueError as exc:
        raise InvalidArgument("prompt_token", "is malformed") from exc
    if not hmac.compare_digest(signature, _sign(secret, payload)):
        raise InvalidArgument("prompt_token", "signature is invalid (forged or altered token)")
    parts = payload.decode().split("|")
    if len(parts) != 8 or parts[0] != _VERSION:
        raise InvalidArgument("prompt_token", "has an unknown version")
    token = PromptToken(parts[1], parts[2], parts[3], parts[4], int(parts[5]), int(parts[6]),
                        parts[7])
    if token.cause_id != cause_id:
        raise PermissionDenied(f"prompt_token was issued for cause {token.cause_id!r}")
    if token.voter_id != voter_id:
        raise PermissionDenied("prompt_token was issued to another voter")
    if now_ms >= token.expires_ms:
        raise FailedPrecondition(
            f"prompt_token expired {(now_ms - token.expires_ms) / 1000:.0f} s ago; "
            "call NextPair again")
    return token
