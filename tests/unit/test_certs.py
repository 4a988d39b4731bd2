"""Reading `kubeadm certs check-expiration` (kubeboot.certs): both tables, missing files, what is due."""

from __future__ import annotations

import datetime as dt

from kubeboot import certs

NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)
ROWS = [
    '[check-expiration] Reading configuration from the "kubeadm-config" ConfigMap in namespace "kube-system"...',
    "[check-expiration] Use 'kubeadm init phase upload-config kubeadm --config your-config-file' to re-upload it.",
    "",
    "CERTIFICATE                EXPIRES                  RESIDUAL TIME   CERTIFICATE AUTHORITY   EXTERNALLY MANAGED",
    "admin.conf                 Dec 06, 2026 13:30 UTC   1h              ca                      no",
    "apiserver                  Dec 06, 2027 12:00 UTC   365d            ca                      no",
    "apiserver-etcd-client      Dec 20, 2026 12:00 UTC   14d             etcd-ca                 no",
    "front-proxy-client         Dec 01, 2026 12:00 UTC   <invalid>       front-proxy-ca          no",
    "scheduler.conf             Dec 07, 2026 12:00 UTC   24h             ca                      yes",
    "!MISSING! super-admin.conf",
    "",
    "CERTIFICATE AUTHORITY   EXPIRES                  RESIDUAL TIME   EXTERNALLY MANAGED",
    "ca                      Dec 08, 2026 12:00 UTC   2d              no",
    "etcd-ca                 Dec 04, 2036 12:00 UTC   9y              no",
]
# The rows end in tabwriter padding, as kubeadm prints them.
OUTPUT = "\n".join(f"{row}      " if row and not row.startswith("[") else row for row in ROWS) + "\n"


def test_both_tables_with_the_days_left_from_the_expiry_date() -> None:
    report = certs.parse_expiration(OUTPUT, NOW)
    rows = {c["name"]: c for c in report["certificates"]}
    assert list(rows) == ["admin.conf", "apiserver", "apiserver-etcd-client", "front-proxy-client", "scheduler.conf",
                          "super-admin.conf"]
    assert rows["admin.conf"]["days_left"] == round(1.5 / 24, 3)
    assert rows["admin.conf"]["expires"] == "2026-12-06T13:30:00+00:00"
    assert rows["apiserver"]["days_left"] == 365.0 and rows["apiserver"]["authority"] == "ca"
    assert rows["apiserver-etcd-client"]["authority"] == "etcd-ca"
    assert rows["front-proxy-client"]["days_left"] == -5.0
    assert rows["scheduler.conf"]["externally_managed"] is True
    assert rows["super-admin.conf"]["missing"] is True and rows["super-admin.conf"]["days_left"] is None
    assert [(a["name"], a["days_left"], a["authority"]) for a in report["authorities"]] == [
        ("ca", 2.0, ""), ("etcd-ca", 3651.0, "")]


def test_due_are_the_managed_certificates_under_the_threshold_never_an_authority() -> None:
    report = certs.parse_expiration(OUTPUT, NOW)
    assert certs.due(report, 30) == ["admin.conf", "apiserver-etcd-client", "front-proxy-client"]
    assert certs.due(report, "1") == ["admin.conf", "front-proxy-client"]
    assert certs.due(report, 0) == ["front-proxy-client"]
    assert certs.due(certs.parse_expiration("", NOW), 30) == []


def test_summary_names_each_certificate_with_its_days_left() -> None:
    lines = certs.summary(certs.parse_expiration(OUTPUT, NOW))
    assert "apiserver: 365.0 days left (expires 2027-12-06T12:00:00+00:00)" in lines
    assert "super-admin.conf: missing" in lines
    assert lines[-1].startswith("etcd-ca: 3651.0 days left")
