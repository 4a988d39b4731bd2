"""Decoding of the Kubernetes protobuf envelope for the kinds kubectl's typed `create` subcommands send
(kubectl create namespace/configmap/secret/serviceaccount). Other kinds get 415, as unknown encodings do."""

from __future__ import annotations

import base64
from typing import Any

MAGIC = b"k8s\x00"


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def fields(buf: bytes) -> list[tuple[int, int, Any]]:
    out = []
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        val: Any
        if wire == 0:
            val, i = _varint(buf, i)
        elif wire == 2:
            n, i = _varint(buf, i)
            val = buf[i : i + n]
            i += n
        elif wire == 1:
            val, i = buf[i : i + 8], i + 8
        elif wire == 5:
            val, i = buf[i : i + 4], i + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        out.append((num, wire, val))
    return out


def _map_entry(buf: bytes) -> tuple[str, bytes]:
    k, v = "", b""
    for num, _, val in fields(buf):
        if num == 1:
            k = val.decode()
        elif num == 2:
            v = val
    return k, v


def object_meta(buf: bytes) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    names = {1: "name", 2: "generateName", 3: "namespace", 5: "uid", 6: "resourceVersion"}
    for num, _, val in fields(buf):
        if num in names:
            meta[names[num]] = val.decode()
        elif num in (11, 12):
            k, v = _map_entry(val)
            meta.setdefault("labels" if num == 11 else "annotations", {})[k] = v.decode()
        elif num == 14:
            meta.setdefault("finalizers", []).append(val.decode())
    return meta


def decode(body: bytes) -> dict[str, Any]:
    if not body.startswith(MAGIC):
        raise ValueError("missing protobuf magic")
    api_version = kind = ""
    raw = b""
    for num, _, val in fields(body[len(MAGIC) :]):
        if num == 1:
            for n2, _, v2 in fields(val):
                if n2 == 1:
                    api_version = v2.decode()
                elif n2 == 2:
                    kind = v2.decode()
        elif num == 2:
            raw = val
    obj: dict[str, Any] = {"apiVersion": api_version, "kind": kind}
    if kind in ("SelfSubjectAccessReview", "SubjectAccessReview"):
        return _access_review(obj, raw)
    if kind not in ("Namespace", "ConfigMap", "Secret", "ServiceAccount"):
        raise ValueError(f"protobuf decoding of {kind} is not supported by the stand-in")
    for num, _, val in fields(raw):
        if num == 1:
            obj["metadata"] = object_meta(val)
        elif kind == "ConfigMap" and num in (2, 3):
            k, v = _map_entry(val)
            if num == 2:
                obj.setdefault("data", {})[k] = v.decode()
            else:
                obj.setdefault("binaryData", {})[k] = base64.b64encode(v).decode()
        elif kind == "Secret" and num == 2:
            k, v = _map_entry(val)
            obj.setdefault("data", {})[k] = base64.b64encode(v).decode()
        elif kind == "Secret" and num == 3:
            obj["type"] = val.decode()
        elif kind == "Namespace" and num == 2:
            obj["spec"] = {"finalizers": [v.decode() for n, _, v in fields(val) if n == 1]}
    return obj


def _access_review(obj: dict[str, Any], raw: bytes) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    for num, _, val in fields(raw):
        if num == 1:
            obj["metadata"] = object_meta(val)
        elif num == 2:
            for n2, _, v2 in fields(val):
                if n2 == 1:
                    names = {
                        1: "namespace",
                        2: "verb",
                        3: "group",
                        4: "version",
                        5: "resource",
                        6: "subresource",
                        7: "name",
                    }
                    spec["resourceAttributes"] = {names[n]: v.decode() for n, _, v in fields(v2) if n in names}
                elif n2 == 2:
                    names = {1: "path", 2: "verb"}
                    spec["nonResourceAttributes"] = {names[n]: v.decode() for n, _, v in fields(v2) if n in names}
                elif n2 == 3 and obj["kind"] == "SubjectAccessReview":
                    spec["user"] = v2.decode()
                elif n2 == 4 and obj["kind"] == "SubjectAccessReview":
                    spec.setdefault("groups", []).append(v2.decode())
    obj["spec"] = spec
    return obj


# ---- encoding ----
def encode_varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int32/int64: two's complement in ten bytes
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(number: int, wire: int) -> bytes:
    return encode_varint(number << 3 | wire)


def delimited(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return key(number, 2) + encode_varint(len(payload)) + payload
