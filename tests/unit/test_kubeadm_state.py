"""kubeboot.kubeadm_state and the module kubeboot_kubeadm_state: one list of kubeadm's leftovers, one marker
convention, and the states kubeadm_init, kubeadm_join and node_reset act on (canned file trees, canned commands)."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeboot import kubeadm_state as ks
from tests.unit import modules

REPO = Path(__file__).resolve().parents[2]
READYZ = ["get", "--raw=/readyz", "--request-timeout=5s"]
REFUSED = ('E1206 12:00:00.000000    4242 memcache.go:265] couldn\'t get current server API group list\n'
           'The connection to the server 10.0.0.11:6443 was refused - did you specify the right host or port?\n')


def tree(root: Path, *files: str, contents: dict[str, str | bytes] | None = None) -> Path:
    """Files (node paths) below root: empty ones, and those of `contents` with their text."""
    for name, text in [*((f, "") for f in files), *(contents or {}).items()]:
        path = root / name.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
    return root


def marker(root: Path, kind: str, value: str) -> None:
    path = root / ks.MARKERS[kind].lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value + "\n")


class Commands:
    """Canned command outputs by argv (binaries by base name); records every call."""

    def __init__(self, outputs: dict[str, Any] | None = None) -> None:
        self.outputs = outputs or {}
        self.calls: list[list[str]] = []

    def __call__(self, args: Sequence[str]) -> tuple[int, str, str]:
        self.calls.append(list(args))
        key = " ".join([args[0].rsplit("/", 1)[-1], *args[1:]])
        found = self.outputs.get(key, (0, "", ""))
        if isinstance(found, list):  # one answer per call, the last one repeated
            return tuple(found.pop(0) if len(found) > 1 else found[0])
        return tuple(found)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds + 5  # kubectl's own --request-timeout on top of the pause


# ---------------------------------------------------------------- what kubeadm leaves: one list


def test_kubeadm_leftovers_are_its_files_and_the_directories_that_hold_anything(tmp_path: Path) -> None:
    tree(tmp_path, *ks.KUBEADM_FILES, "/etc/kubernetes/manifests/etcd.yaml", "/etc/kubernetes/pki/ca.crt",
         "/var/lib/kubelet/config.yaml", "/var/lib/etcd/member/snap/db", "/etc/kubernetes/kubeadm-config.yaml")
    assert ks.kubeadm_leftovers(str(tmp_path)) == [*ks.KUBEADM_FILES, *ks.KUBEADM_DIRS]


def test_the_kubelet_directory_alone_is_no_init_or_join(tmp_path: Path) -> None:
    # The kubelet's package, or a kubelet started before kubeadm configured it, may write there; a reset empties it.
    tree(tmp_path, "/var/lib/kubelet/cpu_manager_state")
    assert ks.probe_join(str(tmp_path))["state"] == "fresh"
    assert ks.kubeadm_leftovers(str(tmp_path)) == ["/var/lib/kubelet"]
    assert ks.kubeadm_leftovers(str(tmp_path), kubelet_dir=False) == []


def test_empty_directories_and_what_kubeboot_writes_are_no_leftovers(tmp_path: Path) -> None:
    for d in ks.KUBEADM_DIRS:
        (tmp_path / d.lstrip("/")).mkdir(parents=True)
    tree(tmp_path, "/etc/kubernetes/kubeadm-config.yaml", "/etc/kubernetes/kubeboot-init.state")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere/file").write_text("x")
    (tmp_path / "var/lib/etcd").rmdir()
    (tmp_path / "var/lib/etcd").symlink_to(tmp_path / "elsewhere")  # a link to a directory is not kubeadm's
    assert ks.kubeadm_leftovers(str(tmp_path)) == []


# ---------------------------------------------------------------- kubeadm_init


def init(root: Path, commands: Commands, wait: int = 60, kubectl: str | None = "/usr/bin/kubectl",
         clock: Clock | None = None) -> dict[str, Any]:
    clock = clock or Clock()
    return ks.probe_init(commands, ks.Tools(kubectl=kubectl), wait, root=str(root), clock=clock, sleep=clock.sleep)


def readyz(root: Path) -> str:
    return f"kubectl --kubeconfig={root}/etc/kubernetes/admin.conf {' '.join(READYZ)}"


def control_plane(root: Path) -> Path:
    return tree(root, "/etc/kubernetes/admin.conf", "/etc/kubernetes/super-admin.conf", "/etc/kubernetes/kubelet.conf",
                "/etc/kubernetes/pki/ca.crt", "/etc/kubernetes/manifests/kube-apiserver.yaml")


def test_init_on_a_fresh_node_asks_nothing(tmp_path: Path) -> None:
    commands = Commands()
    found = init(tmp_path, commands)
    assert found == {"state": "fresh", "api": False, "api_error": "", "leftovers": [], "marker": "",
                     "marker_path": "/etc/kubernetes/kubeboot-init.state"}
    assert commands.calls == []


def test_init_completed_and_answering_is_initialised(tmp_path: Path) -> None:
    control_plane(tmp_path)
    marker(tmp_path, "init", "complete")
    commands = Commands({readyz(tmp_path): (0, "ok", "")})
    found = init(tmp_path, commands)
    assert (found["state"], found["api"], found["api_error"], found["marker"]) == ("initialised", True, "", "complete")
    assert commands.calls == [["/usr/bin/kubectl", f"--kubeconfig={tmp_path}/etc/kubernetes/admin.conf", *READYZ]]


def test_a_working_control_plane_kubeboot_did_not_make_is_initialised(tmp_path: Path) -> None:
    control_plane(tmp_path)
    assert init(tmp_path, Commands({readyz(tmp_path): (0, "ok", "")}))["state"] == "initialised"


def test_init_completed_whose_api_server_stays_silent_is_down_after_the_wait(tmp_path: Path) -> None:
    control_plane(tmp_path)
    marker(tmp_path, "init", "complete")
    commands = Commands({readyz(tmp_path): (1, "", REFUSED)})
    clock = Clock()
    found = init(tmp_path, commands, wait=20, clock=clock)
    assert found["state"] == "down" and found["api"] is False
    assert found["api_error"] == ("The connection to the server 10.0.0.11:6443 was refused - did you specify the "
                                  "right host or port?")
    assert clock.slept == [2, 2, 2] and len(commands.calls) == 4  # asked until 20 s had passed, 2 s apart


def test_init_completed_whose_api_server_comes_up_within_the_wait_is_initialised(tmp_path: Path) -> None:
    control_plane(tmp_path)
    marker(tmp_path, "init", "complete")
    commands = Commands({readyz(tmp_path): [(1, "", REFUSED), (1, "", REFUSED), (0, "ok", "")]})
    clock = Clock()
    found = init(tmp_path, commands, clock=clock)
    assert (found["state"], found["api"], found["api_error"]) == ("initialised", True, "")
    assert clock.slept == [2, 2] and len(commands.calls) == 3


def test_init_kubeboot_started_that_failed_half_way_is_partial_without_waiting(tmp_path: Path) -> None:
    tree(tmp_path, "/etc/kubernetes/admin.conf", "/etc/kubernetes/pki/ca.crt")
    marker(tmp_path, "init", "started")
    commands = Commands({readyz(tmp_path): (1, "", REFUSED)})
    clock = Clock()
    found = init(tmp_path, commands, clock=clock)
    assert found["state"] == "partial" and found["marker"] == "started"
    assert found["leftovers"] == ["/etc/kubernetes/admin.conf", "/etc/kubernetes/pki"]
    assert len(commands.calls) == 1 and clock.slept == []


def test_init_started_is_partial_even_when_its_api_server_answers(tmp_path: Path) -> None:
    control_plane(tmp_path)
    marker(tmp_path, "init", "started")
    assert init(tmp_path, Commands({readyz(tmp_path): (0, "ok", "")}))["state"] == "partial"


def test_leftovers_kubeboot_did_not_make_are_foreign(tmp_path: Path) -> None:
    tree(tmp_path, "/etc/kubernetes/manifests/etcd.yaml", "/var/lib/etcd/member/wal/0.wal")
    commands = Commands()
    found = init(tmp_path, commands)
    assert found["state"] == "foreign" and found["marker"] == ""
    assert found["leftovers"] == ["/etc/kubernetes/manifests", "/var/lib/etcd"]
    assert commands.calls == []  # no admin.conf: nothing to ask


def test_foreign_admin_conf_whose_api_server_does_not_answer_is_asked_once(tmp_path: Path) -> None:
    control_plane(tmp_path)
    commands = Commands({readyz(tmp_path): (1, "", REFUSED)})
    found = init(tmp_path, commands)
    assert found["state"] == "foreign" and "was refused" in found["api_error"]
    assert len(commands.calls) == 1


def test_a_marker_left_after_a_bare_kubeadm_reset_is_fresh(tmp_path: Path) -> None:
    marker(tmp_path, "init", "complete")
    (tmp_path / "etc/kubernetes/manifests").mkdir()
    assert init(tmp_path, Commands())["state"] == "fresh"


def test_without_kubectl_the_api_server_does_not_answer(tmp_path: Path) -> None:
    control_plane(tmp_path)
    marker(tmp_path, "init", "complete")
    found = init(tmp_path, Commands(), wait=0, kubectl=None)
    assert (found["state"], found["api"], found["api_error"]) == ("down", False, "kubectl not found")


@pytest.mark.parametrize(("leftovers", "marker_", "api", "state"), [
    ([], "", False, "fresh"), ([], "complete", True, "initialised"), (["x"], "", True, "initialised"),
    (["x"], "complete", False, "down"), (["x"], "started", True, "partial"), (["x"], "", False, "foreign"),
])
def test_init_states(leftovers: list[str], marker_: str, api: bool, state: str) -> None:
    assert ks.init_state(leftovers, marker_, api) == state


# ---------------------------------------------------------------- kubeadm_join


def test_join_fresh_node(tmp_path: Path) -> None:
    assert ks.probe_join(str(tmp_path)) == {"state": "fresh", "leftovers": [], "marker": "",
                                            "marker_path": "/etc/kubernetes/kubeboot-join.state"}


def test_joined_node_is_left_alone(tmp_path: Path) -> None:
    tree(tmp_path, "/etc/kubernetes/kubelet.conf", "/etc/kubernetes/pki/ca.crt", "/var/lib/kubelet/config.yaml")
    marker(tmp_path, "join", "complete")
    found = ks.probe_join(str(tmp_path))
    assert (found["state"], found["marker"]) == ("joined", "complete")
    tree(tmp_path / "byhand", "/etc/kubernetes/kubelet.conf")  # joined without kubeboot: left alone too
    assert ks.probe_join(str(tmp_path / "byhand"))["state"] == "joined"


def test_join_kubeboot_started_is_partial_with_or_without_kubelet_conf(tmp_path: Path) -> None:
    tree(tmp_path, "/etc/kubernetes/bootstrap-kubelet.conf", "/etc/kubernetes/pki/ca.crt")
    marker(tmp_path, "join", "started")
    found = ks.probe_join(str(tmp_path))
    assert found["state"] == "partial"
    assert found["leftovers"] == ["/etc/kubernetes/bootstrap-kubelet.conf", "/etc/kubernetes/pki"]
    tree(tmp_path, "/etc/kubernetes/kubelet.conf")
    assert ks.probe_join(str(tmp_path))["state"] == "partial"


def test_join_leftovers_kubeboot_did_not_make_are_foreign(tmp_path: Path) -> None:
    tree(tmp_path, "/var/lib/etcd/member/snap/db")
    found = ks.probe_join(str(tmp_path))
    assert (found["state"], found["leftovers"]) == ("foreign", ["/var/lib/etcd"])
    marker(tmp_path, "init", "started")  # the init's marker says nothing about a join
    assert ks.probe_join(str(tmp_path))["state"] == "foreign"


# ---------------------------------------------------------------- node_reset

SCOPE = ks.ResetScope(
    paths=["/etc/kubernetes", "/var/lib/kubelet", "/var/lib/etcd", "/var/lib/cni", "/run/flannel"],
    emptied_dirs=["/etc/cni/net.d"], kubeconfig_copies=["/root/.kube/config", "/home/op/.kube/config", "/nowhere"],
    links=["cni0", "flannel.1", "tunl0", "vxlan.calico"], link_prefixes=["cali"],
    cri_socket="unix:///run/containerd/containerd.sock", runtime_service="containerd",
)
TOOLS = ks.Tools(kubeadm="/usr/bin/kubeadm", crictl="/usr/bin/crictl", systemctl="/usr/bin/systemctl",
                 ip="/usr/sbin/ip")
MOUNTINFO = """\
22 1 0:21 / / rw,relatime - ext4 /dev/sda1 rw
40 22 0:35 / /var/lib/kubelet/pods/p1/volumes/kubernetes.io~empty-dir/cache rw - tmpfs tmpfs rw
41 22 0:36 / /var/lib/kubelet/pods/p1/volumes/kubernetes.io~secret/kube\\040api rw - tmpfs tmpfs rw
42 22 0:4 net:[4026532] /run/netns/cni-1234 rw - nsfs nsfs rw
43 22 0:37 / /var/lib/kubelet rw - ext4 /dev/sdb1 rw
44 22 0:38 / /var/lib/kubeletx rw - ext4 /dev/sdc1 rw
45 22 0:39 / /srv/nfs rw - nfs4 192.0.2.50:/nfs rw
"""
IP_ADDR = json.dumps([
    {"ifname": "lo", "flags": ["LOOPBACK", "UP"], "addr_info": [{"local": "127.0.0.1"}]},
    {"ifname": "eth0", "flags": ["UP"], "addr_info": [{"local": "10.213.18.2"}]},
    {"ifname": "cni0", "flags": ["UP"], "addr_info": [{"local": "10.70.1.1"}]},
    {"ifname": "veth1a2b", "flags": ["UP"], "master": "cni0", "addr_info": []},
    {"ifname": "flannel.1", "flags": ["UP"], "addr_info": [{"local": "10.70.1.0"}]},
    {"ifname": "tunl0", "flags": ["NOARP"], "addr_info": []},
    {"ifname": "cali12ab", "flags": ["UP"], "addr_info": []},
    {"ifname": "docker0", "flags": ["UP"], "addr_info": [{"local": "172.17.0.1"}]},
    {"ifname": "vethdock", "flags": ["UP"], "master": "docker0", "addr_info": []},
])
POD = "a" * 64
CONTAINER = "b" * 13


def reset_node(root: Path) -> Commands:
    ca = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    admin = f"clusters:\n- cluster:\n    certificate-authority-data: {base64.b64encode(ca).decode()}\n"
    tree(root, "/etc/kubernetes/kubelet.conf", "/etc/kubernetes/manifests/etcd.yaml", "/var/lib/kubelet/config.yaml",
         "/var/lib/etcd/member/snap/db", "/var/lib/cni/networks/cbr0/last_reserved_ip.0",
         "/etc/cni/net.d/10-flannel.conflist", "/etc/cni/net.d/00-other.conf", "/run/netns/cni-1234",
         "/run/netns/operator", "/run/containerd/containerd.sock",
         contents={"/etc/kubernetes/admin.conf": admin, "/etc/kubernetes/pki/ca.crt": ca,
                   "/root/.kube/config": admin,  # a copy of admin.conf
                   "/home/op/.kube/config": "users: []\n" + admin.replace("clusters", "other"),  # the cluster's CA
                   "/proc/self/mountinfo": MOUNTINFO})
    return Commands({
        "systemctl cat kubelet.service": (0, "[Unit]\n", ""),
        "systemctl cat containerd.service": (1, "", "No files found for containerd.service.\n"),
        "crictl --runtime-endpoint unix:///run/containerd/containerd.sock pods -q": (0, f"{POD}\n", ""),
        "crictl --runtime-endpoint unix:///run/containerd/containerd.sock ps -a -q": (
            0, f"CONTAINER ID\n{CONTAINER}\n", ""),
        "ip -j -d addr show": (0, IP_ADDR, ""),
    })


def test_reset_finds_everything_kubernetes_and_the_pod_network_left(tmp_path: Path) -> None:
    commands = reset_node(tmp_path)
    found = ks.probe_reset(commands, TOOLS, SCOPE, root=str(tmp_path))
    assert found == {
        "leftovers": ["/etc/kubernetes/admin.conf", "/etc/kubernetes/kubelet.conf", "/etc/kubernetes/manifests",
                      "/etc/kubernetes/pki", "/var/lib/kubelet", "/var/lib/etcd"],
        "kubeadm": True,
        "control_plane": True,
        "kubelet_unit": True,
        "runtime_unit": False,
        "pods": [POD],
        "containers": [CONTAINER],
        "mounts": ["/var/lib/kubelet/pods/p1/volumes/kubernetes.io~empty-dir/cache",
                   "/var/lib/kubelet/pods/p1/volumes/kubernetes.io~secret/kube api",
                   "/run/netns/cni-1234", "/var/lib/kubelet"],
        "paths": ["/etc/kubernetes", "/var/lib/kubelet", "/var/lib/etcd", "/var/lib/cni",
                  "/etc/cni/net.d/00-other.conf", "/etc/cni/net.d/10-flannel.conflist"],
        "netns": ["/run/netns/cni-1234"],
        "kubeconfig_copies": ["/root/.kube/config", "/home/op/.kube/config"],
        "links": ["cali12ab", "cni0", "flannel.1", "veth1a2b"],
    }
    assert commands.calls == [
        ["/usr/bin/systemctl", "cat", "kubelet.service"], ["/usr/bin/systemctl", "cat", "containerd.service"],
        ["/usr/bin/crictl", "--runtime-endpoint", "unix:///run/containerd/containerd.sock", "pods", "-q"],
        ["/usr/bin/crictl", "--runtime-endpoint", "unix:///run/containerd/containerd.sock", "ps", "-a", "-q"],
        ["/usr/sbin/ip", "-j", "-d", "addr", "show"],
    ]


def test_reset_on_a_clean_host_finds_nothing_and_asks_no_runtime_that_is_not_there(tmp_path: Path) -> None:
    tree(tmp_path, contents={"/proc/self/mountinfo": MOUNTINFO.splitlines()[0] + "\n"})
    (tmp_path / "etc/cni/net.d").mkdir(parents=True)
    commands = Commands({"systemctl cat kubelet.service": (1, "", "No files found\n"),
                         "ip -j -d addr show": (0, json.dumps(json.loads(IP_ADDR)[:2]), "")})
    found = ks.probe_reset(commands, ks.Tools(systemctl="/usr/bin/systemctl", ip="/usr/sbin/ip"), SCOPE,
                           root=str(tmp_path))
    assert found == {"leftovers": [], "kubeadm": False, "control_plane": False, "kubelet_unit": False,
                     "runtime_unit": True, "pods": [], "containers": [], "mounts": [], "paths": [], "netns": [],
                     "kubeconfig_copies": [], "links": []}
    assert not [c for c in commands.calls if "crictl" in c[0]]


def test_a_kubeconfig_that_is_not_this_clusters_stays(tmp_path: Path) -> None:
    tree(tmp_path, contents={"/etc/kubernetes/admin.conf": "a", "/root/.kube/config": "another cluster's\n"})
    assert ks.kubeconfig_copies(["/root/.kube/config"], str(tmp_path)) == []
    (tmp_path / "root/.kube/config").write_text("a")
    assert ks.kubeconfig_copies(["/root/.kube/config"], str(tmp_path)) == ["/root/.kube/config"]


def test_tunl0_is_ours_only_while_up_or_addressed() -> None:
    up = [{"ifname": "tunl0", "flags": ["NOARP", "UP"], "addr_info": []}]
    assert ks.our_links(json.dumps(up), ["tunl0"], []) == ["tunl0"]
    addressed = [{"ifname": "tunl0", "flags": ["NOARP"], "addr_info": [{"local": "10.71.0.1"}]}]
    assert ks.our_links(json.dumps(addressed), ["tunl0"], []) == ["tunl0"]
    assert ks.our_links("not json", ["tunl0"], []) == []


def test_unreadable_crictl_output_and_failures_give_no_ids(tmp_path: Path) -> None:
    tree(tmp_path, "/run/containerd/containerd.sock")
    socket = "unix:///run/containerd/containerd.sock"
    failing = Commands({f"crictl --runtime-endpoint {socket} pods -q": (1, POD, "rpc error")})
    assert ks.cri_ids(failing, "/usr/bin/crictl", socket, "pods", str(tmp_path)) == []
    noisy = Commands({f"crictl --runtime-endpoint {socket} pods -q": (0, "POD ID\nxyz\nABCDEF0123456\n", "")})
    assert ks.cri_ids(noisy, "/usr/bin/crictl", socket, "pods", str(tmp_path)) == []


# ---------------------------------------------------------------- the module


def test_module_utils_link_is_the_source() -> None:
    link = REPO / "plugins/module_utils/kubeboot_kubeadm_state.py"
    assert link.is_symlink()
    assert link.resolve() == (REPO / "src/kubeboot/kubeadm_state.py").resolve()


def load_module() -> Any:
    return modules.load_module("kubeboot_kubeadm_state")


def run_module(monkeypatch: pytest.MonkeyPatch, root: Path, args: dict[str, Any], outputs: dict[str, Any],
               check_mode: bool = False, bins: Sequence[str] = ("kubectl", "kubeadm", "crictl", "systemctl", "ip"),
               ) -> tuple[dict[str, Any], list[list[str]]]:
    commands = Commands(outputs)

    def run_command(self: Any, cmd: list[str], **kw: Any) -> tuple[int, str, str]:
        assert kw.get("environ_update") == {"LC_ALL": "C"}
        return commands(cmd)

    mod = load_module()
    monkeypatch.setattr(mod, "ROOT", str(root))
    result = modules.run_main(monkeypatch, mod, args, run_command, bins, "/usr/bin", check_mode)
    return result, commands.calls


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check"])
def test_module_init_reads_the_node_and_changes_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                        check_mode: bool) -> None:
    control_plane(tmp_path)
    marker(tmp_path, "init", "complete")
    result, calls = run_module(monkeypatch, tmp_path, {"purpose": "init", "api_wait": 0},
                               {readyz(tmp_path): (1, "", REFUSED)}, check_mode=check_mode)
    assert result["changed"] is False
    assert (result["state"], result["api"], result["marker"]) == ("down", False, "complete")
    assert result["marker_path"] == "/etc/kubernetes/kubeboot-init.state"
    assert calls == [["/usr/bin/kubectl", f"--kubeconfig={tmp_path}/etc/kubernetes/admin.conf", *READYZ]]


def test_module_join_runs_no_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    tree(tmp_path, "/etc/kubernetes/kubelet.conf")
    result, calls = run_module(monkeypatch, tmp_path, {"purpose": "join"}, {}, check_mode=True)
    assert result["changed"] is False and result["state"] == "joined" and calls == []
    assert "pods" not in result and "api" not in result


def test_module_reset_passes_the_roles_lists_and_finds_what_is_there(monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    outputs = reset_node(tmp_path).outputs
    args = {"purpose": "reset", "paths": list(SCOPE.paths), "emptied_dirs": list(SCOPE.emptied_dirs),
            "kubeconfig_copies": ["/root/.kube/config"], "links": list(SCOPE.links),
            "link_prefixes": list(SCOPE.link_prefixes), "cri_socket": SCOPE.cri_socket}
    result, calls = run_module(monkeypatch, tmp_path, args, outputs, check_mode=True)
    assert result["changed"] is False
    assert result["kubeconfig_copies"] == ["/root/.kube/config"]
    assert result["links"] == ["cali12ab", "cni0", "flannel.1", "veth1a2b"]
    assert result["pods"] == [POD] and result["control_plane"] is True and result["kubeadm"] is True
    assert ["/usr/bin/ip", "-j", "-d", "addr", "show"] in calls
    assert ["/usr/bin/systemctl", "cat", "containerd.service"] in calls


def test_module_documents_exactly_its_options() -> None:
    mod = load_module()
    doc = yaml.safe_load(mod.DOCUMENTATION)
    yaml.safe_load(mod.EXAMPLES)
    returned = yaml.safe_load(mod.RETURN)
    assert set(doc["options"]) == set(mod.ARGUMENT_SPEC)
    for name, spec in mod.ARGUMENT_SPEC.items():
        documented = doc["options"][name]
        for key in ("type", "default", "choices", "elements", "required"):
            assert documented.get(key) == spec.get(key), (name, key)
    assert {"state", "leftovers", "marker_path", "api_error", "links", "kubeconfig_copies"} <= set(returned)


# ---------------------------------------------------------------- the roles call the module


def tasks(path: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load((REPO / path).read_text()))


def test_the_roles_ask_the_module_and_keep_no_probe_of_their_own() -> None:
    for role in ("kubeadm_init", "kubeadm_join", "node_reset"):
        assert not list((REPO / "roles" / role).rglob("probe.*")), role
    calls = {path: [t for t in tasks(path) if "kubeboot_kubeadm_state" in t]
             for path in ("roles/kubeadm_init/tasks/main.yml", "roles/kubeadm_join/tasks/main.yml",
                          "roles/node_reset/tasks/main.yml")}
    init = calls["roles/kubeadm_init/tasks/main.yml"]
    assert [(t["kubeboot_kubeadm_state"]["purpose"], t["register"]) for t in init] == [("init", "__kubeadm_init_found")]
    assert "kubeadm_init_api_wait" in init[0]["kubeboot_kubeadm_state"]["api_wait"]
    join = calls["roles/kubeadm_join/tasks/main.yml"]
    assert [(t["kubeboot_kubeadm_state"], t["register"]) for t in join] == [
        ({"purpose": "join"}, "__kubeadm_join_found")]
    reset = calls["roles/node_reset/tasks/main.yml"]
    assert [t["register"] for t in reset] == ["__node_reset_found", "__node_reset_left"]
    for task in reset:
        args = task["kubeboot_kubeadm_state"]
        assert set(args) == set(load_module().ARGUMENT_SPEC) - {"api_wait"}
        for option, value in args.items():
            assert option == "purpose" or value == f"{{{{ node_reset_{option} }}}}", (option, value)
