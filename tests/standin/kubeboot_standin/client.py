"""A small Kubernetes REST client for the stand-in's own components (kubeadm, kubelet, CNI agents)."""

from __future__ import annotations

import http.client
import json
import os
import ssl
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from . import certs, paths


class ApiError(Exception):
    def __init__(self, code: int, body: Any) -> None:
        msg = body.get("message") if isinstance(body, dict) else str(body)
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.body = body


class Client:
    def __init__(
        self,
        server: str,
        ca_pem: bytes | None = None,
        cert_pem: bytes | None = None,
        key_pem: bytes | None = None,
        token: str | None = None,
        timeout: float = 10,
    ) -> None:
        u = urlparse(server)
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or 443
        self.server = server
        self.token = token
        self.timeout = timeout
        ctx = ssl.create_default_context()
        if ca_pem is None:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        else:
            ctx.load_verify_locations(cadata=ca_pem.decode())
            ctx.check_hostname = False  # the serving cert is checked against the CA; SANs differ in tests
        if cert_pem and key_pem:
            with tempfile.TemporaryDirectory() as d:
                cf, kf = Path(d) / "c.pem", Path(d) / "k.pem"
                cf.write_bytes(cert_pem)
                fd = os.open(kf, os.O_WRONLY | os.O_CREAT, 0o600)
                os.write(fd, key_pem)
                os.close(fd)
                ctx.load_cert_chain(str(cf), str(kf))
        self.ctx = ctx

    @classmethod
    def from_kubeconfig(cls, path: Path, timeout: float = 10) -> Client:
        kc = certs.read_kubeconfig(path)
        return cls(
            kc["server"], kc.get("ca_pem"), kc.get("cert_pem"), kc.get("key_pem"), kc.get("token"), timeout=timeout
        )

    def request(self, method: str, path: str, body: Any = None, ctype: str = "application/json") -> Any:
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=self.timeout)
        headers = {"Accept": "application/json", "User-Agent": f"kubeadm/{paths.VERSION} (linux/amd64)"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = ctype
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        try:
            out = json.loads(raw) if raw else None
        except ValueError:
            out = raw.decode(errors="replace")
        if resp.status >= 400:
            raise ApiError(resp.status, out)
        return out

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def get_or_none(self, path: str) -> Any:
        try:
            return self.get(path)
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise

    def create(self, path: str, obj: dict[str, Any]) -> Any:
        return self.request("POST", path, obj)

    def apply(self, collection: str, obj: dict[str, Any]) -> Any:
        """Create, or replace if it exists (what kubeadm's CreateOrUpdate helpers do)."""
        try:
            return self.create(collection, obj)
        except ApiError as exc:
            if exc.code != 409:
                raise
        cur = self.get(f"{collection}/{obj['metadata']['name']}")
        obj.setdefault("metadata", {})["resourceVersion"] = cur["metadata"]["resourceVersion"]
        return self.request("PUT", f"{collection}/{obj['metadata']['name']}", obj)

    def patch(self, path: str, patch: Any, kind: str = "strategic") -> Any:
        ctype = {
            "strategic": "application/strategic-merge-patch+json",
            "merge": "application/merge-patch+json",
            "json": "application/json-patch+json",
        }[kind]
        return self.request("PATCH", path, patch, ctype)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)
