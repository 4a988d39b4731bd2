"""discover's SSH layer and whole flow against an in-process paramiko SSH server on loopback (no root, no nodes)."""

from __future__ import annotations

import errno
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
import pytest
from paramiko.hostkeys import HostKeys

from kubeboot.discover import report
from kubeboot.discover.gather import GATHER_SCRIPT
from kubeboot.discover.run import DiscoverOptions, HostReport, discover
from kubeboot.discover.ssh import (
    Connector,
    KnownHosts,
    SshError,
    SshOptions,
    describe_os_error,
    known_hosts_name,
    run_on_hosts,
    run_script,
)
from kubeboot.discover.targets import Target, parse_target
from kubeboot.errors import UsageError
from tests.unit.test_discover_facts import BARE_METAL, gather_output

CANNED = gather_output(BARE_METAL, hostname="metal1", ssh="192.0.2.50 51234 198.51.100.7 22",
                       route4='[{"dst":"default","gateway":"198.51.100.1","dev":"eno1","flags":[]}]')


class _Server(paramiko.ServerInterface):
    def __init__(self, fake: FakeSshd) -> None:
        self.fake = fake

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        ok = username == "root" and key == self.fake.client_key
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        self.fake.commands.append(command.decode())
        threading.Thread(target=self.fake.respond, args=(channel,), daemon=True).start()
        return True


@dataclass
class FakeSshd:
    """An SSH server on 127.0.0.1 that answers any command with canned gather output."""

    host_key: paramiko.PKey = field(default_factory=paramiko.ECDSAKey.generate)
    client_key: paramiko.PKey = field(default_factory=paramiko.ECDSAKey.generate)
    output: str = CANNED
    exit_status: int = 0
    commands: list[str] = field(default_factory=list)
    scripts: list[str] = field(default_factory=list)
    transports: list[paramiko.Transport] = field(default_factory=list)
    listener: socket.socket = field(default_factory=socket.socket)

    @property
    def port(self) -> int:
        return int(self.listener.getsockname()[1])

    def start(self) -> None:
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            transport = paramiko.Transport(conn)
            transport.add_server_key(self.host_key)
            self.transports.append(transport)
            try:
                transport.start_server(server=_Server(self))
            except (paramiko.SSHException, EOFError, OSError):
                continue  # a client that hung up during the handshake (e.g. refusing our host key)

    def respond(self, channel: paramiko.Channel) -> None:
        script = bytearray()
        while chunk := channel.recv(65536):
            script += chunk
        self.scripts.append(script.decode())
        channel.sendall(self.output.encode())
        channel.sendall_stderr(b"a warning\n")
        channel.send_exit_status(self.exit_status)
        channel.close()

    def stop(self) -> None:
        self.listener.close()
        for transport in self.transports:
            transport.close()


@pytest.fixture
def sshd() -> Iterator[FakeSshd]:
    server = FakeSshd()
    server.start()
    yield server
    server.stop()


def _key_file(tmp_path: Path, key: paramiko.PKey) -> Path:
    path = tmp_path / "id_test"
    key.write_private_key_file(str(path))
    return path


def _known(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "known_hosts"
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def _line(name: str, key: paramiko.PKey) -> str:
    return f"{name} {key.get_name()} {key.get_base64()}"


def _options(tmp_path: Path, sshd: FakeSshd, known: Path, **kwargs: object) -> SshOptions:
    return SshOptions(user="root", port=sshd.port, key_file=_key_file(tmp_path, sshd.client_key),
                      known_hosts=known, timeout=5, **kwargs)  # type: ignore[arg-type]


def _run(options: SshOptions, *targets: Target) -> list[tuple[str | None, str | None]]:
    with Connector(options) as connector:
        outcomes = run_on_hosts(connector, list(targets), lambda c, t: run_script(c, "echo hi", 5).stdout)
    return [(o.value, o.kind) for o in outcomes]


def test_run_script_sends_the_script_on_stdin_to_sh(tmp_path: Path, sshd: FakeSshd) -> None:
    known = _known(tmp_path, "# comment", "@cert-authority * ssh-ed25519 AAAA", _line(f"[127.0.0.1]:{sshd.port}",
                                                                                      sshd.host_key))
    with Connector(_options(tmp_path, sshd, known)) as connector, \
            connector.connect(Target("x", "127.0.0.1")) as client:
        result = run_script(client, GATHER_SCRIPT, 5)
    assert sshd.commands == ["sh -s"]  # the login shell only starts sh; the script itself comes on stdin
    assert sshd.scripts == [GATHER_SCRIPT]
    assert (result.exit_status, result.stdout, result.stderr) == (0, CANNED, "a warning\n")


def test_hashed_known_hosts_entries_match(tmp_path: Path, sshd: FakeSshd) -> None:
    name = known_hosts_name("127.0.0.1", sshd.port)
    hashed = HostKeys.hash_host(name)
    known = _known(tmp_path, _line(hashed, sshd.host_key))
    assert _run(_options(tmp_path, sshd, known), Target("x", "127.0.0.1")) == [(CANNED, None)]


def test_unknown_host_key_is_refused_unless_accept_new(tmp_path: Path, sshd: FakeSshd) -> None:
    known = tmp_path / "ssh/known_hosts"  # does not exist yet
    target = Target("x", "127.0.0.1")
    with Connector(_options(tmp_path, sshd, known)) as connector:
        [outcome] = run_on_hosts(connector, [target], lambda c, t: "never")
    assert outcome.kind == "host-key-unknown"
    assert str(known) in (outcome.error or "") and "--accept-new" in (outcome.error or "")
    assert not known.exists()

    assert _run(_options(tmp_path, sshd, known, accept_new=True), target) == [(CANNED, None)]
    assert known.read_text() == _line(f"[127.0.0.1]:{sshd.port}", sshd.host_key) + "\n"
    assert _run(_options(tmp_path, sshd, known), target) == [(CANNED, None)]  # now known: no flag needed


def test_changed_host_key_is_always_refused_naming_file_and_line(tmp_path: Path, sshd: FakeSshd) -> None:
    other = paramiko.ECDSAKey.generate()
    name = f"[127.0.0.1]:{sshd.port}"
    known = _known(tmp_path, _line("10.1.1.1", other), _line(name, other))
    for accept_new in (False, True):
        with Connector(_options(tmp_path, sshd, known, accept_new=accept_new)) as connector:
            [outcome] = run_on_hosts(connector, [Target("x", "127.0.0.1")], lambda c, t: "never")
        assert outcome.kind == "host-key-mismatch"
        assert f"{known} line 2 has another key for {name}" in (outcome.error or "")
        assert f"ssh-keygen -R '{name}' -f {known}" in (outcome.error or "")
    assert len(known.read_text().splitlines()) == 2  # nothing appended


def test_wrong_key_is_an_auth_error_and_other_hosts_still_run(tmp_path: Path, sshd: FakeSshd) -> None:
    known = _known(tmp_path, _line(f"[127.0.0.1]:{sshd.port}", sshd.host_key))
    options = _options(tmp_path, sshd, known)
    wrong = SshOptions(**{**options.__dict__, "key_file": _key_file(tmp_path / "..", paramiko.ECDSAKey.generate())})
    with Connector(wrong) as connector:
        [outcome] = run_on_hosts(connector, [Target("x", "127.0.0.1")], lambda c, t: "never")
    assert outcome.kind == "auth" and "authentication failed for root with key" in (outcome.error or "")


def test_refused_port_is_one_line_and_does_not_stop_the_others(tmp_path: Path, sshd: FakeSshd) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    known = _known(tmp_path, _line(f"[127.0.0.1]:{sshd.port}", sshd.host_key))
    results = _run(_options(tmp_path, sshd, known), Target("a", "127.0.0.1"), Target("b", "127.0.0.1", port=port))
    assert results == [(CANNED, None), (None, "refused")]


def test_os_errors_become_one_line_each() -> None:
    assert describe_os_error(TimeoutError(), "10.0.0.9:22", 10).kind == "timeout"
    assert "within 10s" in str(describe_os_error(TimeoutError(), "10.0.0.9:22", 10))
    unreachable = describe_os_error(OSError(errno.EHOSTUNREACH, "No route to host"), "10.0.0.9:22", 10)
    assert (unreachable.kind, str(unreachable)) == ("unreachable", "10.0.0.9:22 is unreachable (No route to host)")
    assert describe_os_error(socket.gaierror(-2, "Name or service not known"), "nohost:22", 10).kind == "unreachable"


def test_bad_key_files_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        Connector(SshOptions(key_file=tmp_path / "missing", known_hosts=tmp_path / "kh"))
    junk = tmp_path / "junk"
    junk.write_text("not a key\n")
    with pytest.raises(UsageError, match="not a private key"):
        Connector(SshOptions(key_file=junk, known_hosts=tmp_path / "kh"))
    encrypted = tmp_path / "enc"
    paramiko.ECDSAKey.generate().write_private_key_file(str(encrypted), password="secret")
    with pytest.raises(UsageError, match="encrypted"):
        Connector(SshOptions(key_file=encrypted, known_hosts=tmp_path / "kh"))


def test_known_hosts_add_reports_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "kh"
    path.write_text("# header")  # no trailing newline
    known = KnownHosts(path)
    key = paramiko.ECDSAKey.generate()
    assert known.add("[10.0.0.1]:2222", key) == 2
    assert path.read_text().splitlines()[1] == _line("[10.0.0.1]:2222", key)
    assert [line for line, _ in known.lookup("[10.0.0.1]:2222")] == [2]
    assert KnownHosts(path).lookup("10.0.0.1") == []


def test_discover_end_to_end_partial_then_unchanged(tmp_path: Path, sshd: FakeSshd) -> None:
    known = _known(tmp_path, _line(f"[127.0.0.1]:{sshd.port}", sshd.host_key))
    options = DiscoverOptions(
        targets=[parse_target("127.0.0.1"), parse_target("127.0.0.1:1")],
        ssh=_options(tmp_path, sshd, known), parallel=4, inventory=tmp_path / "inv",
    )
    progress: list[str] = []

    def never(report: HostReport) -> bool:
        raise AssertionError("nothing to confirm")

    result = discover(options, confirm=never, on_done=lambda d, t, o: progress.append(f"{d}/{t} {o.ok}"))
    assert result.exit_code == 3
    assert sorted(p.split()[0] for p in progress) == ["1/2", "2/2"]
    assert sorted(p.split()[1] for p in progress) == ["False", "True"]
    ok, failed = result.hosts
    assert ok.name == "metal1" and ok.host_vars == "created"
    assert failed.error_kind == "refused" and failed.name is None
    written = (tmp_path / "inv/host_vars/metal1.yml").read_text()
    assert 'public_nic_mac: "0c:c4:7a:10:20:30"\nnode_ip: "198.51.100.7"\n' in written
    assert 'ansible_host: "127.0.0.1"' in written

    document = report.to_json(result)
    assert json.loads(json.dumps(document)) == document
    assert document["summary"] == {"hosts": 2, "ok": 1, "failed": 1}
    assert document["exit_code"] == 3
    first = document["hosts"][0]
    assert first["host_vars"]["status"] == "created"
    assert first["public_nic"] == {"interface": "eno1", "mac": "0c:c4:7a:10:20:30", "node_ip": "198.51.100.7",
                                   "reason": "holds the SSH address 198.51.100.7"}  # 127.0.0.1 is on lo
    assert [nic["name"] for nic in first["facts"]["interfaces"]] == ["lo", "eno1", "eno2", "eno1.100", "br0", "wg0"]
    assert "refused" in report.error_lines(result)[0]
    table = report.table(result, writing=True)
    assert "metal1" in table and "created" in table and "error (refused)" in table

    options = DiscoverOptions(targets=[parse_target("127.0.0.1")], ssh=options.ssh, inventory=options.inventory)
    again = discover(options, confirm=never)
    assert again.exit_code == 0
    assert again.hosts[0].host_vars == "unchanged"
    assert (tmp_path / "inv/host_vars/metal1.yml").read_text() == written


def test_hand_written_value_needs_confirmation(tmp_path: Path, sshd: FakeSshd) -> None:
    known = _known(tmp_path, _line(f"[127.0.0.1]:{sshd.port}", sshd.host_key))
    host_vars = tmp_path / "inv/host_vars/web1.yml"
    host_vars.parent.mkdir(parents=True)
    host_vars.write_text("# mine\nnode_ip: 10.0.0.99\n")
    options = DiscoverOptions(targets=[parse_target("web1=127.0.0.1")], ssh=_options(tmp_path, sshd, known),
                              inventory=tmp_path / "inv")
    asked: list[str] = []

    def refuse(item: HostReport) -> bool:
        asked.append(item.plan.diff() if item.plan else "")
        return False

    result = discover(options, confirm=refuse)
    assert result.exit_code == 1
    assert "-node_ip: 10.0.0.99" in asked[0] and '+node_ip: "198.51.100.7"' in asked[0]
    assert result.hosts[0].error_kind == "conflict" and result.hosts[0].host_vars == "skipped"
    assert "node_ip is 10.0.0.99 but discover found 198.51.100.7" in (result.hosts[0].error or "")
    assert host_vars.read_text() == "# mine\nnode_ip: 10.0.0.99\n"

    result = discover(options, confirm=lambda item: True)
    assert result.exit_code == 0 and result.hosts[0].host_vars == "updated"
    assert host_vars.read_text().startswith('# mine\nnode_ip: "198.51.100.7"\n')


def test_failing_gather_script_and_bad_output_are_per_host_errors(tmp_path: Path, sshd: FakeSshd) -> None:
    known = _known(tmp_path, _line(f"[127.0.0.1]:{sshd.port}", sshd.host_key))
    options = DiscoverOptions(targets=[parse_target("127.0.0.1")], ssh=_options(tmp_path, sshd, known))
    sshd.exit_status = 127
    result = discover(options, confirm=lambda item: False)
    assert result.exit_code == 1
    assert result.hosts[0].error == "the gather script exited 127: a warning"
    sshd.exit_status = 0
    sshd.output = "Welcome\n"
    result = discover(options, confirm=lambda item: False)
    assert result.hosts[0].error_kind == "command" and "gather output lacks" in (result.hosts[0].error or "")


def test_ssh_error_keeps_its_kind() -> None:
    assert SshError("auth", "x").kind == "auth"
