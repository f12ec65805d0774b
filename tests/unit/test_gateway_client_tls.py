"""How the console and the export and import commands choose to dial the gateway: any TLS
setting asks for TLS; plaintext only when none is given."""

from __future__ import annotations

from pairwise.tls import GatewayClientTls


def settings(*, tls: bool = False, server_name: str = "") -> GatewayClientTls | None:
    return GatewayClientTls.from_settings(tls=tls, ca_setting="--tls-ca", ca_path="",
                                          server_name=server_name)


def test_a_server_name_alone_asks_for_tls_with_the_systems_cas() -> None:
    # Plaintext here would send the admin token in clear to an operator expecting TLS.
    assert settings(server_name="gateway.example.org") == GatewayClientTls(
        None, "gateway.example.org")


def test_no_tls_setting_is_plaintext_and_the_switch_alone_is_tls() -> None:
    assert settings() is None
    assert settings(tls=True) == GatewayClientTls(None, "")
