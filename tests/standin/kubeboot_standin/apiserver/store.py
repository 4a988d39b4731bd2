"""Object storage with resourceVersions, a watch event log, and on-disk persistence (the "etcd")."""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import queue
import threading
import uuid
from pathlib import Path
from typing import Any

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
            old = self.objects.get(key)
            if old is None:
                raise KeyError(key)
            if expect_rv and expect_rv != old["metadata"].get("resourceVersion"):
                raise Conflict(
                    "the object has been modified; please apply your changes to the latest version and try again"
                )
            self.rv += 1
            meta = obj.setdefault("metadata", {})
            for k in ("uid", "creationTimestamp"):
                meta[k] = old["metadata"].get(k)
            gen = old["metadata"].get("generation", 1)
            if obj.get("spec") != old.get("spec"):
                gen += 1
            meta["generation"] = gen
            meta["resourceVersion"] = str(self.rv)
            self.objects[key] = copy.deepcopy(obj)
            self._emit("MODIFIED", key[0], key[1], obj)
            self._flush()
            return copy.deepcopy(obj)

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

    def unwatch(self, q: queue.Queue[tuple[str, Obj] | None]) -> None:
        with self.lock:
            self.watchers = [w for w in self.watchers if w[2] is not q]
