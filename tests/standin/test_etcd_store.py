"""The API server stand-in's storage in a real etcd (Debian's etcd-server 3.4, as the etcd static pod runs it):
EtcdStore's layout, resourceVersions and optimistic concurrency, two API servers on one etcd, loading at start,
leader election, membership through the Etcd client; and the file-backed Store where no etcd runs."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import queue
import shutil
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import build_repo
import pytest
from conftest import free_port, stop
from kubeboot_standin import certs
from kubeboot_standin.apiserver.store import LEADER_KEY, Conflict, EtcdStore, Key, Obj, Store
from kubeboot_standin.etcd import Etcd, EtcdError, unb64

CACHE = Path(os.environ.get("KUBEBOOT_STANDIN_CACHE", "/var/cache/kubeboot/standin-build"))
WAIT = 10.0  # bound of every wait for an event or a state (seconds)
Events = queue.Queue[tuple[str, Obj] | None]


# ---- a real etcd ----


class Client(Etcd):
    """The Etcd client with test hooks on the watch an EtcdStore follows: `gate` holds the watch back until set (to
    order writes before it deterministically), `handled` gets the revision of each watch response once the store
    has dealt with it, and once `stopping` is set a broken watch parks its follower thread quietly instead of
    retrying every second against a stopped etcd (EtcdStore has no way to stop it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()
        self.gate.set()
        self.handled: queue.Queue[int] = queue.Queue()
        self.stopping = threading.Event()

    def watch(self, prefix: str, start_revision: int) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        self.gate.wait()
        try:
            for rev, events in super().watch(prefix, start_revision):
                yield rev, events
                self.handled.put(rev)  # the store asks for the next response: it is done with this one
        except EtcdError:
            if self.stopping.is_set():
                threading.Event().wait()  # parked: the daemon thread does nothing more until the process ends
            raise


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


@dataclass
class EtcdServer:
    proc: subprocess.Popen[bytes]
    client_url: str
    peer_url: str
    metrics_url: str
    pki: Pki
    log: Path
    clients: list[Client]

    def client(self, timeout: float = 5.0) -> Client:
        c = Client([self.client_url], str(self.pki.ca), str(self.pki.client_cert), str(self.pki.client_key), timeout)
        self.clients.append(c)
        return c


def etcd_path(tmp: pytest.TempPathFactory) -> Path:
    """Debian's etcd binary, from the stand-in build's cache (fetched with apt-get download when missing)."""
    ready = CACHE / "etcd-extract/usr/bin/etcd"
    if ready.is_file():
        return ready
    missing = [t for t in ("apt-get", "dpkg-deb") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"host tools missing to fetch Debian's etcd-server: {', '.join(missing)}")
    cache = CACHE if os.access(CACHE if CACHE.exists() else CACHE.parent, os.W_OK) else tmp.mktemp("standin-build")
    try:
        return build_repo.etcd_binary(cache)
    except SystemExit as exc:  # build_repo.fail: apt-get download found no etcd-server
        pytest.fail(f"Debian's etcd-server could not be fetched into {cache}: {exc}")


@pytest.fixture(scope="module")
def etcd_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return etcd_path(tmp_path_factory)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("etcd-pki")
    ca = certs.new_ca("etcd-ca")
    server = certs.issue(ca, "etcd-server", server=True, client=True, dns=["localhost"], ips=["127.0.0.1"])
    client = certs.issue(ca, "kube-apiserver-etcd-client", client=True)
    certs.write_pair(d, "ca", ca)
    certs.write_pair(d, "server", server)
    certs.write_pair(d, "client", client)
    return Pki(d / "ca.crt", d / "server.crt", d / "server.key", d / "client.crt", d / "client.key")


@contextlib.contextmanager
def running_etcd(
    binary: Path,
    pki: Pki,
    base: Path,
    name: str = "standin-test",
    join: list[tuple[str, str]] | None = None,
    peer_url: str | None = None,
    client_url: str | None = None,
) -> Iterator[EtcdServer]:
    """One etcd member on 127.0.0.1 (clients over https with client certificates, peers over http): a new cluster
    of its own, or joining the members (name, peer URL) of `join`, which already lists it."""
    client_url = client_url or f"https://127.0.0.1:{free_port()}"
    peer_url = peer_url or f"http://127.0.0.1:{free_port()}"
    metrics_url = f"http://127.0.0.1:{free_port()}"
    initial = ",".join(f"{n}={u}" for n, u in join) if join else f"{name}={peer_url}"
    log = base / f"{name}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                str(binary),
                f"--name={name}",
                f"--data-dir={base / name}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster={initial}",
                f"--initial-cluster-state={'existing' if join else 'new'}",
                f"--listen-metrics-urls={metrics_url}",
                "--client-cert-auth=true",
                f"--trusted-ca-file={pki.ca}",
                f"--cert-file={pki.server_cert}",
                f"--key-file={pki.server_key}",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = EtcdServer(proc, client_url, peer_url, metrics_url, pki, log, [])
    try:
        probe = server.client(timeout=1.0)
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                pytest.fail(f"etcd exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                probe.status()
                break
            except EtcdError:
                if time.monotonic() > deadline:
                    pytest.fail(f"etcd did not answer on {client_url}:\n{log.read_text()[-3000:]}")
                time.sleep(0.1)
        yield server
    finally:
        for c in server.clients:
            c.stopping.set()
        stop(proc)


@pytest.fixture(scope="module")
def etcd(etcd_bin: Path, pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    with running_etcd(etcd_bin, pki, tmp_path_factory.mktemp("etcd")) as server:
        yield server


# ---- helpers ----


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def configmap(name: str, ns: str = "default", **data: str) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": data}


def deployment(name: str, replicas: int = 1, ns: str = "default") -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}},
    }


def stored(client: Etcd, key: str) -> tuple[int, Obj]:
    """(mod_revision, JSON value) of key in etcd."""
    kv = client.get(key)
    assert kv is not None, f"{key} is not in etcd"
    return int(kv["mod_revision"]), json.loads(unb64(kv["value"]))


def revision(client: Etcd) -> int:
    return int(client.status()["header"]["revision"])


def raw_put(client: Etcd, key: str, obj: Obj) -> int:
    """A write straight into etcd, as another API server makes it; its revision."""
    ok, rev = client.txn([], [client.put_op(key, json.dumps(obj))])
    assert ok
    return rev


def next_event(q: Events, name: str) -> tuple[str, Obj]:
    """The next event on q about the object called name (others' are passed over), within WAIT."""
    deadline = time.monotonic() + WAIT
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no watch event for {name} within {WAIT}s")
        try:
            item = q.get(timeout=left)
        except queue.Empty:
            continue
        assert item is not None, "the watch was closed"
        etype, obj = item
        if obj["metadata"]["name"] == name:
            return etype, obj


def without_rv(obj: Obj) -> Obj:
    out = copy.deepcopy(obj)
    out["metadata"].pop("resourceVersion", None)
    return out


# ---- 1. one API server ----


def test_objects_in_etcd_with_revisions_as_resource_versions(etcd: EtcdServer) -> None:
    client = etcd.client()
    store = EtcdStore(client, wait=WAIT)
    q = store.watch("", "configmaps", None)

    name = unique("cm")
    key: Key = ("", "configmaps", "default", name)
    created = store.create(key, configmap(name, a="1"))
    rev, value = stored(client, f"/registry/configmaps/default/{name}")
    assert created["metadata"]["resourceVersion"] == str(rev)
    assert "resourceVersion" not in value["metadata"]
    assert value == without_rv(created)
    assert created["metadata"]["generation"] == 1 and created["metadata"]["uid"]
    assert store.get(key) == created
    assert store.rv == rev
    assert next_event(q, name) == ("ADDED", created)

    with pytest.raises(Conflict):
        store.create(key, configmap(name, a="again"))
    assert stored(client, f"/registry/configmaps/default/{name}") == (rev, value)

    # a group's object under /registry/<group>/<plural>/..., a cluster-scoped one without a namespace
    dname = unique("deploy")
    dkey: Key = ("apps", "deployments", "default", dname)
    d1 = store.create(dkey, deployment(dname))
    drev, dvalue = stored(client, f"/registry/apps/deployments/default/{dname}")
    assert d1["metadata"]["resourceVersion"] == str(drev) and drev > rev
    assert dvalue == without_rv(d1)
    nsname = unique("ns")
    nskey: Key = ("", "namespaces", "", nsname)
    ns = store.create(nskey, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": nsname}})
    assert ns["metadata"]["resourceVersion"] == str(stored(client, f"/registry/namespaces/{nsname}")[0])
    assert client.get(f"/registry/namespaces//{nsname}") is None

    # generation follows the spec only
    labelled = copy.deepcopy(d1)
    labelled["metadata"]["labels"] = {"tier": "web"}
    d2 = store.update(dkey, labelled, expect_rv=d1["metadata"]["resourceVersion"])
    assert d2["metadata"]["generation"] == 1
    assert d2["metadata"]["uid"] == d1["metadata"]["uid"]
    assert int(d2["metadata"]["resourceVersion"]) > int(d1["metadata"]["resourceVersion"])
    scaled = copy.deepcopy(d2)
    scaled["spec"]["replicas"] = 3
    d3 = store.update(dkey, scaled, expect_rv=d2["metadata"]["resourceVersion"])
    assert d3["metadata"]["generation"] == 2
    drev3, dvalue3 = stored(client, f"/registry/apps/deployments/default/{dname}")
    assert d3["metadata"]["resourceVersion"] == str(drev3)
    assert dvalue3["spec"]["replicas"] == 3 and dvalue3["metadata"]["generation"] == 2
    assert "resourceVersion" not in dvalue3["metadata"]
    assert [d["metadata"]["name"] for d in store.list("apps", "deployments", "default")].count(dname) == 1

    # an update with a stale resourceVersion changes nothing
    stale = copy.deepcopy(d3)
    stale["spec"]["replicas"] = 7
    with pytest.raises(Conflict):
        store.update(dkey, stale, expect_rv=d1["metadata"]["resourceVersion"])
    assert stored(client, f"/registry/apps/deployments/default/{dname}") == (drev3, dvalue3)
    assert store.get(dkey) == d3

    # delete: the old object back, the key gone, its resourceVersion the deletion's revision
    updated = store.update(key, configmap(name, a="2"))
    old = store.delete(key)
    assert old is not None
    assert old["data"] == {"a": "2"} and old["metadata"]["uid"] == created["metadata"]["uid"]
    assert int(old["metadata"]["resourceVersion"]) == revision(client)
    assert client.get(f"/registry/configmaps/default/{name}") is None
    assert store.get(key) is None
    assert store.delete(key) is None
    # this server's own writes reach its watchers once each (the etcd watch does not repeat them)
    assert next_event(q, name) == ("MODIFIED", updated)
    assert next_event(q, name)[0] == "DELETED"
    marker = unique("marker")
    raw_put(client, f"/registry/configmaps/default/{marker}", configmap(marker))
    assert next_event(q, marker)[0] == "ADDED"
    with pytest.raises(queue.Empty):
        q.get_nowait()

    assert store.delete(dkey) is not None and store.delete(nskey) is not None
    assert client.get(f"/registry/apps/deployments/default/{dname}") is None
    assert client.get(f"/registry/namespaces/{nsname}") is None


# ---- 2. two API servers on one etcd ----


def test_two_api_servers_see_each_others_writes(etcd: EtcdServer) -> None:
    a = EtcdStore(etcd.client(), wait=WAIT)
    b = EtcdStore(etcd.client(), wait=WAIT)
    raw = etcd.client()
    qb = b.watch("", "configmaps", None)
    ns = unique("ns")
    name = unique("cm")
    key: Key = ("", "configmaps", ns, name)

    created = a.create(key, configmap(name, ns, a="1"))
    assert next_event(qb, name) == ("ADDED", created)
    assert b.get(key) == created
    assert b.list("", "configmaps", ns) == [created]
    assert b.rv >= int(created["metadata"]["resourceVersion"])

    changed = copy.deepcopy(created)
    changed["data"] = {"a": "2"}
    modified = a.update(key, changed, expect_rv=created["metadata"]["resourceVersion"])
    assert next_event(qb, name) == ("MODIFIED", modified)
    assert b.get(key) == modified

    # B's write on the version it has now goes through; A follows
    qa = a.watch("", "configmaps", None)
    from_b = copy.deepcopy(modified)
    from_b["data"] = {"a": "3"}
    by_b = b.update(key, from_b, expect_rv=modified["metadata"]["resourceVersion"])
    assert next_event(qa, name) == ("MODIFIED", by_b)
    assert a.get(key) == by_b

    # a write by another server in between: an update on the older version is refused, whether A's cache has
    # caught up yet (its own check) or not (etcd's compare on the revision)
    bumped = copy.deepcopy(without_rv(by_b))
    bumped["data"] = {"a": "other"}
    bump_rev = raw_put(raw, f"/registry/configmaps/{ns}/{name}", bumped)
    late = copy.deepcopy(by_b)
    late["data"] = {"a": "late"}
    with pytest.raises(Conflict):
        a.update(key, late, expect_rv=by_b["metadata"]["resourceVersion"])
    assert stored(raw, f"/registry/configmaps/{ns}/{name}") == (bump_rev, bumped)

    # etcd's own check, deterministically: B's cache held stale (its follower waits for the lock held here)
    with b.lock:
        bump2 = copy.deepcopy(bumped)
        bump2["data"] = {"a": "other2"}
        bump2_rev = raw_put(raw, f"/registry/configmaps/{ns}/{name}", bump2)
        assert b.objects[key]["metadata"]["resourceVersion"] != str(bump2_rev)
        with pytest.raises(Conflict):
            b.update(key, late)  # no expect_rv: the stale cached version is what etcd is asked to compare
        other = unique("cm")
        raw_put(raw, f"/registry/configmaps/{ns}/{other}", configmap(other, ns))
        with pytest.raises(Conflict):
            b.create(("", "configmaps", ns, other), configmap(other, ns))
    assert stored(raw, f"/registry/configmaps/{ns}/{name}") == (bump2_rev, bump2)
    etype, seen = next_event(qb, name)
    while seen["metadata"]["resourceVersion"] != str(bump2_rev):  # the first bump's event, then the second's
        assert etype == "MODIFIED"
        etype, seen = next_event(qb, name)
    assert (etype, without_rv(seen)) == ("MODIFIED", bump2)
    assert b.get(key) == seen
    assert next_event(qb, other)[0] == "ADDED"

    # deletes reach the other server
    old = b.delete(key)
    assert old is not None and old["data"] == {"a": "other2"}
    etype, gone = next_event(qa, name)
    while etype != "DELETED":
        etype, gone = next_event(qa, name)
    assert gone["metadata"]["resourceVersion"] == old["metadata"]["resourceVersion"]
    assert a.get(key) is None
    assert a.delete(("", "configmaps", ns, other)) is not None
    assert next_event(qb, other)[0] == "DELETED"
    assert b.list("", "configmaps", ns) == [] and a.list("", "configmaps", ns) == []
    assert raw.range_prefix(f"/registry/configmaps/{ns}/")[1] == []


def test_catch_up_after_own_write_keeps_foreign_writes(etcd: EtcdServer) -> None:
    """A watch response of several revisions (the catch-up when the watch starts or starts again) whose last write
    is this server's own must still bring in the other servers' writes before it."""
    client = etcd.client()
    raw = etcd.client()
    client.gate.clear()  # the store's watch starts once both writes below are in etcd
    b = EtcdStore(client, wait=WAIT)
    ns = unique("ns")
    foreign, own = unique("foreign"), unique("own")
    try:
        raw_put(raw, f"/registry/configmaps/{ns}/{foreign}", configmap(foreign, ns))
        own_rev = int(b.create(("", "configmaps", ns, own), configmap(own, ns))["metadata"]["resourceVersion"])
    finally:
        client.gate.set()
    deadline = time.monotonic() + WAIT
    while client.handled.get(timeout=max(deadline - time.monotonic(), 0.01)) < own_rev:
        pass
    assert b.get(("", "configmaps", ns, foreign)) is not None, "a write of another server was lost"
    assert b.rv >= own_rev


# ---- 3. a fresh API server ----


def test_fresh_store_loads_what_etcd_holds(etcd: EtcdServer) -> None:
    raw = etcd.client()
    writer = EtcdStore(etcd.client(), wait=WAIT)
    ns = unique("ns")
    cm = writer.create(("", "configmaps", ns, "one"), configmap("one", ns, k="v"))
    dep = writer.create(("apps", "deployments", ns, "web"), deployment("web", 2, ns))
    nsobj = writer.create(
        ("", "namespaces", "", ns), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
    )
    # written by another server; and what is no object of ours (no JSON) is passed over
    other = deployment("api", 1, ns)
    other_rev = raw_put(raw, f"/registry/apps/deployments/{ns}/api", other)
    ok, _ = raw.txn([], [raw.put_op(f"/registry/configmaps/{ns}/junk", "not json")])
    assert ok
    head = revision(raw)

    fresh = EtcdStore(etcd.client(), wait=WAIT)
    assert fresh.rv == head
    assert fresh.get(("", "configmaps", ns, "one")) == cm
    assert fresh.get(("", "namespaces", "", ns)) == nsobj
    assert fresh.list("apps", "deployments", ns) == [
        {**other, "metadata": {**other["metadata"], "resourceVersion": str(other_rev)}},
        dep,
    ]
    assert fresh.get(("", "configmaps", ns, "junk")) is None
    assert [c["metadata"]["name"] for c in fresh.list("", "configmaps", ns)] == ["one"]
    # it writes on from there: the next revision, and a create of what exists is refused
    cm2 = fresh.update(
        ("", "configmaps", ns, "one"), configmap("one", ns, k="w"), expect_rv=cm["metadata"]["resourceVersion"]
    )
    assert int(cm2["metadata"]["resourceVersion"]) == head + 1
    assert cm2["metadata"]["uid"] == cm["metadata"]["uid"]
    with pytest.raises(Conflict):
        fresh.create(("apps", "deployments", ns, "api"), deployment("api", 1, ns))

    for k in (
        f"/registry/configmaps/{ns}/one",
        f"/registry/configmaps/{ns}/junk",
        f"/registry/apps/deployments/{ns}/web",
        f"/registry/apps/deployments/{ns}/api",
        f"/registry/namespaces/{ns}",
    ):
        raw.txn([], [raw.delete_op(k)])
    assert raw.range_prefix(f"/registry/configmaps/{ns}/")[1] == []


# ---- 4. leader election ----


def holder(client: Etcd) -> str:
    kv = client.get(LEADER_KEY)
    assert kv is not None, "no leader lease in etcd"
    return str(json.loads(unb64(kv["value"]))["holder"])


def test_leader_election(etcd: EtcdServer) -> None:
    a = EtcdStore(etcd.client(), wait=WAIT)
    b = EtcdStore(etcd.client(), wait=WAIT)
    raw = etcd.client()
    ttl = 1.0
    assert a.lead("a", ttl=ttl)
    renewed = time.monotonic()
    assert holder(raw) == "a"
    # while A renews, for longer than the ttl, B does not take over
    end = time.monotonic() + 1.5 * ttl
    while time.monotonic() < end:
        assert not b.lead("b", ttl=ttl)
        assert a.lead("a", ttl=ttl)
        renewed = time.monotonic()
        time.sleep(0.2)
    assert not b.lead("b", ttl=ttl)
    # A stops renewing: B takes over once the lease is older than the ttl, not before
    deadline = time.monotonic() + WAIT
    while not b.lead("b", ttl=ttl):
        assert time.monotonic() < deadline, "B never took the lease over"
        time.sleep(0.05)
    assert time.monotonic() - renewed >= ttl
    assert holder(raw) == "b"
    assert not a.lead("a", ttl=ttl)
    assert b.lead("b", ttl=ttl)


# ---- 5. membership ----


def test_membership(etcd_bin: Path, pki: Pki, tmp_path: Path) -> None:
    """kubeadm join's member add and reset's member remove: a second member added, started, and removed again.
    (A cluster of its own: between the add and the start of the new member, a two-member cluster has no quorum.)"""
    with running_etcd(etcd_bin, pki, tmp_path, name="first") as first:
        client = first.client()
        members = client.members()
        assert len(members) == 1
        assert members[0]["name"] == "first"
        assert members[0]["peerURLs"] == [first.peer_url]
        assert members[0]["clientURLs"] == [first.client_url]
        first_id = members[0]["ID"]
        raw_put(client, "/registry/configmaps/default/before-join", configmap("before-join"))

        peer = f"http://127.0.0.1:{free_port()}"
        out = client.member_add([peer])
        added = out["member"]
        assert added["peerURLs"] == [peer]
        assert not added.get("name") and not added.get("clientURLs")  # not started yet
        assert sorted(m["ID"] for m in out["members"]) == sorted([first_id, added["ID"]])
        join = [(m.get("name") or "second", m["peerURLs"][0]) for m in out["members"]]
        assert sorted(join) == sorted([("first", first.peer_url), ("second", peer)])

        with running_etcd(etcd_bin, pki, tmp_path, name="second", join=join, peer_url=peer) as second:
            other = second.client()
            deadline = time.monotonic() + WAIT
            while not any(m.get("name") == "second" for m in client.members()):
                assert time.monotonic() < deadline, "the new member did not start"
                time.sleep(0.1)
            listed = {m["name"]: m for m in other.members()}
            assert sorted(listed) == ["first", "second"]
            assert listed["second"]["clientURLs"] == [second.client_url]
            assert other.get("/registry/configmaps/default/before-join") is not None  # the data came over

            # etcd refuses to remove a started member until the others have been connected to it for 5 s
            deadline = time.monotonic() + 3 * WAIT
            while True:
                try:
                    client.member_remove(str(added["ID"]))
                    break
                except EtcdError as exc:
                    if "unhealthy cluster" not in str(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            assert [m["ID"] for m in client.members()] == [first_id]
            with pytest.raises(EtcdError):
                client.member_remove(str(added["ID"]))
            try:
                second.proc.wait(timeout=WAIT)  # a removed member stops by itself
            except subprocess.TimeoutExpired:
                pytest.fail("the removed etcd member did not stop")
        raw_put(client, "/registry/configmaps/default/after-remove", configmap("after-remove"))  # quorum of one


def test_a_restarted_etcd_is_reached_again_on_the_same_client(etcd_bin: Path, pki: Pki, tmp_path: Path) -> None:
    """The API server keeps one connection to its etcd: when etcd restarts (the kubelet restarting the static pod,
    a restore), the next request finds that connection closed and must be sent again on a new one, not fail."""
    client_url = f"https://127.0.0.1:{free_port()}"
    peer_url = f"http://127.0.0.1:{free_port()}"
    with running_etcd(etcd_bin, pki, tmp_path, "restarted", peer_url=peer_url, client_url=client_url) as first:
        client = first.client(timeout=5.0)
        rev = raw_put(client, "/registry/configmaps/default/kept", configmap("kept"))
    short = Client([client_url], str(pki.ca), str(pki.client_cert), str(pki.client_key), 0.5)
    with pytest.raises(EtcdError, match=client_url):
        short.status()  # etcd is down: an error naming it once the retries are spent, not a hang
    with running_etcd(etcd_bin, pki, tmp_path, "restarted", peer_url=peer_url, client_url=client_url):
        assert stored(client, "/registry/configmaps/default/kept")[0] == rev  # the stale connection was replaced
        assert raw_put(client, "/registry/configmaps/default/later", configmap("later")) > rev


def test_metrics_health(etcd: EtcdServer) -> None:
    with urllib.request.urlopen(f"{etcd.metrics_url}/health", timeout=5) as resp:
        assert json.loads(resp.read())["health"] == "true"


# ---- 6. the file-backed store ----


def test_file_store_persists(tmp_path: Path) -> None:
    path = tmp_path / "member" / "standin-store.json"
    store = Store(path)
    key: Key = ("", "configmaps", "default", "one")
    dkey: Key = ("apps", "deployments", "default", "web")
    created = store.create(key, configmap("one", a="1"))
    d1 = store.create(dkey, deployment("web"))
    assert path.is_file()
    with pytest.raises(Conflict):
        store.create(key, configmap("one"))
    updated = store.update(key, configmap("one", a="2"), expect_rv=created["metadata"]["resourceVersion"])
    with pytest.raises(Conflict):
        store.update(key, configmap("one", a="3"), expect_rv=created["metadata"]["resourceVersion"])
    scaled = copy.deepcopy(d1)
    scaled["spec"]["replicas"] = 4
    d2 = store.update(dkey, scaled)
    assert d2["metadata"]["generation"] == 2
    assert store.lead("anyone")

    again = Store(path)
    assert again.rv == store.rv == int(d2["metadata"]["resourceVersion"])
    assert again.get(key) == updated
    assert again.get(dkey) == d2
    old = again.delete(key)
    assert old is not None and old["data"] == {"a": "2"}
    third = Store(path)
    assert third.get(key) is None
    assert third.list("apps", "deployments") == [d2]
    assert third.rv == int(old["metadata"]["resourceVersion"])
