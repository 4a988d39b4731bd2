"""SSH to many hosts in parallel with paramiko: host-key policy, jump host, one-line errors.

Not specific to discover: ``Connector`` opens checked connections, ``run_script`` runs a script in one round trip
and ``run_on_hosts`` runs any per-host function over a bounded thread pool, so other commands (``kubeboot status``)
reuse it.

Host keys follow OpenSSH: keys are looked up in a known_hosts file (plain or hashed names, ``[host]:port`` for other
ports); an unknown key is refused unless ``accept_new`` (``StrictHostKeyChecking=accept-new``), which appends it; a
key that differs from a known one is always refused, naming the file and line to fix.
"""

from __future__ import annotations

import errno
import getpass
import logging
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import paramiko
from paramiko.hostkeys import HostKeyEntry, HostKeys

from kubeboot.discover.targets import Target
from kubeboot.errors import KubebootError, UsageError

# paramiko logs transport failures at ERROR; without a handler Python would print them to stderr next to our one line.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts")
T = TypeVar("T")


class SshError(KubebootError):
    """A per-host failure; ``kind`` is one of unreachable, refused, timeout, auth, host-key-unknown,
    host-key-mismatch, jump, ssh, command."""

    exit_code = 1

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class SshOptions:
    user: str | None = None  # None: the local user name, as ssh does
    port: int = 22
    key_file: Path | None = None  # None: ssh-agent and ~/.ssh/id_* keys
    password: str | None = None
    known_hosts: Path = DEFAULT_KNOWN_HOSTS
    accept_new: bool = False
    jump: Target | None = None
    timeout: float = 10.0


@dataclass(frozen=True)
class CommandResult:
    exit_status: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class HostOutcome(Generic[T]):
    """What running a function on one host gave: its value, or a one-line error and its kind."""

    target: Target
    value: T | None = None
    error: str | None = None
    kind: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def known_hosts_name(host: str, port: int) -> str:
    """The name OpenSSH files a host's key under."""
    return host if port == 22 else f"[{host}]:{port}"


@dataclass
class KnownHosts:
    """A known_hosts file: lookups with line numbers, and thread-safe appends of accepted keys."""

    path: Path
    _entries: list[tuple[int, HostKeyEntry]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.path = self.path.expanduser()
        if not self.path.exists():
            return
        try:
            text = self.path.read_text(errors="replace")
        except OSError as exc:
            raise UsageError(f"cannot read known_hosts {self.path}: {exc.strerror}") from exc
        for lineno, line in enumerate(text.splitlines(), 1):
            stripped = line.strip()
            if not stripped or stripped.startswith(("#", "@")):
                continue  # comments, @cert-authority and @revoked markers
            try:
                entry = HostKeyEntry.from_line(stripped, lineno)
            except (paramiko.SSHException, ValueError, TypeError):
                continue  # key types paramiko does not know
            if entry is not None and entry.key is not None:
                self._entries.append((lineno, entry))

    def lookup(self, name: str) -> list[tuple[int, paramiko.PKey]]:
        """``(line, key)`` of every entry for ``name``."""
        with self._lock:
            return [(lineno, entry.key) for lineno, entry in self._entries if _matches(name, entry.hostnames)]

    def add(self, name: str, key: paramiko.PKey) -> int:
        """Append ``name``'s key (as ``ssh`` does with accept-new); returns its line number."""
        with self._lock:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            existing = self.path.read_text(errors="replace") if self.path.exists() else ""
            prefix = "" if not existing or existing.endswith("\n") else "\n"
            with self.path.open("a") as handle:
                handle.write(f"{prefix}{name} {key.get_name()} {key.get_base64()}\n")
            lineno = len((existing + prefix).splitlines()) + 1
            entry = HostKeyEntry([name], key)
            self._entries.append((lineno, entry))
            return lineno


def _matches(name: str, hostnames: list[str]) -> bool:
    for pattern in hostnames:
        if pattern == name:
            return True
        if pattern.startswith("|1|") and HostKeys.hash_host(name, pattern) == pattern:
            return True
    return False


def fingerprint(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.fingerprint}"


def describe_os_error(exc: OSError, where: str, timeout: float) -> SshError:
    """One line for a failed TCP connection to ``where`` (``host:port``)."""
    if isinstance(exc, socket.gaierror):
        return SshError("unreachable", f"cannot resolve {where.rsplit(':', 1)[0]}: {exc.strerror or exc}")
    if isinstance(exc, TimeoutError):
        return SshError("timeout", f"no answer from {where} within {timeout:g}s")
    if exc.errno == errno.ECONNREFUSED:
        return SshError("refused", f"connection refused by {where} (is sshd running on that port?)")
    if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN):
        return SshError("unreachable", f"{where} is unreachable ({exc.strerror})")
    return SshError("unreachable", f"cannot connect to {where}: {exc.strerror or exc}")


class _HostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Called by paramiko only for hosts without a known key: accept-new or refuse."""

    def __init__(self, known: KnownHosts, accept_new: bool) -> None:
        self.known = known
        self.accept_new = accept_new
        self.added_line: int | None = None

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if not self.accept_new:
            raise SshError("host-key-unknown",
                           f"unknown host key {fingerprint(key)}: not in {self.known.path}; check it and add it "
                           f"(ssh-keyscan), or rerun with --accept-new")
        self.added_line = self.known.add(hostname, key)


class Connector:
    """Opens checked SSH connections with one set of options; a jump host is connected once and shared."""

    def __init__(self, options: SshOptions) -> None:
        self.options = options
        self.user = options.user or getpass.getuser()
        self.known = KnownHosts(options.known_hosts)
        self.pkey = load_key(options.key_file) if options.key_file else None
        self._jump_lock = threading.Lock()
        self._jump: paramiko.SSHClient | None = None
        self._jump_error: SshError | None = None
        self.accepted: list[str] = []  # known_hosts names added under accept-new

    def close(self) -> None:
        with self._jump_lock:
            if self._jump is not None:
                self._jump.close()
                self._jump = None

    def __enter__(self) -> Connector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _port(self, target: Target) -> int:
        return target.port or self.options.port

    def _open_socket(self, target: Target) -> Any:
        port = self._port(target)
        where = f"{target.host}:{port}"
        if self.options.jump is None:
            try:
                return socket.create_connection((target.host, port), timeout=self.options.timeout)
            except OSError as exc:
                raise describe_os_error(exc, where, self.options.timeout) from None
        transport = self._jump_transport()
        try:
            return transport.open_channel("direct-tcpip", (target.host, port), ("127.0.0.1", 0),
                                          timeout=self.options.timeout)
        except paramiko.ChannelException as exc:
            jump = self.options.jump.host
            raise SshError("unreachable", f"jump host {jump} cannot connect to {where}: {exc.text}") from None
        except (paramiko.SSHException, OSError) as exc:
            jump = self.options.jump.host
            if "Timeout" in str(exc):
                raise SshError("timeout", f"jump host {jump} got no answer from {where} within "
                                          f"{self.options.timeout:g}s") from None
            raise SshError("jump", f"jump host {jump}: channel to {where} failed: {exc}") from None

    def _jump_transport(self) -> paramiko.Transport:
        jump = self.options.jump
        assert jump is not None
        with self._jump_lock:
            if self._jump_error is not None:
                raise self._jump_error
            if self._jump is None:
                try:
                    self._jump = self._connect_direct(jump, None)
                except SshError as exc:
                    self._jump_error = SshError("jump", f"jump host {jump.spec}: {exc}")
                    raise self._jump_error from None
            transport = self._jump.get_transport()
            if transport is None or not transport.is_active():
                raise SshError("jump", f"jump host {jump.spec}: connection lost")
            return transport

    def _connect_direct(self, target: Target, sock: Any) -> paramiko.SSHClient:
        """An authenticated client for ``target``; over ``sock`` when given (a jump channel)."""
        port = self._port(target)
        if sock is None:
            try:
                sock = socket.create_connection((target.host, port), timeout=self.options.timeout)
            except OSError as exc:
                raise describe_os_error(exc, f"{target.host}:{port}", self.options.timeout) from None
        name = known_hosts_name(target.host, port)
        client = paramiko.SSHClient()
        known = self.known.lookup(name)
        for _, key in known:
            client.get_host_keys().add(name, key.get_name(), key)
        policy = _HostKeyPolicy(self.known, self.options.accept_new)
        client.set_missing_host_key_policy(policy)
        user = target.user or self.user
        try:
            client.connect(
                target.host, port=port, username=user, password=self.options.password, pkey=self.pkey,
                allow_agent=self.pkey is None and self.options.password is None,
                look_for_keys=self.pkey is None and self.options.password is None,
                timeout=self.options.timeout, banner_timeout=self.options.timeout,
                auth_timeout=self.options.timeout, channel_timeout=self.options.timeout, sock=sock,
            )
        except paramiko.BadHostKeyException as exc:
            client.close()
            lines = ", ".join(str(lineno) for lineno, _ in known) or "?"
            raise SshError("host-key-mismatch",
                           f"HOST KEY MISMATCH: the host offers {fingerprint(exc.key)}, {self.known.path} line "
                           f"{lines} has another key for {name}; if the host was reinstalled, remove the old key "
                           f"with `ssh-keygen -R '{name}' -f {self.known.path}`") from None
        except SshError:
            client.close()
            raise
        except paramiko.AuthenticationException as exc:
            client.close()
            how = (f"key {self.options.key_file}" if self.pkey else
                   "password" if self.options.password else "ssh-agent and ~/.ssh keys")
            raise SshError("auth", f"authentication failed for {user} with {how}: {exc}") from None
        except TimeoutError:
            client.close()
            raise SshError("timeout", f"{target.host}:{port} accepted the connection but SSH did not answer "
                                      f"within {self.options.timeout:g}s") from None
        except (paramiko.SSHException, EOFError, OSError) as exc:
            client.close()
            raise SshError("ssh", f"SSH handshake with {target.host}:{port} failed: {exc or type(exc).__name__}") \
                from None
        if policy.added_line is not None:
            self.accepted.append(name)
        return client

    @contextmanager
    def connect(self, target: Target) -> Iterator[paramiko.SSHClient]:
        """A connected, authenticated client for ``target`` (through the jump host when one is set)."""
        sock = self._open_socket(target) if self.options.jump is not None else None
        client = self._connect_direct(target, sock)
        try:
            yield client
        finally:
            client.close()


def load_key(path: Path) -> paramiko.PKey:
    """The private key in ``path``; a missing, unreadable or encrypted key is a usage error (exit 2)."""
    path = path.expanduser()
    if not path.is_file():
        raise UsageError(f"--key {path}: no such file")
    try:
        return paramiko.PKey.from_path(str(path))
    except paramiko.PasswordRequiredException:
        raise UsageError(f"--key {path} is encrypted: load it into ssh-agent and leave out --key") from None
    except TypeError as exc:  # cryptography's way of saying a passphrase is needed
        if "password" in str(exc).lower():
            raise UsageError(f"--key {path} is encrypted: load it into ssh-agent and leave out --key") from None
        raise UsageError(f"--key {path} is not a private key paramiko can read: {exc}") from None
    except (paramiko.SSHException, OSError, ValueError) as exc:
        raise UsageError(f"--key {path} is not a private key paramiko can read: {exc}") from None


def run_script(client: paramiko.SSHClient, script: str, timeout: float) -> CommandResult:
    """Run ``script`` with ``sh -s`` (fed on stdin, so the login shell does not matter) in one round trip."""
    transport = client.get_transport()
    if transport is None:
        raise SshError("ssh", "connection closed before the command ran")
    try:
        channel = transport.open_session(timeout=timeout)
        channel.settimeout(timeout)
        channel.exec_command("sh -s")
        channel.sendall(script.encode())
        channel.shutdown_write()
        stdout, stderr = bytearray(), bytearray()
        deadline = time.monotonic() + timeout
        # Sleep until the channel has output or ends (select on its pipe) instead of polling: with many hosts at
        # once, polling threads would take turns at the GIL that the transports need.
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SshError("timeout", f"the command did not finish within {timeout:g}s")
            if channel.recv_ready():
                stdout += channel.recv(65536)
            elif channel.recv_stderr_ready():
                stderr += channel.recv_stderr(65536)
            elif channel.eof_received:
                if channel.exit_status_ready() or channel.status_event.wait(remaining):
                    break
            else:
                select.select([channel], [], [], remaining)
        while channel.recv_ready():
            stdout += channel.recv(65536)
        while channel.recv_stderr_ready():
            stderr += channel.recv_stderr(65536)
        status = channel.recv_exit_status()
        channel.close()
    except TimeoutError:
        raise SshError("timeout", f"the command did not finish within {timeout:g}s") from None
    except (paramiko.SSHException, EOFError, OSError) as exc:
        raise SshError("ssh", f"running the command failed: {exc}") from None
    return CommandResult(status, stdout.decode(errors="replace"), stderr.decode(errors="replace"))


def run_on_hosts(
    connector: Connector,
    targets: list[Target],
    work: Callable[[paramiko.SSHClient, Target], T],
    *,
    parallel: int = 16,
    on_done: Callable[[int, int, HostOutcome[T]], None] | None = None,
) -> list[HostOutcome[T]]:
    """``work(client, target)`` on every target, at most ``parallel`` at once; outcomes in the targets' order.

    A failure on one host (``KubebootError``: its message is the line) never stops the others. ``on_done(done,
    total, outcome)`` is called in the caller's thread as each host finishes, for progress.
    """

    def one(target: Target) -> HostOutcome[T]:
        started = time.monotonic()
        try:
            with connector.connect(target) as client:
                value = work(client, target)
        except SshError as exc:
            return HostOutcome(target, error=str(exc), kind=exc.kind, seconds=time.monotonic() - started)
        except KubebootError as exc:
            return HostOutcome(target, error=str(exc), kind="command", seconds=time.monotonic() - started)
        except Exception as exc:  # one host's surprise must not stop the others
            return HostOutcome(target, error=f"unexpected {type(exc).__name__}: {exc}", kind="internal",
                               seconds=time.monotonic() - started)
        return HostOutcome(target, value=value, seconds=time.monotonic() - started)

    outcomes: dict[int, HostOutcome[T]] = {}
    if not targets:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(targets)))) as pool:
        futures = {pool.submit(one, target): index for index, target in enumerate(targets)}
        for future in as_completed(futures):
            outcome = future.result()
            outcomes[futures[future]] = outcome
            if on_done is not None:
                on_done(len(outcomes), len(targets), outcome)
    return [outcomes[index] for index in range(len(targets))]
