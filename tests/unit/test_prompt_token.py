"""Prompt tokens: only the gateway's secret makes one, it proves which pair one voter of one
cause was shown, and it stops working when it expires or is altered."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from pairwise import prompt_token
from pairwise.errors import FailedPrecondition, InvalidArgument, PermissionDenied

SECRET = prompt_token.TokenKeys(b"shared-by-gateway-and-ingest-32-bytes")
OTHER_KEYS = prompt_token.TokenKeys(b"another secret, also 32 bytes long")
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
    assert fields[:8] == ["v2", prompt_token.key_id(SECRET.current), "c1", "alice", "p1", "p2",
                          str(NOW_MS), str(NOW_MS + TTL_MS)]
    assert unb64(signature_text) == hmac.new(SECRET.current, payload, hashlib.sha256).digest()


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
    wire, _ = prompt_token.issue(OTHER_KEYS, "c1", "alice", "p1", "p2", NOW_MS, TTL_MS)
    with pytest.raises(InvalidArgument, match="signed by an unknown key"):
        prompt_token.verify(SECRET, wire, "c1", "alice", NOW_MS)
    # Naming the right key does not help without the secret.
    payload_text, signature_text = wire.split(".")
    payload = unb64(payload_text).decode().replace(OTHER_KEYS.current_id, SECRET.current_id)
    with pytest.raises(InvalidArgument, match="signature is invalid"):
        prompt_token.verify(SECRET, f"{b64(payload.encode())}.{signature_text}", "c1", "alice",
                            NOW_MS)


def test_during_a_rotation_prompts_issued_under_the_previous_secret_stay_valid() -> None:
    before = issue()
    rotated = prompt_token.TokenKeys(OTHER_KEYS.current, previous=(SECRET.current,))
    after, _ = prompt_token.issue(rotated, "c1", "alice", "p1", "p2", NOW_MS, TTL_MS)
    assert prompt_token.verify(rotated, before, "c1", "alice", NOW_MS).left_id == "p1"
    assert prompt_token.verify(rotated, after, "c1", "alice", NOW_MS).left_id == "p1"
    # New tokens are signed with the new secret: a gateway still on the old keys refuses them,
    # and once the previous secret is dropped, so are the old prompts.
    with pytest.raises(InvalidArgument, match="unknown key"):
        prompt_token.verify(SECRET, after, "c1", "alice", NOW_MS)
    with pytest.raises(InvalidArgument, match="issued before the secret was rotated"):
        prompt_token.verify(OTHER_KEYS, before, "c1", "alice", NOW_MS)


def test_a_token_from_before_key_ids_is_checked_against_every_accepted_secret() -> None:
    payload = f"v1|c1|alice|p1|p2|{NOW_MS}|{NOW_MS + TTL_MS}|abc".encode()
    wire = f"{b64(payload)}.{b64(hmac.new(SECRET.current, payload, hashlib.sha256).digest())}"
    rotated = prompt_token.TokenKeys(OTHER_KEYS.current, previous=(SECRET.current,))
    assert prompt_token.verify(rotated, wire, "c1", "alice", NOW_MS).nonce == "abc"
    with pytest.raises(InvalidArgument, match="signature is invalid"):
        prompt_token.verify(OTHER_KEYS, wire, "c1", "alice", NOW_MS)


def test_a_secret_shorter_than_32_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes, got 31"):
        prompt_token.TokenKeys(b"x" * 31)
    with pytest.raises(ValueError, match="at least 32 bytes, got 5"):
        prompt_token.TokenKeys(b"x" * 32, previous=(b"short",))


def test_a_token_longer_than_any_issued_is_refused_before_it_is_decoded() -> None:
    longest = issue(cause_id="c" * 64, voter_id="v" * 128, left_id="l" * 64, right_id="r" * 64)
    assert len(longest) <= prompt_token.MAX_WIRE_LENGTH
    prompt_token.verify(SECRET, longest, "c" * 64, "v" * 128, NOW_MS)
    with pytest.raises(InvalidArgument, match="prompt_token: must be at most 1024 characters"):
        prompt_token.verify(SECRET, longest + "A" * 1024, "c" * 64, "v" * 128, NOW_MS)


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


def test_a_token_with_padding_added_is_malformed_not_the_token() -> None:
    wire = issue(cause_id="c1", voter_id="alice")
    for padded in (wire + "==", wire.replace(".", "=.", 1), wire + "="):
        with pytest.raises(InvalidArgument, match="prompt_token: is malformed"):
            prompt_token.verify(SECRET, padded, "c1", "alice", NOW_MS)


def test_a_missing_token_is_required() -> None:
    with pytest.raises(InvalidArgument, match="prompt_token: is required"):
        prompt_token.verify(SECRET, "", "c1", "alice", NOW_MS)


def test_a_correctly_signed_token_of_another_version_is_refused() -> None:
    payload = f"v3|c1|alice|p1|p2|{NOW_MS}|{NOW_MS + TTL_MS}|abc".encode()
    wire = f"{b64(payload)}.{b64(hmac.new(SECRET.current, payload, hashlib.sha256).digest())}"
    with pytest.raises(InvalidArgument, match="unknown version"):
        prompt_token.verify(SECRET, wire, "c1", "alice", NOW_MS)


def test_a_signed_token_naming_one_proposal_twice_is_refused() -> None:
    """Only a leaked secret could sign one; it must not record a proposal against itself."""
    wire = issue(left_id="p1", right_id="p1")
    with pytest.raises(InvalidArgument, match="^prompt_token: names the same proposal twice"):
        prompt_token.verify(SECRET, wire, "c1", "alice", NOW_MS)
