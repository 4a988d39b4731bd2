"""HTTPS front end: TLS with client certificates, bearer tokens, routing to Api, watch streams."""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import json
import queue
import socket
import socketserver
import ssl
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml
from cryptography import x509

from ..certs import subject_user
from ..etcd import EtcdError
from . import disruption, protobuf
from .api import Api, ApiError, Request, match_fields, match_labels, parse_query, to_table
from .authz import Attributes, User, authorize
from .openapi import openapi_v2_protobuf, openapi_v3

BOOTSTRAP_TYPE = "bootstrap.kubernetes.io/token"


def _b64(s: str | None) -> str:
    return base64.b64decode(s or "").decode() if s else ""


def bootstrap_user(api: Api, token: str) -> User | None:
    tid, _, secret = token.partition(".")
    obj = api.store.get(("", "secrets", "kube-system", f"bootstrap-token-{tid}"))
    if not obj or obj.get("type") != BOOTSTRAP_TYPE:
        return None
    data = obj.get("data") or {}
    if not hmac.compare_digest(_b64(data.get("token-secret")), secret):
        return None
    if _b64(data.get("usage-bootstrap-authentication")) != "true":
        return None
    exp = _b64(data.get("expiration"))
    if exp and dt.datetime.fromisoformat(exp.replace("Z", "+00:00")) < dt.datetime.now(dt.UTC):
        return None
    groups = ["system:bootstrappers"] + [g for g in _b64(data.get("auth-extra-groups")).split(",") if g]
    return User(f"system:bootstrap:{tid}", groups)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def setup(self) -> None:
        self.request = self.server.ssl_context.wrap_socket(self.request, server_side=True)
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def _user(self) -> User | None:
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            u = bootstrap_user(self.server.api, auth[7:].strip())
            if u is None:
                return None
            return u
        der = self.request.getpeercert(binary_form=True)
        if der:
            name, groups = subject_user(x509.load_der_x509_certificate(der))
            return self._impersonate(User(name, groups))
        return User("system:anonymous", [])

    def _impersonate(self, user: User) -> User | None:
        target = self.headers.get("Impersonate-User")
        if not target:
            return user
        if not authorize(self.server.api.store, user, Attributes("impersonate", "", "users", name=target)):
            return None
        return User(target, self.headers.get_all("Impersonate-Group") or [])

    def _send(self, code: int, body: Any, ctype: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        path, _, qs = self.path.partition("?")
        query = parse_query(qs)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        user = self._user()
        if user is None:
            self._send(
                401,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Failure",
                    "message": "Unauthorized",
                    "reason": "Unauthorized",
                    "code": 401,
                },
            )
            return
        api = self.server.api
        req = Request(self.command, path, query, {k.lower(): v for k, v in self.headers.items()}, body, user)
        try:
            if path in ("/healthz", "/livez", "/readyz") or path.startswith(("/healthz/", "/livez/", "/readyz/")):
                self._send(200, b"ok", "text/plain; charset=utf-8")
                return
            if path == "/version":
                self._send(200, api.version)
                return
            if path == "/openapi/v2":
                self._send(
                    200,
                    openapi_v2_protobuf(api.version["gitVersion"]),
                    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
                )
                return
            if path.startswith("/openapi/"):
                doc = openapi_v3(api, path)
                if doc is None:
                    raise ApiError(404, "NotFound", "the server could not find the requested resource")
                self._send(200, doc)
                return
            target = api.parse(path) if self.command != "GET" or api.discovery(path) is None else None
            if target is None:
                doc = api.discovery(path)
                if doc is None or self.command != "GET":
                    raise ApiError(404, "NotFound", "the server could not find the requested resource")
                self._send(200, doc)
                return
            self._resource(req, target)
        except ApiError as exc:
            self._send(exc.code, exc.status())
        except EtcdError as exc:  # etcd unreachable past the client's retries: an answer, as kube-apiserver gives one
            print(f"E storage] {self.command} {path}: {exc}", flush=True)
            self._send(500, ApiError(500, "InternalError", f"Internal error occurred: etcdserver: {exc}").status())

    def _resource(self, req: Request, t: Any) -> None:
        api = self.server.api
        verb = api.verb(self.command, t, req.query)
        if t.subresource == "eviction":
            verb = "create"
        api.check(req, t, verb)
        accept = req.headers.get("accept", "")
        if verb == "get":
            obj = api.get(t)
            if t.res.kind == "PodDisruptionBudget":
                obj = disruption.with_status(api, obj)
            if "as=Table" in accept:
                self._send(200, to_table(t.res, [obj], {"resourceVersion": obj["metadata"]["resourceVersion"]}))
            else:
                self._send(200, obj)
        elif verb == "list":
            lst = api.list(t, req.query)
            if t.res.kind == "PodDisruptionBudget":
                lst["items"] = [disruption.with_status(api, o) for o in lst["items"]]
            self._send(200, to_table(t.res, lst["items"], lst["metadata"]) if "as=Table" in accept else lst)
        elif verb == "watch":
            self._watch(req, t)
        elif verb == "create":
            obj = _decode(req)
            if t.subresource == "eviction":
                self._send(201, disruption.evict(api, t, obj, req.query.get("dryRun") == "All"))
                return
            if t.res.kind == "SelfSubjectAccessReview" or t.res.kind == "SubjectAccessReview":
                self._send(201, access_review(api, req.user, obj))
                return
            if req.query.get("dryRun") == "All":
                self._send(201, obj)
                return
            self._send(201, api.create(t, obj, req))
        elif verb == "update":
            obj = _decode(req)
            self._send(200, obj if req.query.get("dryRun") == "All" else api.update(t, obj))
        elif verb == "patch":
            dry = req.query.get("dryRun") == "All"
            self._send(200, api.patch(t, req.headers.get("content-type", ""), _decode(req), dry_run=dry))
        elif verb == "delete":
            self._send(200, api.get(t) if req.query.get("dryRun") == "All" else api.delete(t))
        elif verb == "deletecollection":
            lst = api.list(t, req.query)
            for o in lst["items"]:
                api.delete(type(t)(t.res, o["metadata"].get("namespace", ""), o["metadata"]["name"], ""))
            self._send(200, lst)
        else:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def _watch(self, req: Request, t: Any) -> None:
        api = self.server.api
        since = req.query.get("resourceVersion")
        q = api.store.watch(t.res.group, t.res.plural, int(since) if since and since.isdigit() else None)
        if not since or since == "0":
            for o in api.list(t, req.query)["items"]:
                q.put(("ADDED", o))
        deadline = time.monotonic() + float(req.query.get("timeoutSeconds") or 1800)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            while time.monotonic() < deadline and not self.server.stopping:
                try:
                    ev = q.get(timeout=0.5)
                except queue.Empty:
                    continue
                if ev is None:
                    break
                etype, obj = ev
                ns = obj.get("metadata", {}).get("namespace", "")
                if t.res.namespaced and t.namespace and ns != t.namespace:
                    continue
                if not (
                    match_labels(obj, req.query.get("labelSelector", ""))
                    and match_fields(obj, req.query.get("fieldSelector", ""))
                ):
                    continue
                line = json.dumps({"type": etype, "object": obj}).encode() + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            pass
        finally:
            api.store.unwatch(q)
        self.close_connection = True

    do_GET = _handle
    do_POST = _handle
    do_PUT = _handle
    do_PATCH = _handle
    do_DELETE = _handle


def _decode(req: Request) -> Any:
    if not req.body:
        return {}
    ctype = req.headers.get("content-type", "")
    if "protobuf" in ctype:
        try:
            return protobuf.decode(req.body)
        except (ValueError, IndexError) as exc:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - "
                f"accepted media types include: application/json, application/yaml ({exc})",
            ) from None
    if "cbor" in ctype:
        raise ApiError(
            415,
            "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted "
            f"media types include: application/json, application/yaml ({ctype})",
        )
    try:
        if "yaml" in ctype:
            return yaml.safe_load(req.body)
        return json.loads(req.body)
    except (ValueError, yaml.YAMLError) as exc:
        raise ApiError(400, "BadRequest", f"error decoding request body: {exc}") from None


def access_review(api: Api, user: User, review: dict[str, Any]) -> dict[str, Any]:
    spec = review.get("spec", {})
    if review.get("kind") == "SubjectAccessReview":
        user = User(spec.get("user", ""), list(spec.get("groups") or []))
    ra = spec.get("resourceAttributes")
    nra = spec.get("nonResourceAttributes")
    if ra:
        attrs = Attributes(
            ra.get("verb", ""),
            ra.get("group", ""),
            ra.get("resource", ""),
            ra.get("subresource", ""),
            ra.get("namespace", ""),
            ra.get("name", ""),
        )
    else:
        attrs = Attributes((nra or {}).get("verb", "get"), path=(nra or {}).get("path", ""))
    allowed = authorize(api.store, user, attrs)
    review["status"] = {"allowed": allowed, **({} if allowed else {"reason": ""})}
    review.setdefault("metadata", {})["creationTimestamp"] = None
    return review


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], api: Api, ctx: ssl.SSLContext, verbose: bool = False) -> None:
        self.api = api
        self.ssl_context = ctx
        self.verbose = verbose
        self.stopping = False
        super().__init__(addr, Handler)

    def handle_error(self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any) -> None:
        """A request that broke the handler closes its connection (the client sees EOF): its traceback goes to the
        log, where a test's failure can be read; a client that went away (OSError) only with --v."""
        if self.verbose or not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


def ssl_context(cert: str, key: str, client_ca: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(client_ca)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


_ = socketserver  # kept for type references in handle_error
