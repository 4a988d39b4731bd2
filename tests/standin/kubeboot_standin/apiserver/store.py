"""Object storage with resourceVersions, a watch event log, and on-disk persistence (the "etcd")."""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import queue
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from ..etcd import Etcd, EtcdError, unb64

Key = tuple[str, str, str, str]  # group, plural, namespace, name
Obj = dict[str, Any]


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Conflict(Exception):
    pass


class Store:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.objects: dict[Key, Obj] = {}
        self.rv = 1
        self.log: list[tuple[int, str, str, str, Obj]] = []  # rv, type, group, plural, obj
        self.watchers: list[tuple[str, str, queue.Queue[tuple[str, Obj] | None]]] = []
        if path and path.exists():
            data = json.loads(path.read_text())
            self.rv = data["rv"]
            for item in data["objects"]:
                g, p, ns, n = item["key"]
                self.objects[(g, p, ns, n)] = item["obj"]

    def _flush(self) -> None:
        if not self.path:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        data = {"rv": self.rv, "objects": [{"key": list(k), "obj": v} for k, v in self.objects.items()]}
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.path)

    def _emit(self, etype: str, group: str, plural: str, obj: Obj) -> None:
        self.log.append((self.rv, etype, group, plural, copy.deepcopy(obj)))
        del self.log[:-2000]
        for g, p, q in list(self.watchers):
            if g == group and p == plural:
                q.put((etype, copy.deepcopy(obj)))

    def get(self, key: Key) -> Obj | None:
        with self.lock:
            o = self.objects.get(key)
            return copy.deepcopy(o) if o is not None else None

    def list(self, group: str, plural: str, namespace: str | None = None) -> list[Obj]:
        with self.lock:
            return [
                copy.deepcopy(v)
                for k, v in sorted(self.objects.items())
                if k[0] == group and k[1] == plural and (namespace is None or k[2] == namespace)
            ]

    def create(self, key: Key, obj: Obj) -> Obj:
        with self.lock:
            if key in self.objects:
                raise Conflict("exists")
            self.rv += 1
            meta = obj.setdefault("metadata", {})
            meta["resourceVersion"] = str(self.rv)
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", now_rfc3339())
            meta.pop("generation", None)
            meta["generation"] = 1
            self.objects[key] = copy.deepcopy(obj)
            self._emit("ADDED", key[0], key[1], obj)
            self._flush()
            return copy.deepcopy(obj)

    def update(self, key: Key, obj: Obj, expect_rv: str | None = None) -> Obj:
        with self.lock:
            meta = self._updated_meta(key, obj, expect_rv)
            self.rv += 1
            meta["resourceVersion"] = str(self.rv)
            self.objects[key] = copy.deepcopy(obj)
            self._emit("MODIFIED", key[0], key[1], obj)
            self._flush()
            return copy.deepcopy(obj)

    def _updated_meta(self, key: Key, obj: Obj, expect_rv: str | None) -> Obj:
        """obj's metadata as an update makes it from the stored object's (uid, creation, generation); Conflict when
        expect_rv is not the stored resourceVersion, KeyError when nothing is stored."""
        old = self.objects.get(key)
        if old is None:
            raise KeyError(key)
        if expect_rv and expect_rv != old["metadata"].get("resourceVersion"):
            raise Conflict(
                "the object has been modified; please apply your changes to the latest version and try again"
            )
        meta: Obj = obj.setdefault("metadata", {})
        for k in ("uid", "creationTimestamp"):
            meta[k] = old["metadata"].get(k)
        gen = old["metadata"].get("generation", 1)
        if obj.get("spec") != old.get("spec"):
            gen += 1
        meta["generation"] = gen
        return meta

    def delete(self, key: Key) -> Obj | None:
        with self.lock:
            old = self.objects.pop(key, None)
            if old is None:
                return None
            self.rv += 1
            old["metadata"]["resourceVersion"] = str(self.rv)
            self._emit("DELETED", key[0], key[1], old)
            self._flush()
            return copy.deepcopy(old)

    def watch(self, group: str, plural: str, since_rv: int | None) -> queue.Queue[tuple[str, Obj] | None]:
        q: queue.Queue[tuple[str, Obj] | None] = queue.Queue()
        with self.lock:
            if since_rv is not None:
                for rv, etype, g, p, obj in self.log:
                    if rv > since_rv and g == group and p == plural:
                        q.put((etype, copy.deepcopy(obj)))
            self.watchers.append((group, plural, q))
        return q

    def lead(self, identity: str) -> bool:
        """Whether this API server runs the controllers: always, with a store of its own."""
        return bool(identity)

    def unwatch(self, q: queue.Queue[tuple[str, Obj] | None]) -> None:
        with self.lock:
            self.watchers = [w for w in self.watchers if w[2] is not q]


def etcd_key(key: Key) -> str:
    """Where an object lives in etcd, as the real API server lays it out: /registry/<plural>/<namespace>/<name>,
    with the API group before the plural for objects outside the core group."""
    group, plural, ns, name = key
    parts = [p for p in (group, plural, ns, name) if p]
    return "/registry/" + "/".join(parts)


def key_of(etcd_name: str, obj: Obj) -> Key | None:
    """The store key of an object read back from etcd (None for what is not an object of ours)."""
    if not etcd_name.startswith("/registry/"):
        return None
    parts = etcd_name[len("/registry/"):].split("/")
    api_version = str(obj.get("apiVersion") or "v1")
    group = api_version.split("/", maxsplit=1)[0] if "/" in api_version else ""
    if group:
        if parts[0] != group:
            return None
        parts = parts[1:]
    if len(parts) == 2:
        return (group, parts[0], "", parts[1])
    if len(parts) == 3:
        return (group, parts[0], parts[1], parts[2])
    return None


LEADER_KEY = "/kubeboot-standin/controller-leader"  # outside /registry/: not an object


class EtcdStore(Store):
    """The same store, kept in a real etcd (the cluster's, through the local member): objects as JSON under
    /registry/..., resourceVersions are etcd's revisions, and a watch on /registry/ brings the writes of the other
    control planes' API servers into this one's cache and to its watchers."""

    def __init__(self, client: Etcd, wait: float = 300.0) -> None:
        super().__init__(None)
        self.etcd = client
        self.own: set[int] = set()
        self.stopped = False
        deadline = time.monotonic() + wait
        while True:
            try:
                rev, kvs = self.etcd.range_prefix("/registry/")
                break
            except EtcdError as exc:
                if time.monotonic() > deadline:
                    raise
                print(f"W storage] waiting for etcd: {exc}", flush=True)
                time.sleep(1)
        for kv in kvs:
            self._load(kv)
        self.rv = rev
        threading.Thread(target=self._follow, args=(rev + 1,), daemon=True).start()

    def _load(self, kv: dict[str, Any]) -> tuple[Key, Obj] | None:
        try:
            obj = json.loads(unb64(kv.get("value")))
            key = key_of(unb64(kv["key"]).decode(), obj) if isinstance(obj, dict) else None
        except ValueError:  # not JSON, not UTF-8
            return None
        if key is None or not isinstance(obj.get("metadata", {}), dict):
            return None
        obj.setdefault("metadata", {})["resourceVersion"] = str(kv["mod_revision"])
        self.objects[key] = obj
        return key, obj

    def _follow(self, start: int) -> None:
        while not self.stopped:
            try:
                for rev, events in self.etcd.watch("/registry/", start):
                    with self.lock:
                        self._apply(events)
                        self.rv = max(self.rv, rev)
                    start = rev + 1
                    if self.stopped:
                        return
            except EtcdError as exc:
                if not self.stopped:
                    print(f"W storage] etcd watch: {exc}; watching again from {start}", flush=True)
                    time.sleep(1)

    def close(self) -> None:
        """Stop following etcd (the watch ends with its next event or error)."""
        self.stopped = True

    def _apply(self, events: list[dict[str, Any]]) -> None:
        """The other writers' events (this store's own writes are in its cache already), one by one."""
        for ev in events:
            try:
                kv = ev.get("kv") or {}
                rev = int(kv.get("mod_revision") or 0)
                if rev in self.own:
                    self.own.discard(rev)
                    continue
                self.rv = max(self.rv, rev)
                name = unb64(kv.get("key")).decode()
                if ev.get("type") == "DELETE":
                    gone = next((k for k in self.objects if etcd_key(k) == name), None)
                    if gone is not None:
                        old = self.objects.pop(gone)
                        old["metadata"]["resourceVersion"] = str(rev or self.rv)
                        self._emit("DELETED", gone[0], gone[1], old)
                    continue
                existed = {k for k in self.objects}
                loaded = self._load(kv)
                if loaded:
                    key, obj = loaded
                    self._emit("MODIFIED" if key in existed else "ADDED", key[0], key[1], obj)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:  # one bad value must not stop the cache
                print(f"W storage] skipping an etcd event: {exc!r}", flush=True)

    def _write(self, key: Key, compare: list[dict[str, Any]], op: dict[str, Any]) -> int:
        ok, rev = self.etcd.txn(compare, [op])
        if not ok:
            raise Conflict(
                "the object has been modified; please apply your changes to the latest version and try again"
            )
        self.own.add(rev)
        self.rv = max(self.rv, rev)
        return rev

    @staticmethod
    def _value(obj: Obj) -> str:
        stored = copy.deepcopy(obj)
        stored.get("metadata", {}).pop("resourceVersion", None)
        return json.dumps(stored, separators=(",", ":"))

    def create(self, key: Key, obj: Obj) -> Obj:
        with self.lock:
            if key in self.objects:
                raise Conflict("exists")
            meta = obj.setdefault("metadata", {})
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", now_rfc3339())
            meta["generation"] = 1
            name = etcd_key(key)
            try:
                rev = self._write(key, [self.etcd.compare(name, "CREATE", 0)], self.etcd.put_op(name, self._value(obj)))
            except Conflict:
                raise Conflict("exists") from None
            meta["resourceVersion"] = str(rev)
            self.objects[key] = copy.deepcopy(obj)
            self._emit("ADDED", key[0], key[1], obj)
            return copy.deepcopy(obj)

    def update(self, key: Key, obj: Obj, expect_rv: str | None = None) -> Obj:
        with self.lock:
            current = (self.objects.get(key) or {}).get("metadata", {}).get("resourceVersion")
            meta = self._updated_meta(key, obj, expect_rv)
            name = etcd_key(key)
            rev = self._write(key, [self.etcd.compare(name, "MOD", int(current or 0))],
                              self.etcd.put_op(name, self._value(obj)))
            meta["resourceVersion"] = str(rev)
            self.objects[key] = copy.deepcopy(obj)
            self._emit("MODIFIED", key[0], key[1], obj)
            return copy.deepcopy(obj)

    def delete(self, key: Key) -> Obj | None:
        with self.lock:
            old = self.objects.get(key)
            if old is None:
                return None
            name = etcd_key(key)
            rev = self._write(key, [self.etcd.compare(name, "CREATE", 0, "GREATER")], self.etcd.delete_op(name))
            del self.objects[key]
            old["metadata"]["resourceVersion"] = str(rev)
            self._emit("DELETED", key[0], key[1], old)
            return copy.deepcopy(old)

    def lead(self, identity: str, ttl: float = 15.0) -> bool:
        """Leader election for the controllers, as kube-controller-manager's Lease: the holder renews every loop; a
        lease not renewed within ttl seconds is taken over."""
        try:
            kv = self.etcd.get(LEADER_KEY)
            now = time.time()
            value = json.dumps({"holder": identity, "renewTime": now})
            if kv is None:
                ok, _ = self.etcd.txn(
                    [self.etcd.compare(LEADER_KEY, "CREATE", 0)], [self.etcd.put_op(LEADER_KEY, value)]
                )
                return bool(ok)
            held = json.loads(unb64(kv.get("value")))
            if held.get("holder") != identity and now - float(held.get("renewTime") or 0) < ttl:
                return False
            ok, _ = self.etcd.txn([self.etcd.compare(LEADER_KEY, "MOD", int(kv["mod_revision"]))],
                                  [self.etcd.put_op(LEADER_KEY, value)])
            return bool(ok)
        except (EtcdError, ValueError) as exc:
            print(f"W leaderelection] {exc}", flush=True)
            return False
