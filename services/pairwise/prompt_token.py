"""Prompt tokens: HMAC-SHA256-signed, expiring, single-use proof that a voter was shown a pair.

The gateway issues one with each NextPair; ingest verifies it on SubmitVote and consumes its
nonce atomically with recording the vote. Both hold the same keys (`TokenKeys`): the secret
that signs (PAIRWISE_TOKEN_SECRET) and, during a rotation, the previous secrets, still
accepted (PAIRWISE_TOKEN_PREVIOUS_SECRETS) so that the prompts in flight when the secret
changes stay valid until they expire. Each token names its key by an id derived from the
secret, so a verifier checks one signature, whatever the number of keys.

Wire form: ``base64url(payload) + "." + base64url(hmac)`` where payload is
``v2|key_id|cause_id|voter_id|left_id|right_id|issued_ms|expires_ms|nonce`` (ids never
contain "|"). Tokens of the first form (``v1|cause_id|...``, no key id), issued before key
ids existed, are checked against every key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

from pairwise.config import env_str
from pairwise.errors import FailedPrecondition, InvalidArgument, PermissionDenied

_VERSION = "v2"
_UNKEYED_VERSION = "v1"
# HMAC-SHA256's key should hold at least its output's 256 bits of entropy; a shorter secret
# is refused where it is read (settings) rather than weakening every token.
MIN_SECRET_BYTES = 32
# Longer than any token this module issues (the ids are bounded: ~560 characters at most),
# so that a field of megabytes is refused before it costs anything.
MAX_WIRE_LENGTH = 1024


def key_id(secret: bytes) -> str:
    """The public name of `secret` in the tokens it signs (reveals nothing of it)."""
    return hashlib.sha256(b"pairwise prompt-token key|" + secret).hexdigest()[:8]


@dataclass(frozen=True)
class TokenKeys:
    """The secret that signs new tokens and the previous ones still accepted.

    Raises ValueError for a secret shorter than MIN_SECRET_BYTES.
    """

    current: bytes
    previous: tuple[bytes, ...] = ()
    _by_id: dict[str, bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for secret in (self.current, *self.previous):
            if len(secret) < MIN_SECRET_BYTES:
                raise ValueError(f"a prompt-token secret must be at least {MIN_SECRET_BYTES} "
                                 f"bytes, got {len(secret)}")
        by_id = {key_id(secret): secret for secret in (self.current, *self.previous)}
        object.__setattr__(self, "_by_id", by_id)

    @property
    def current_id(self) -> str:
        return key_id(self.current)

    def by_id(self, kid: str) -> bytes | None:
        return self._by_id.get(kid)

    def all(self) -> tuple[bytes, ...]:
        return (self.current, *self.previous)


def keys_from_env() -> TokenKeys:
    """PAIRWISE_TOKEN_SECRET (required) and PAIRWISE_TOKEN_PREVIOUS_SECRETS (comma-separated,
    optional); a secret too short stops start-up naming the setting."""
    current = env_str("PAIRWISE_TOKEN_SECRET").encode()
    previous = tuple(part.strip().encode()
                     for part in env_str("PAIRWISE_TOKEN_PREVIOUS_SECRETS", "").split(",")
                     if part.strip())
    for name, secrets_ in (("PAIRWISE_TOKEN_SECRET", (current,)),
                           ("PAIRWISE_TOKEN_PREVIOUS_SECRETS", previous)):
        if any(len(secret) < MIN_SECRET_BYTES for secret in secrets_):
            raise SystemExit(f"setting {name}: each secret must be at least {MIN_SECRET_BYTES} "
                             "bytes (e.g. `python -c 'import secrets; "
                             "print(secrets.token_urlsafe(32))'`)")
    return TokenKeys(current, previous)


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


def issue(keys: TokenKeys, cause_id: str, voter_id: str, left_id: str, right_id: str,
          now_ms: int, ttl_ms: int) -> tuple[str, PromptToken]:
    """Sign a new token with the current key, valid for `ttl_ms` from `now_ms`; returns
    (wire form, token)."""
    token = PromptToken(cause_id, voter_id, left_id, right_id, now_ms, now_ms + ttl_ms,
                        secrets.token_hex(12))
    payload = "|".join([_VERSION, keys.current_id, token.cause_id, token.voter_id,
                        token.left_id, token.right_id, str(token.issued_ms),
                        str(token.expires_ms), token.nonce]).encode()
    return f"{_b64(payload)}.{_b64(_sign(keys.current, payload))}", token


def check_length(wire: str) -> None:
    """Raise InvalidArgument if `wire` is longer than any issued token."""
    if len(wire) > MAX_WIRE_LENGTH:
        raise InvalidArgument("prompt_token", f"must be at most {MAX_WIRE_LENGTH} characters "
                              "(as NextPair issued it)")


def verify(keys: TokenKeys, wire: str, cause_id: str, voter_id: str,
           now_ms: int) -> PromptToken:
    """Check signature, binding and expiry of `wire`; single use is enforced by the caller.

    Raises what `verify_signed` raises, or FailedPrecondition (expired).
    """
    token = verify_signed(keys, wire, cause_id, voter_id)
    expired = expiry_error(token, now_ms)
    if expired is not None:
        raise expired
    return token


def expiry_error(token: PromptToken, now_ms: int) -> FailedPrecondition | None:
    """The error an expired `token` gets at `now_ms` (Unix ms), or None while it is valid."""
    if now_ms < token.expires_ms:
        return None
    return FailedPrecondition(
        f"prompt_token expired {(now_ms - token.expires_ms) / 1000:.0f} s ago; "
        "call NextPair again")


def verify_signed(keys: TokenKeys, wire: str, cause_id: str, voter_id: str) -> PromptToken:
    """Check signature and binding of `wire`, not its expiry (a retry of a vote recorded
    before its token expired still gets its receipt).

    Raises InvalidArgument (malformed, forged, too long, signed by a key not accepted, or
    naming one proposal twice) or PermissionDenied (issued for another voter or cause).
    """
    if not wire:
        raise InvalidArgument("prompt_token", "is required")
    check_length(wire)
    # Issued unpadded: one token has one wire form (base64 decoding would accept padding
    # added to it, and a token altered so must read as altered, not as the token).
    if "=" in wire:
        raise InvalidArgument("prompt_token", "is malformed")
    try:
        payload_text, signature_text = wire.split(".")
        payload, signature = _unb64(payload_text), _unb64(signature_text)
        parts = payload.decode().split("|")
    except ValueError as exc:  # UnicodeDecodeError and binascii.Error are ValueErrors
        raise InvalidArgument("prompt_token", "is malformed") from exc
    if parts[0] == _VERSION and len(parts) == 9:
        secret = keys.by_id(parts[1])
        if secret is None:
            raise InvalidArgument("prompt_token", "is signed by an unknown key (forged, or "
                                  "issued before the secret was rotated); call NextPair again")
        candidates: tuple[bytes, ...] = (secret,)
        fields = parts[2:]
    elif parts[0] == _UNKEYED_VERSION and len(parts) == 8:
        candidates, fields = keys.all(), parts[1:]
    else:
        raise InvalidArgument("prompt_token", "has an unknown version")
    if not any(hmac.compare_digest(signature, _sign(secret, payload))
               for secret in candidates):
        raise InvalidArgument("prompt_token", "signature is invalid (forged or altered token)")
    try:
        token = PromptToken(fields[0], fields[1], fields[2], fields[3], int(fields[4]),
                            int(fields[5]), fields[6])
    except ValueError as exc:
        raise InvalidArgument("prompt_token", "is malformed") from exc
    # Never issued (a pair is two proposals), so only a leaked secret could sign one: it
    # must not record a proposal compared with itself.
    if token.left_id == token.right_id:
        raise InvalidArgument("prompt_token", "names the same proposal twice")
    if token.cause_id != cause_id:
        raise PermissionDenied(f"prompt_token was issued for cause {token.cause_id!r}")
    if token.voter_id != voter_id:
        raise PermissionDenied("prompt_token was issued to another voter")
    return token
