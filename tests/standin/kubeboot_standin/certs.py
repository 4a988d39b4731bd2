"""Real X.509 material the way kubeadm makes it: a cluster CA, signed leaf certificates, kubeconfigs."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Key = rsa.RSAPrivateKey


@dataclass
class KeyPair:
    key: Key
    cert: x509.Certificate

    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def key_pem(self) -> bytes:
        return key_pem(self.key)


def new_key() -> Key:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def key_pem(key: Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _name(cn: str, orgs: list[str] | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs or []]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def new_ca(cn: str = "kubernetes", years: int = 10, *, validity: dt.timedelta | None = None) -> KeyPair:
    """A self-signed CA valid for `validity` (caCertificateValidityPeriod), else `years` of 365 days."""
    key = new_key()
    now = _now()
    validity = validity if validity is not None else dt.timedelta(days=365 * years)
    name = _name(cn)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(key, cert)


def issue(
    ca: KeyPair,
    cn: str,
    orgs: list[str] | None = None,
    *,
    server: bool = False,
    client: bool = False,
    dns: list[str] | None = None,
    ips: list[str] | None = None,
    public_key: Any = None,
    days: int = 365,
    validity: dt.timedelta | None = None,
) -> KeyPair:
    """A leaf signed by `ca`, valid for `validity` (certificateValidityPeriod), else `days`; never beyond the CA."""
    key = new_key() if public_key is None else None
    validity = validity if validity is not None else dt.timedelta(days=days)
    pub = public_key if public_key is not None else key.public_key()  # type: ignore[union-attr]
    now = _now()
    usages = []
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, orgs))
        .issuer_name(ca.cert.subject)
        .public_key(pub)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + validity, not_after(ca.cert)))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
    )
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns or []]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips or []]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca.key, hashes.SHA256())
    return KeyPair(key, cert)  # type: ignore[arg-type]


def renew(ca: KeyPair, cert: x509.Certificate, validity: dt.timedelta) -> KeyPair:
    """kubeadm's RenewUsingLocalCA: a new key and certificate with the old one's subject, SANs and usages."""
    cn, orgs = subject_user(cert)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = san.get_values_for_type(x509.DNSName)
        ips = [str(i) for i in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        dns, ips = [], []
    try:
        eku = list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        eku = []
    return issue(
        ca,
        cn,
        orgs,
        server=ExtendedKeyUsageOID.SERVER_AUTH in eku,
        client=ExtendedKeyUsageOID.CLIENT_AUTH in eku,
        dns=dns,
        ips=ips,
        validity=validity,
    )


def not_after(cert: x509.Certificate) -> dt.datetime:
    utc = getattr(cert, "not_valid_after_utc", None)
    if utc is not None:
        return utc  # type: ignore[no-any-return]
    return cert.not_valid_after.replace(tzinfo=dt.UTC)


def ca_cert_hash(cert: x509.Certificate) -> str:
    """kubeadm's --discovery-token-ca-cert-hash: sha256 of the DER SubjectPublicKeyInfo."""
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def subject_user(cert: x509.Certificate) -> tuple[str, list[str]]:
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return (str(cn[0].value) if cn else "", [str(o.value) for o in orgs])


def write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def write_pair(pki: Path, name: str, pair: KeyPair) -> None:
    write_private(pki / f"{name}.crt", pair.cert_pem(), 0o644)
    write_private(pki / f"{name}.key", pair.key_pem())


def load_pair(pki: Path, name: str) -> KeyPair:
    cert = x509.load_pem_x509_certificate((pki / f"{name}.crt").read_bytes())
    key = serialization.load_pem_private_key((pki / f"{name}.key").read_bytes(), password=None)
    return KeyPair(key, cert)  # type: ignore[arg-type]


def load_cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def kubeconfig(
    server: str,
    ca_pem: bytes,
    user: str,
    *,
    cert_pem: bytes | None = None,
    key_pem_: bytes | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
    token: str | None = None,
    cluster: str = "kubernetes",
) -> dict[str, Any]:
    auth: dict[str, Any] = {}
    if cert_pem is not None and key_pem_ is not None:
        auth = {"client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem_)}
    elif cert_file and key_file:
        auth = {"client-certificate": cert_file, "client-key": key_file}
    elif token:
        auth = {"token": token}
    ctx = f"{user}@{cluster}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"certificate-authority-data": b64(ca_pem), "server": server}}],
        "contexts": [{"name": ctx, "context": {"cluster": cluster, "user": user}}],
        "current-context": ctx,
        "preferences": {},
        "users": [{"name": user, "user": auth}],
    }


def write_kubeconfig(path: Path, cfg: dict[str, Any]) -> None:
    write_private(path, yaml.safe_dump(cfg, sort_keys=False).encode())


def read_kubeconfig(path: Path) -> dict[str, Any]:
    """Return server, ca_pem, cert_pem/key_pem or token of the current context."""
    cfg = yaml.safe_load(path.read_text())
    ctx_name = cfg.get("current-context")
    ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
    cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
    user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])
    out: dict[str, Any] = {"server": cluster["server"]}
    if "certificate-authority-data" in cluster:
        out["ca_pem"] = base64.b64decode(cluster["certificate-authority-data"])
    elif "certificate-authority" in cluster:
        out["ca_pem"] = Path(cluster["certificate-authority"]).read_bytes()
    if "client-certificate-data" in user:
        out["cert_pem"] = base64.b64decode(user["client-certificate-data"])
        out["key_pem"] = base64.b64decode(user["client-key-data"])
    elif "client-certificate" in user:
        from . import paths

        out["cert_pem"] = paths.host(user["client-certificate"]).read_bytes()
        out["key_pem"] = paths.host(user["client-key"]).read_bytes()
    if "token" in user:
        out["token"] = user["token"]
    return out


def subject_user_name(name: x509.Name) -> tuple[str, list[str]]:
    cn = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return (str(cn[0].value) if cn else "", [str(o.value) for o in orgs])
