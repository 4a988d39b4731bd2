"""Bootstrap token format, Secret shape and expiry."""

from __future__ import annotations

import base64
import datetime as dt
import re

import pytest
from kubeboot_standin import tokens


def test_generated_tokens_have_kubeadm_format() -> None:
    for _ in range(50):
        assert re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}", tokens.generate())


@pytest.mark.parametrize("bad", ["abcdef.0123456789abcdeF", "abcde.0123456789abcdef", "abcdef0123456789abcdef", ""])
def test_bad_token_format_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="was not of the form"):
        tokens.parse(bad)


def test_secret_is_like_kubeadms() -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    s = tokens.secret("abcdef.0123456789abcdef", "2h", "for tests", now=now)
    assert s["metadata"] == {"name": "bootstrap-token-abcdef", "namespace": "kube-system"}
    assert s["type"] == "bootstrap.kubernetes.io/token"
    data = {k: base64.b64decode(v).decode() for k, v in s["data"].items()}
    assert data == {
        "token-id": "abcdef",
        "token-secret": "0123456789abcdef",
        "description": "for tests",
        "expiration": "2026-01-01T02:00:00Z",
        "usage-bootstrap-signing": "true",
        "usage-bootstrap-authentication": "true",
        "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token",
    }


def test_ttl_zero_never_expires_and_list_hides_expired() -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    forever = tokens.secret("aaaaaa.0123456789abcdef", "0s", now=now)
    assert "expiration" not in forever["data"]
    expired = tokens.secret("bbbbbb.0123456789abcdef", "1h", now=now - dt.timedelta(hours=2))
    live = tokens.secret("cccccc.0123456789abcdef", "24h", now=now)
    out = tokens.list_table([forever, expired, live], now=now)
    assert "aaaaaa.0123456789abcdef   <forever>   <never>" in out
    assert "bbbbbb" not in out
    assert re.search(r"cccccc\.0123456789abcdef\s+24h\s+2026-01-02T00:00:00Z\s+authentication,signing", out)
