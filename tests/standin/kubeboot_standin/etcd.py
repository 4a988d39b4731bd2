"""A client of a real etcd's v3 API through its JSON gateway (POST /v3/kv/range, /v3/kv/txn, /v3/watch,
/v3/cluster/member/...), over TLS with the kubeadm client certificates. Standard library only, so that the stand-in's
zipapps carry it. Used by the API server stand-in (its storage), kubeadm join (member add) and kubeadm reset
(member remove).
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import threading
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

Json = dict[str, Any]


# etcd's answers that say "not now" rather than "no" (etcdserver's ErrNoLeader, ErrLeaderChanged, ErrTimeout and
# friends, ErrTooManyRequests): etcd's client retries these, and so does this one.
TRANSIENT = ("no leader", "leader changed", "timed out", "too many requests", "not capable", "unhealthy cluster",
             "Unavailable", "unavailable")


class EtcdError(Exception):
    """etcd could not be reached or refused the request."""


def b64(s: str | bytes) -> str:
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def unb64(s: str | None) -> bytes:
    return base64.b64decode(s or "")


def prefix_end(prefix: str) -> str:
    """The range end that selects every key starting with prefix (the last byte plus one)."""
    raw = prefix.encode()
    return b64(raw[:-1] + bytes([raw[-1] + 1]))


class Etcd:
    """One etcd cluster, reached through the first of its endpoints that answers."""

    def __init__(self, endpoints: list[str], ca: str, cert: str, key: str, timeout: float = 10.0) -> None:
        self.endpoints = [e for e in endpoints if e]
        if not self.endpoints:
            raise EtcdError("no etcd endpoint given")
        self.ctx = ssl.create_default_context(cafile=ca)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.check_hostname = False  # kubeadm's etcd serving certificates name the node, not every address
        self.timeout = timeout
        self.lock = threading.Lock()
        self.conn: http.client.HTTPSConnection | None = None
        self.current = 0

    def _connect(self, endpoint: str, timeout: float | None) -> http.client.HTTPSConnection:
        u = urllib.parse.urlsplit(endpoint)
        return http.client.HTTPSConnection(u.hostname or "127.0.0.1", u.port or 2379, timeout=timeout, context=self.ctx)

    def call(self, path: str, body: Json) -> Json:
        """POST body to /v3/<path>; the answer's JSON. Tries each endpoint, the last that answered first, and goes on
        trying for up to `timeout` seconds while etcd cannot be reached (a restarted member, a connection it closed)
        or answers with a transient error (no leader yet, leader changed, request timed out), as etcd's own client
        retries unavailable endpoints: a write that fails here is one etcd did not take."""
        data = json.dumps(body).encode()
        deadline = time.monotonic() + self.timeout
        pause = 0.1
        with self.lock:
            while True:
                errors = []
                for i in range(len(self.endpoints)):
                    idx = (self.current + i) % len(self.endpoints)
                    try:
                        if self.conn is None or idx != self.current:
                            if self.conn is not None:
                                self.conn.close()
                            self.conn = self._connect(self.endpoints[idx], self.timeout)
                            self.current = idx
                        self.conn.request("POST", f"/v3/{path}", data, {"Content-Type": "application/json"})
                        resp = self.conn.getresponse()
                        text = resp.read()
                    except (OSError, http.client.HTTPException) as exc:
                        errors.append(f"{self.endpoints[idx]}: {exc or type(exc).__name__}")
                        if self.conn is not None:
                            self.conn.close()
                        self.conn = None
                        continue
                    out: Json = json.loads(text or b"{}")
                    if resp.status == 200:
                        return out
                    why = str(out.get("error") or out.get("message") or text)
                    if not any(t in why for t in TRANSIENT):
                        raise EtcdError(f"{self.endpoints[idx]}: {path}: {why!r}")
                    errors.append(f"{self.endpoints[idx]}: {path}: {why!r}")
                if time.monotonic() + pause > deadline:
                    raise EtcdError("; ".join(errors))
                time.sleep(pause)
                pause = min(pause * 2, 1.0)

    # ---- key-value ----
    def range_prefix(self, prefix: str) -> tuple[int, list[Json]]:
        out = self.call("kv/range", {"key": b64(prefix), "range_end": prefix_end(prefix)})
        return int(out["header"]["revision"]), list(out.get("kvs") or [])

    def get(self, key: str) -> Json | None:
        kvs = self.call("kv/range", {"key": b64(key)}).get("kvs") or []
        return kvs[0] if kvs else None

    def txn(self, compare: list[Json], success: list[Json], failure: list[Json] | None = None) -> tuple[bool, int]:
        out = self.call("kv/txn", {"compare": compare, "success": success, "failure": failure or []})
        return bool(out.get("succeeded")), int(out["header"]["revision"])

    @staticmethod
    def put_op(key: str, value: str) -> Json:
        return {"request_put": {"key": b64(key), "value": b64(value)}}

    @staticmethod
    def delete_op(key: str) -> Json:
        return {"request_delete_range": {"key": b64(key)}}

    @staticmethod
    def compare(key: str, target: str, value: int, result: str = "EQUAL") -> Json:
        field = {"CREATE": "create_revision", "MOD": "mod_revision", "VERSION": "version"}[target]
        return {"key": b64(key), "target": target, "result": result, field: str(value)}

    def watch(self, prefix: str, start_revision: int) -> Iterator[tuple[int, list[Json]]]:
        """(revision, events) as etcd sends them, on a connection of its own, until it breaks (EtcdError)."""
        endpoint = self.endpoints[self.current % len(self.endpoints)]
        conn = self._connect(endpoint, None)
        body = {"create_request": {"key": b64(prefix), "range_end": prefix_end(prefix),
                                   "start_revision": str(start_revision)}}
        try:
            conn.request("POST", "/v3/watch", json.dumps(body).encode(), {"Content-Type": "application/json"})
            resp = conn.getresponse()
            if resp.status != 200:
                raise EtcdError(f"{endpoint}: watch: HTTP {resp.status}")
            while True:
                line = resp.readline()
                if not line:
                    raise EtcdError(f"{endpoint}: watch stream closed")
                if not line.strip():
                    continue
                result = json.loads(line).get("result") or {}
                if result.get("canceled") or result.get("compact_revision"):
                    raise EtcdError(f"{endpoint}: watch canceled: {result.get('cancel_reason') or 'compacted'}")
                events = result.get("events") or []
                if events:
                    yield int(result["header"]["revision"]), events
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise EtcdError(f"{endpoint}: watch: {exc}") from exc
        finally:
            conn.close()

    # ---- cluster membership ----
    def members(self) -> list[Json]:
        return list(self.call("cluster/member/list", {}).get("members") or [])

    def member_add(self, peer_urls: list[str], learner: bool = False) -> Json:
        return self.call("cluster/member/add", {"peerURLs": peer_urls, "isLearner": learner})

    def member_promote(self, member_id: str) -> None:
        self.call("cluster/member/promote", {"ID": member_id})

    def member_remove(self, member_id: str) -> None:
        self.call("cluster/member/remove", {"ID": member_id})

    def status(self) -> Json:
        return self.call("maintenance/status", {})
