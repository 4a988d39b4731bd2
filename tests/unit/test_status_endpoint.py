"""`kubeboot status` with kube_control_plane_lb keepalived: the API endpoint as each control plane sees it (who
holds the VIP, keepalived and haproxy, haproxy's backends from `show stat`), its report, and its exit codes."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from kubeboot.cli import main
from kubeboot.status import endpoint, remote, report
from kubeboot.status.compare import CniStatus, PodRanges, Status
from kubeboot.status.endpoint import Endpoint, NodeEndpoint, Server
from tests.unit.test_status import PerScriptSshd, canned, converged_nodes, node_json, script_output, write_inventory
from tests.unit.test_status_certs import healthy, healthy_sections

VIP = "10.213.17.100"

# The header haproxy 2.6 prints for `show stat` (management guide, "9.1. CSV format": "# " then the field names).
HEADER = (
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,"
    "act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,"
    "check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,"
    "req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,"
    "qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,"
    "check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,")
FIELDS = HEADER[2:].rstrip(",").split(",")


def stat_row(pxname: str, svname: str, status: str, check: str = "", lastchg: str = "", **more: str) -> str:
    """One CSV line with the header's fields (the others empty, as haproxy leaves fields that do not apply)."""
    values = {"pxname": pxname, "svname": svname, "status": status, "check_status": check, "lastchg": lastchg,
              "type": {"FRONTEND": "0", "BACKEND": "1"}.get(svname, "2"), **more}
    return ",".join(values.get(name, "") for name in FIELDS) + ","


def show_stat(*servers: tuple[str, str, str, str]) -> str:
    """`show stat` of haproxy.cfg.j2's proxy: its frontend, one line per (name, status, check, lastchg), its
    backend; and the stats frontend of another configuration, which is not ours."""
    rows = [HEADER, stat_row("kube_apiserver", "FRONTEND", "OPEN", scur="3", mode="tcp")]
    rows += [stat_row("kube_apiserver", name, status, check, lastchg, weight="1", act="1",
                      addr=f"10.213.17.{11 + i}:6443", check_desc="Layer7 check passed" if check == "L7OK" else "",
                      mode="tcp") for i, (name, status, check, lastchg) in enumerate(servers)]
    rows += [stat_row("kube_apiserver", "BACKEND", "UP", lastchg="92", mode="tcp", algo="leastconn"),
             stat_row("stats", "FRONTEND", "OPEN")]
    return "\n".join(rows) + "\n\n"


def endpoint_sections(holds: bool = True, *, keepalived: str = "active", haproxy: str = "active",
                      stat: str | None = None, rc: str = "0", via: str = "python3", err: str = "") -> str:
    """What the endpoint part of a control plane's script prints."""
    vip = (f"2456: eth0    inet {VIP}/32 scope global eth0\\       valid_lft forever preferred_lft forever"
           if holds else "")
    stat_text = show_stat(("cp1", "UP", "L7OK", "92"), ("cp2", "UP", "L7OK", "90")) if stat is None else stat
    return (f"\n@@kubeboot endpoint-vip@@\n{vip}\n@@kubeboot endpoint-vip.rc@@\n0\n@@kubeboot endpoint-vip.err@@\n"
            f"\n@@kubeboot endpoint-keepalived@@\n{keepalived}\n@@kubeboot endpoint-haproxy@@\n{haproxy}\n"
            f"@@kubeboot endpoint-stat@@\n{stat_text if rc == '0' else ''}\n@@kubeboot endpoint-stat.rc@@\n{rc}\n"
            f"@@kubeboot endpoint-stat.via@@\n{via}\n@@kubeboot endpoint-stat.err@@\n{err}\n")


# ------------------------------------------------------------------ show stat


def test_show_stat_gives_the_servers_of_kube_apiserver_by_the_header_names() -> None:
    text = show_stat(("cp1", "UP", "L7OK", "92"), ("cp2", "DOWN", "L4CON", "12"), ("cp3", "MAINT", "", "300"),
                     ("cp4", "UP 1/2", "* L7STS", "5"), ("cp5", "DOWN 1/2", "L7OK", "3"))
    servers = endpoint.parse_stat(text)
    assert [(s.name, s.status, s.check, s.lastchg, s.up) for s in servers] == [
        ("cp1", "UP", "L7OK", 92, True), ("cp2", "DOWN", "L4CON", 12, False), ("cp3", "MAINT", "", 300, False),
        ("cp4", "UP 1/2", "* L7STS", 5, True), ("cp5", "DOWN 1/2", "L7OK", 3, False)]
    # Found by name, not by place: an older haproxy with fewer fields after status reads the same.
    short = "# pxname,svname,status,lastchg,check_status\nkube_apiserver,cp1,DOWN,7,L4TOUT\n"
    assert endpoint.parse_stat(short) == [Server("cp1", "DOWN", "L4TOUT", 7)]
    assert servers[1].as_dict() == {"name": "cp2", "status": "DOWN", "up": False, "check_status": "L4CON",
                                    "last_change_seconds": 12}


@pytest.mark.parametrize(("text", "message"), [
    ("Permission denied.\n", "no `show stat` header"),
    ("", "no `show stat` header"),
    ("# pxname,qcur,qmax\nkube_apiserver,0,0\n", "without the svname, status field"),
])
def test_what_is_not_show_stat_csv_is_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        endpoint.parse_stat(text)


# ------------------------------------------------------------------ one control plane's output


def test_a_control_plane_holding_the_vip_with_its_backends() -> None:
    found = endpoint.parse("cp1", "cp1 (root@10.213.17.11:22)", VIP, "motd\n" + endpoint_sections())
    assert found.holds_vip is True and found.errors == []
    assert found.services == {"keepalived": "active", "haproxy": "active"}
    assert [(s.name, s.status) for s in found.servers or []] == [("cp1", "UP"), ("cp2", "UP")]
    other = endpoint.parse("cp2", "cp2", VIP, endpoint_sections(holds=False))
    assert other.holds_vip is False and other.errors == []
    # Another address that merely starts like the VIP is not the VIP.
    near = endpoint_sections().replace(f"inet {VIP}/32", f"inet {VIP}1/32")
    assert endpoint.parse("cp2", "cp2", VIP, near).holds_vip is False


@pytest.mark.parametrize(("sections", "errors", "servers"), [
    # haproxy stopped: its socket is gone with it; that is the problem shown, not a read error.
    (endpoint_sections(haproxy="inactive", rc="no-socket", via=""), [], None),
    (endpoint_sections(rc="no-socket", via=""), ["haproxy runs but its stats socket /run/haproxy/admin.sock is "
                                                 "missing, so its backends cannot be read"], None),
    (endpoint_sections(rc="no-reader", via=""), ["neither socat nor python3 is there, so haproxy's stats socket "
                                                 "/run/haproxy/admin.sock cannot be read; install socat to see "
                                                 "the backends"], None),
    (endpoint_sections(rc="1", via="socat", err="2026/12/06 socat[81] E connect(5, AF=1 \"/run/haproxy/admin.sock\","
                                                " 25): Permission denied"),
     ["haproxy's stats socket /run/haproxy/admin.sock could not be read with socat: 2026/12/06 socat[81] E "
      "connect(5, AF=1 \"/run/haproxy/admin.sock\", 25): Permission denied"], None),
    (endpoint_sections(stat="Unknown command. Please enter one of the following commands only :\n"),
     ["haproxy's stats socket /run/haproxy/admin.sock (read with python3): no `show stat` header "
      "(# pxname,svname,...)"], None),
    (endpoint_sections(stat=HEADER + "\n"), [], []),
])
def test_what_a_control_plane_could_not_read_is_one_line_each(sections: str, errors: list[str],
                                                              servers: list[Server] | None) -> None:
    found = endpoint.parse("cp1", "cp1", VIP, sections)
    assert found.errors == errors
    assert found.servers == servers
    assert found.holds_vip is True


def test_a_script_cut_short_or_without_ip_reads_nothing_of_it() -> None:
    cut = endpoint.parse("cp1", "cp1", VIP, "@@kubeboot preflight@@\nok\n")
    assert cut.errors == ["the API endpoint was not read (the script was cut short)"] and cut.holds_vip is None
    no_ip = endpoint_sections().replace("@@kubeboot endpoint-vip.rc@@\n0", "@@kubeboot endpoint-vip.rc@@\nno-ip")
    found = endpoint.parse("cp1", "cp1", VIP, no_ip)
    assert found.holds_vip is None and found.errors == [
        "`ip` is not installed there, so whether it holds the VIP is not known"]


# ------------------------------------------------------------------ the script part, run for real


class StatsSocket:
    """A UNIX socket answering one command per connection, as haproxy's stats socket does."""

    def __init__(self, path: Path, answer: str) -> None:
        self.path, self.answer, self.commands = path, answer, []  # type: list[str]
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(str(path))
        self.server.listen(4)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                self.commands.append(conn.recv(4096).decode())
                conn.sendall(self.answer.encode())

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def stats(tmp_path: Path) -> Iterator[StatsSocket]:
    server = StatsSocket(tmp_path / "admin.sock", show_stat(("cp1", "UP", "L7OK", "92"), ("cp2", "DOWN", "L4CON",
                                                                                         "12")))
    yield server
    server.close()


def run_part(tmp_path: Path, socket_path: Path, tools: list[str]) -> str:
    """The endpoint part as a control plane runs it, with only ``tools`` (and fake ip and systemctl) on PATH."""
    bin_dir = tmp_path / f"bin{len(list(tmp_path.glob('bin*')))}"
    bin_dir.mkdir()
    for tool in ["tail", *tools]:
        found = sys.executable if tool == "python3" else shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    (bin_dir / "ip").write_text(f"#!/bin/sh\necho \"$*\" >{tmp_path}/ip-args\n"
                                f"echo '2: eth0    inet {VIP}/32 scope global eth0'\n")
    (bin_dir / "systemctl").write_text("#!/bin/sh\n[ \"$2\" = haproxy ] && echo active || echo failed\n")
    for fake in ("ip", "systemctl"):
        (bin_dir / fake).chmod(0o755)
    part = endpoint.script_part(VIP).replace(endpoint.STATS_SOCKET, str(socket_path))
    script = f"s() {{ printf '\\n@@kubeboot %s@@\\n' \"$1\"; }}\nSUDO=\nerr={tmp_path}/err\n{part}"
    return subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, check=True,
                          env={"PATH": str(bin_dir), "HOME": str(tmp_path)}).stdout


def test_the_part_reads_the_socket_with_python3_when_socat_is_missing(tmp_path: Path, stats: StatsSocket) -> None:
    assert subprocess.run(["sh", "-n"], input=endpoint.script_part(VIP), text=True, check=False).returncode == 0
    out = run_part(tmp_path, stats.path, ["python3"])
    found = endpoint.parse("cp1", "cp1", VIP, out)
    assert stats.commands == ["show stat\n"]
    assert (tmp_path / "ip-args").read_text().split() == ["-o", "-4", "addr", "show", "to", f"{VIP}/32"]
    assert found.errors == [] and found.holds_vip is True
    assert found.services == {"keepalived": "failed", "haproxy": "active"}
    assert [(s.name, s.status, s.check) for s in found.servers or []] == [("cp1", "UP", "L7OK"),
                                                                           ("cp2", "DOWN", "L4CON")]


def test_the_part_says_the_socket_cannot_be_read_without_socat_or_python3(tmp_path: Path,
                                                                           stats: StatsSocket) -> None:
    found = endpoint.parse("cp1", "cp1", VIP, run_part(tmp_path, stats.path, []))
    assert stats.commands == [] and found.servers is None
    assert found.errors == ["neither socat nor python3 is there, so haproxy's stats socket /run/haproxy/admin.sock "
                            "cannot be read; install socat to see the backends"]
    missing = endpoint.parse("cp1", "cp1", VIP, run_part(tmp_path, tmp_path / "nothing.sock", ["python3"]))
    assert missing.errors[0].startswith("haproxy runs but its stats socket")


def test_the_part_only_reads() -> None:
    part = endpoint.script_part(VIP)
    assert "show stat" in part and f"to {VIP}/32" in part and "systemctl is-active keepalived" in part
    for word in ("disable", "enable", "set server", "shutdown", " restart", " stop", " start", " del ", " add "):
        assert word not in part, word


# ------------------------------------------------------------------ the endpoint across control planes


def node(name: str, holds: bool = False, servers: tuple[tuple[str, str], ...] = (("cp1", "UP"), ("cp2", "UP")),
         **services: str) -> NodeEndpoint:
    return NodeEndpoint(name, f"{name} (root@10.213.17.1:22)", holds_vip=holds,
                        services={"keepalived": "active", "haproxy": "active", **services},
                        servers=[Server(n, s, "L7OK" if s == "UP" else "L4CON", 10) for n, s in servers])


def api(*nodes: NodeEndpoint) -> Endpoint:
    return Endpoint(f"{VIP}:8443", VIP, ["cp1", "cp2"], list(nodes))


def test_one_holder_and_every_backend_up_is_no_problem() -> None:
    found = api(node("cp1", holds=True), node("cp2"))
    assert found.holders == ["cp1"] and found.problems() == [] and found.errors == []


def test_nobody_two_holders_a_stopped_service_and_backends_not_up_are_drift() -> None:
    nobody = api(node("cp1"), node("cp2"))
    assert [d.line() for d in nobody.problems()] == [
        f'cluster: vip {VIP} missing: expected "held by one control plane", actual (none)']
    split = api(node("cp1", holds=True), node("cp2", holds=True))
    assert [d.line() for d in split.problems()] == [
        f'cluster: vip {VIP} different: expected "held by one control plane", actual "held by cp1, cp2 (split '
        'brain)"']
    assert "split brain" in endpoint.fix(split.problems()[0])
    broken = api(node("cp1", holds=True, servers=(("cp1", "UP"), ("cp2", "DOWN"))),
                 node("cp2", servers=(("cp1", "MAINT"), ("cp2", "DOWN"), ("cp9", "UP")), keepalived="failed"))
    assert [d.line() for d in broken.problems()] == [
        'cp1: backend cp2 different: expected "UP", actual "DOWN (L4CON)"',
        'cp2: service keepalived different: expected "active", actual "failed"',
        'cp2: backend cp1 different: expected "UP", actual "MAINT (L4CON)"',
        'cp2: backend cp2 different: expected "UP", actual "DOWN (L4CON)"',
        'cp2: backend cp9 extra: expected (none), actual "UP (L7OK)"']
    missing = api(node("cp1", holds=True, servers=(("cp1", "UP"),)), node("cp2"))
    assert [d.line() for d in missing.problems()] == ['cp1: backend cp2 missing: expected "UP", actual (none)']
    assert "playbooks/api_endpoint.yml" in endpoint.fix(missing.problems()[0])


def test_a_control_plane_not_read_is_an_error_and_not_taken_for_a_holder() -> None:
    found = api(node("cp1"), NodeEndpoint("cp2", "cp2 (root@10.213.17.12:22)", errors=["connection refused"]))
    assert found.errors == ["cp2 (root@10.213.17.12:22): connection refused"]
    assert [d.actual for d in found.problems()] == ["not held by those read (cp2 not)"]


def status_with(found: Endpoint | None) -> Status:
    return Status(through="cp1", nodes=[], cni=CniStatus("flannel", ["flannel"], []),
                  pod_ranges=PodRanges("10.244.0.0/16", 24, "10.244.0.0/16", {}), nfs=None, endpoint=found)


def test_report_lines_and_exit_codes() -> None:
    healthy_api = api(node("cp1", holds=True), node("cp2"))
    status = status_with(healthy_api)
    assert report.exit_code(status) == 0
    lines = report.endpoint_lines(healthy_api)
    assert lines[:6] == ["", f"API endpoint {VIP}:8443 (kube_control_plane_lb keepalived):",
                         f"  VIP {VIP} held by: cp1",
                         "  cp1 (root@10.213.17.1:22): holds the VIP; keepalived active, haproxy active",
                         "    BACKEND  STATUS  CHECK  SINCE", "    cp1      UP      L7OK   10 s"]
    assert "  cp2 (root@10.213.17.1:22): does not hold the VIP; keepalived active, haproxy active" in lines
    text = report.table(status)
    assert "API endpoint" in text and "no drift" in text
    assert report.to_json(status)["endpoint"]["holders"] == ["cp1"]

    down = status_with(api(node("cp1", holds=True, servers=(("cp1", "UP"), ("cp2", "DOWN"))), node("cp2")))
    assert report.exit_code(down) == 3
    text = report.table(down)
    assert '  cp1: backend cp2 different: expected "UP", actual "DOWN (L4CON)": cp2\'s API server does not ' \
           "answer cp1's haproxy (GET /readyz)" in text
    assert "DRIFT (1):" in text and report.to_json(down)["drift"][0]["kind"] == "backend"

    nobody = status_with(api(node("cp1"), node("cp2")))
    assert report.exit_code(nobody) == 3
    assert f"  VIP {VIP} held by: nobody  PROBLEM" in report.table(nobody)
    split = status_with(api(node("cp1", holds=True), node("cp2", holds=True)))
    assert report.exit_code(split) == 3
    assert f"  VIP {VIP} held by: cp1, cp2  PROBLEM: split brain" in report.table(split)

    unread = status_with(api(node("cp1", holds=True), NodeEndpoint("cp2", "cp2 (x)", errors=["sudo refused"])))
    assert report.exit_code(unread) == 4
    assert "  cp2 (x): not read: sudo refused" in report.table(unread)
    assert report.exit_code(status_with(None)) == 0 and report.to_json(status_with(None))["endpoint"] is None


def test_wanted_only_with_keepalived_and_a_vip() -> None:
    assert endpoint.wanted({"kube_control_plane_lb": "keepalived", "kube_control_plane_vip": VIP})
    assert not endpoint.wanted({"kube_control_plane_lb": "keepalived"})
    assert not endpoint.wanted({"kube_control_plane_lb": "external", "kube_control_plane_vip": VIP})
    assert not endpoint.wanted({})
    assert endpoint.endpoint_of({"kube_control_plane_vip": VIP, "kube_control_plane_lb_port": 9443},
                                ["cp1"]).endpoint == f"{VIP}:9443"
    assert endpoint.endpoint_of({"kube_control_plane_vip": VIP}, ["cp1"]).endpoint == f"{VIP}:8443"


# ------------------------------------------------------------------ the command, over SSH


@pytest.fixture
def server() -> Iterator[PerScriptSshd]:
    found = PerScriptSshd()
    found.answers = {}
    found.start()
    yield found
    found.stop()


def ha_inventory(tmp_path: Path, server: PerScriptSshd, lb: str = "keepalived") -> Path:
    hosts = write_inventory(tmp_path, server)
    data = yaml.safe_load(hosts.read_text())
    data["all"]["vars"] |= {"kube_control_plane_lb": lb, "kube_control_plane_vip": VIP}
    if lb == "none":
        del data["all"]["vars"]["kube_control_plane_vip"]
    data["all"]["children"]["kube_control_plane"]["hosts"]["cp2"] = {
        "ansible_host": "127.0.0.1", "ansible_port": server.port, "node_ip": "10.213.17.14"}
    hosts.write_text(yaml.safe_dump(data))
    return hosts


def answers(now: dt.datetime, first: str, second: str) -> dict[str, str]:
    nodes = [*converged_nodes(), node_json("cp2", index=4, control_plane=True)]
    with_endpoint = remote.status_script(VIP)
    return {with_endpoint: canned(nodes, healthy_sections("cp1", True, now) + first),
            remote.certificates_script(True, VIP): healthy("cp2", True, now).replace(
                "\n@@kubeboot end@@", second + "\n@@kubeboot end@@"),
            remote.certificates_script(False, VIP): healthy("worker1", False, now)}


def test_the_command_shows_the_holder_and_backends_then_exit_3_for_a_backend_down(
        tmp_path: Path, server: PerScriptSshd, capsys: pytest.CaptureFixture[str]) -> None:
    now = dt.datetime.now(dt.UTC)
    hosts = ha_inventory(tmp_path, server)
    server.answers = answers(now, endpoint_sections(), endpoint_sections(holds=False))
    assert main(["status", "-i", str(hosts)]) == 0
    out = capsys.readouterr().out
    assert sorted(server.scripts) == sorted([remote.status_script(VIP), remote.certificates_script(True, VIP),
                                             *[remote.certificates_script(False)] * 2])
    assert remote.certificates_script(False, VIP) == remote.certificates_script(False)  # workers: no endpoint
    section = out.split(f"API endpoint {VIP}:8443 (kube_control_plane_lb keepalived):\n", 1)[1].split("\n\n")[0]
    assert section.splitlines()[0] == f"  VIP {VIP} held by: cp1"
    assert f"  cp2 (root@127.0.0.1:{server.port}): does not hold the VIP; keepalived active, haproxy active" in section
    assert "no drift" in out

    down = show_stat(("cp1", "UP", "L7OK", "92"), ("cp2", "DOWN", "L4CON", "4"))
    server.answers = answers(now, endpoint_sections(stat=down), endpoint_sections(holds=False, stat=down))
    assert main(["status", "-i", str(hosts), "--json"]) == 3
    document = json.loads(capsys.readouterr().out)
    assert document["exit_code"] == 3 and document["endpoint"]["holders"] == ["cp1"]
    assert [(d["node"], d["kind"], d["key"], d["actual"]) for d in document["drift"]] == [
        ("cp1", "backend", "cp2", "DOWN (L4CON)"), ("cp2", "backend", "cp2", "DOWN (L4CON)")]
    views = {n["name"]: n for n in document["endpoint"]["control_planes"]}
    assert views["cp2"]["holds_vip"] is False and views["cp1"]["backends"][1]["status"] == "DOWN"

    # Both hold it: split brain, exit 3.
    server.answers = answers(now, endpoint_sections(), endpoint_sections())
    assert main(["status", "-i", str(hosts)]) == 3
    assert "held by: cp1, cp2  PROBLEM: split brain" in capsys.readouterr().out


def test_the_cluster_unreadable_shows_the_endpoint_then_exits_4(
        tmp_path: Path, server: PerScriptSshd, capsys: pytest.CaptureFixture[str]) -> None:
    now = dt.datetime.now(dt.UTC)
    hosts = ha_inventory(tmp_path, server)
    down = show_stat(("cp1", "DOWN", "L4CON", "9"), ("cp2", "DOWN", "L4CON", "9"))
    failed = script_output({"nodes": ("", 1, f"Unable to connect to the server: dial tcp {VIP}:8443: connect: no "
                                             "route to host")}) .replace(
        "\n@@kubeboot end@@", endpoint_sections(holds=False, stat=down) + "\n@@kubeboot end@@")
    server.answers = {**answers(now, "", endpoint_sections(holds=False, stat=down)),
                      remote.status_script(VIP): failed}
    assert main(["status", "-i", str(hosts)]) == 4
    captured = capsys.readouterr()
    assert captured.out.splitlines()[:2] == [f"API endpoint {VIP}:8443 (kube_control_plane_lb keepalived):",
                                             f"  VIP {VIP} held by: nobody  PROBLEM"]
    assert "cp2: backend cp2 different" in captured.out
    assert "`kubectl get nodes` failed: Unable to connect to the server" in captured.err
    assert main(["status", "-i", str(hosts), "--json"]) == 4
    document = json.loads(capsys.readouterr().out)
    assert document["exit_code"] == 4 and document["endpoint"]["holders"] == []
    assert "cannot read the cluster through cp1" in document["error"]


def test_after_kubectl_get_nodes_failed_the_other_queries_are_skipped() -> None:
    failed = script_output({"nodes": ("", 1, "refused")})
    with pytest.raises(remote.UnreachableError):
        remote.parse_output(remote.connection("cp1", {}, known_hosts=None, accept_new=False, timeout=5), failed)
    script = remote.status_script()
    assert 'if [ "$name" = nodes ] && [ "$rc" != 0 ]; then down=1; fi' in script
    assert 'if [ -n "$down" ]; then s "$name.rc"; echo skipped; return; fi' in script


def test_nothing_of_the_endpoint_is_asked_with_kube_control_plane_lb_none(
        tmp_path: Path, server: PerScriptSshd, capsys: pytest.CaptureFixture[str]) -> None:
    now = dt.datetime.now(dt.UTC)
    hosts = ha_inventory(tmp_path, server, lb="none")
    nodes = [*converged_nodes(), node_json("cp2", index=4, control_plane=True)]
    server.answers = {remote.STATUS_SCRIPT: canned(nodes), remote.certificates_script(True): healthy("cp2", True, now),
                      remote.certificates_script(False): healthy("worker1", False, now)}
    assert main(["status", "-i", str(hosts)]) == 0
    out = capsys.readouterr().out
    assert sorted(server.scripts) == sorted([remote.STATUS_SCRIPT, remote.certificates_script(True),
                                             *[remote.certificates_script(False)] * 2])
    for script in server.scripts:
        assert "haproxy" not in script and "keepalived" not in script and "addr show" not in script
    assert "API endpoint" not in out
    assert main(["status", "-i", str(hosts), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["endpoint"] is None


def test_the_status_script_with_the_endpoint_is_valid_sh() -> None:
    for script in (remote.status_script(VIP), remote.certificates_script(True, VIP)):
        assert subprocess.run(["sh", "-n"], input=script, text=True, check=False).returncode == 0
        assert f"ip -o -4 addr show to {VIP}/32" in script and endpoint.STATS_SOCKET in script
    assert os.path.basename(endpoint.STATS_SOCKET) == "admin.sock"
    assert "stats socket /run/haproxy/admin.sock " in (
        Path(__file__).parents[2] / "roles/haproxy/templates/haproxy.cfg.j2").read_text()

