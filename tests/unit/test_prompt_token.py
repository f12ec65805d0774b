"""Prompt tokens: only the gateway's secret makes one, it proves which pair one voter of one
cause was shown, and it stops working when it expires or is altered."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from pairwise import prompt_token
from pairwise.errors import FailedPrecondition, InvalidArgument, PermissionDenied

SECRET = b"shared-by-gateway-and-ingest"
NOW_MS = 1_700_000_000_000
TTL_MS = 300_000


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def issue(**overrides: object) -> str:
    fields: dict[str, object] = {"cause_id": "c1", "voter_id": "alice", "left_id": "p1",
                                 "right_id": "p2", "now_ms": NOW_MS, "ttl_ms": TTL_MS}
    fields.update(overrides)
    wire, _ = prompt_token.issue(SECRET, **fields)  # type: ignore[arg-type]
    return wire


def test_a_token_verifies_for_its_voter_and_cause_and_carries_the_pair() -> None:
    wire, issued = prompt_token.issue(SECRET, "c1", "alice", "p1", "p2", NOW_MS, TTL_MS)
    checked = prompt_token.verify(SECRET, wire, "c1", "alice", NOW_MS + 1_000)
    assert checked == issued
    assert (checked.left_id, checked.right_id) == ("p1", "p2")
    assert (checked.issued_ms, checked.expires_ms) == (NOW_MS, NOW_MS + TTL_MS)


def test_the_wire_form_is_the_documented_payload_and_its_hmac_sha256() -> None:
    wire = issue()
    payload_text, signature_text = wire.split(".")
    assert "=" not in wire   # base64url without padding: safe in URLs and JSON as is
    payload = unb64(payload_text)
    fields = payload.decode().split("|")
    assert fields[:7] == ["v1", "c1", "alice", "p1", "p2", str(NOW_MS), str(NOW_MS + TTL_MS)]
    assert unb64(signature_text) == hmac.new(SECRET, payload, hashlib.sha256).digest()


def test_each_token_has_its_own_nonce() -> None:
    nonces = {prompt_token.verify(SECRET, issue(), "c1", "alice", NOW_MS).nonce
              for _ in range(50)}
    assert len(nonces) == 50


def test_a_token_expires_after_its_ttl() -> None:
    wire = issue()
    prompt_token.verify(SECRET, wire, "c1", "alice", NOW_MS + TTL_MS - 1)
    with pytest.raises(FailedPrecondition, match="expired 0 s ago"):
        prompt_token.verify(SECRET, wire, "c1", "alice", NOW_MS + TTL_MS)
    with pytest.raises(FailedPrecondition, match="expired 90 s ago; call NextPair again"):
        prompt_token.verify(SECRET, wire, "c1", "alice", NOW_MS + TTL_MS + 90_000)


def test_a_token_signed_with_another_secret_is_forged() -> None:
    wire, _ = prompt_token.issue(b"not-the-secret", "c1", "alice", "p1", "p2", NOW_MS, TTL_MS)
    with pytest.raises(InvalidArgument, match="signature is invalid"):
        prompt_token.verify(SECRET, wire, "c1", "alice", NOW_MS)


def test_an_altered_payload_or_signature_is_refused() -> None:
    payload_text, signature_text = issue().split(".")
    payload = unb64(payload_text).decode()
    # A voter swapping in a proposal of their choice, or extending the expiry.
    for altered in (payload.replace("|p2|", "|p7|"),
                    payload.replace(str(NOW_MS + TTL_MS), str(NOW_MS + 10 * TTL_MS))):
        assert altered != payload
        with pytest.raises(InvalidArgument, match="signature is invalid"):
            prompt_token.verify(SECRET, f"{b64(altered.encode())}.{signature_text}", "c1",
                                "alice", NOW_MS)
    signature = bytearray(unb64(signature_text))
    signature[0] ^= 1
    with pytest.raises(InvalidArgument, match="signature is invalid"):
        prompt_token.verify(SECRET, f"{payload_text}.{b64(bytes(signature))}", "c1", "alice",
                            NOW_MS)


def test_a_token_is_bound_to_its_voter_and_cause() -> None:
    wire = issue(cause_id="c1", voter_id="alice")
    with pytest.raises(PermissionDenied, match="another voter"):
        prompt_token.verify(SECRET, wire, "c1", "bob", NOW_MS)
    with pytest.raises(PermissionDenied, match="issued for cause 'c1'"):
        prompt_token.verify(SECRET, wire, "c2", "alice", NOW_MS)


@pytest.mark.parametrize("wire", ["no-dot", "a.b.c", "!!!.???", "abc.def"])
def test_malformed_tokens_are_invalid_arguments_naming_the_field(wire: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        prompt_token.verify(SECRET, wire, "c1", "alice", NOW_MS)
    assert caught.value.field == "prompt_token"


def test_a_missing_token_is_required() -> None:
    with pytest.raises(InvalidArgument, match="prompt_token: is required"):
        prompt_token.verify(SECRET, "", "c1", "alice", NOW_MS)


def test_a_correctly_signed_token_of_another_version_is_refused() -> None:
    payload = f"v2|c1|alice|p1|p2|{NOW_MS}|{NOW_MS + TTL_MS}|abc".encode()
    wire = f"{b64(payload)}.{b64(hmac.new(SECRET, payload, hashlib.sha256).digest())}"
    with pytest.raises(InvalidArgument, match="unknown version"):
        prompt_token.verify(SECRET, wire, "c1", "alice", NOW_MS)
