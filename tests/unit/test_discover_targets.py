"""HOST arguments of `kubeboot discover`: [NAME=][USER@]HOST[:PORT]."""

from __future__ import annotations

import pytest

from kubeboot.discover.targets import Target, parse_target, parse_targets
from kubeboot.errors import UsageError


@pytest.mark.parametrize(("spec", "expected"), [
    ("10.0.0.1", Target("10.0.0.1", "10.0.0.1")),
    ("root@10.0.0.1:2222", Target("root@10.0.0.1:2222", "10.0.0.1", 2222, "root")),
    ("cp1=admin@host.example.org", Target("cp1=admin@host.example.org", "host.example.org", None, "admin", "cp1")),
    ("2001:db8::1", Target("2001:db8::1", "2001:db8::1")),
    ("[2001:db8:0::1]:22", Target("[2001:db8:0::1]:22", "2001:db8::1", 22)),
    ("w1=[2001:db8::1]", Target("w1=[2001:db8::1]", "2001:db8::1", None, None, "w1")),
])
def test_parse(spec: str, expected: Target) -> None:
    assert parse_target(spec) == expected


def test_address_or_name() -> None:
    assert parse_target("10.0.0.1").is_address
    assert parse_target("[2001:db8::1]").is_address
    assert not parse_target("node1.example.org").is_address
    assert parse_target("cp1=10.0.0.1").label == "cp1"


@pytest.mark.parametrize(("spec", "message"), [
    ("10.0.0.1:0", "port '0'"),
    ("10.0.0.1:ssh", "port 'ssh'"),
    ("@10.0.0.1", "empty user"),
    ("bad/name=10.0.0.1", "inventory name 'bad/name'"),
    ("[2001:db8::1", "missing ']'"),
    ("[2001:db8::1]x", "expected ':PORT'"),
    ("host_with_underscore!", "neither an address nor a host name"),
    ("", "no host name"),
])
def test_bad_specs_are_usage_errors_naming_the_argument(spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_target(spec)


def test_duplicates_are_refused() -> None:
    with pytest.raises(UsageError, match="given twice"):
        parse_targets(["10.0.0.1", "root@10.0.0.1"])
    with pytest.raises(UsageError, match="inventory name 'a'"):
        parse_targets(["a=10.0.0.1", "a=10.0.0.2"])
    assert len(parse_targets(["10.0.0.1", "10.0.0.1:2222"])) == 2
