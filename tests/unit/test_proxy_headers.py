"""Which peers' proxy headers are believed, and what they change in a scope (in process)."""

from __future__ import annotations

import pytest

from django_asgiserve.asgi.proxy_headers import DEFAULT_ALLOW_IPS, TrustedProxies, forwarded_scope


def scope(client: str, *headers: tuple[bytes, bytes], kind: str = "http") -> dict[str, object]:
    return {"type": kind, "client": (client, 5000), "scheme": "http", "headers": list(headers)}


@pytest.mark.parametrize(
    ("entries", "host", "trusted"),
    [
        (DEFAULT_ALLOW_IPS, "127.0.0.1", True),
        (DEFAULT_ALLOW_IPS, "::1", True),
        (DEFAULT_ALLOW_IPS, "10.0.0.1", False),
        (["10.0.0.0/8"], "10.1.2.3", True),
        (["10.0.0.0/8"], "::ffff:10.1.2.3", True),
        (["fd00::/8"], "fd12::1", True),
        (["*"], "203.0.113.9", True),
        (["10.0.0.1"], "not an address", False),
    ],
)
def test_trusted_peers(entries, host, trusted) -> None:
    assert (host in TrustedProxies(entries)) is trusted


@pytest.mark.parametrize("entry", ["10.0.0.300", "example.com", "10.0.0.0/33"])
def test_a_bad_entry_is_named(entry: str) -> None:
    with pytest.raises(ValueError, match=repr(entry).replace(".", r"\.")):
        TrustedProxies([entry])


def test_the_option_splits_on_commas_and_skips_empty_items() -> None:
    assert TrustedProxies.from_option(" 10.0.0.1, ,fd00::/8,").entries == ["10.0.0.1", "fd00::/8"]


def test_the_client_is_the_last_untrusted_hop() -> None:
    trusted = TrustedProxies(["127.0.0.1", "10.0.0.0/8"])
    assert trusted.client("203.0.113.9, 198.51.100.1, 10.0.0.5") == "198.51.100.1"
    assert trusted.client("10.0.0.7, 10.0.0.5") == "10.0.0.7"
    assert trusted.client(" , ") is None


def test_a_trusted_peer_sets_client_and_scheme() -> None:
    trusted = TrustedProxies(DEFAULT_ALLOW_IPS)
    forwarded = forwarded_scope(
        scope("127.0.0.1", (b"X-Forwarded-For", b"203.0.113.9"), (b"x-forwarded-proto", b"HTTPS")),
        trusted,
    )
    assert forwarded["client"] == ("203.0.113.9", 0)
    assert forwarded["scheme"] == "https"


def test_a_websocket_gets_the_websocket_scheme() -> None:
    trusted = TrustedProxies(DEFAULT_ALLOW_IPS)
    ws = scope("127.0.0.1", (b"x-forwarded-proto", b"https"), kind="websocket")
    assert forwarded_scope(ws, trusted)["scheme"] == "wss"


def test_an_untrusted_peer_and_an_unknown_scheme_change_nothing() -> None:
    trusted = TrustedProxies(DEFAULT_ALLOW_IPS)
    untrusted = scope("10.0.0.1", (b"x-forwarded-for", b"203.0.113.9"))
    assert forwarded_scope(untrusted, trusted) is untrusted
    odd = scope("127.0.0.1", (b"x-forwarded-proto", b"gopher"))
    assert forwarded_scope(odd, trusted) is odd
