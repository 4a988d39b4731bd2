"""The flow of `kubeboot discover`: gather facts in parallel, choose each public NIC, plan and write host_vars."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from kubeboot.discover import hostvars
from kubeboot.discover.facts import HostFacts, choose_public_nic
from kubeboot.discover.gather import GATHER_SCRIPT, parse_output
from kubeboot.discover.ssh import Connector, HostOutcome, SshError, SshOptions, run_on_hosts, run_script
from kubeboot.discover.targets import NAME_RE, Target
from kubeboot.public_nic import NicChoice

EXIT_OK = 0
EXIT_NONE = 1
EXIT_PARTIAL = 3


@dataclass(frozen=True)
class DiscoverOptions:
    targets: list[Target]
    ssh: SshOptions
    parallel: int = 16
    inventory: Path | None = None  # None: print only


@dataclass
class HostReport:
    """Everything discover has to say about one host."""

    target: Target
    facts: HostFacts | None = None
    name: str | None = None
    choice: NicChoice | None = None
    plan: hostvars.HostVarsPlan | None = None
    host_vars: str = ""  # created, updated, unchanged, skipped, "" (not asked to write)
    error: str | None = None
    error_kind: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def label(self) -> str:
        return self.name or self.target.label

    def fail(self, kind: str, message: str) -> None:
        if self.error is None:
            self.error, self.error_kind = message, kind

    def values(self) -> dict[str, str]:
        """The managed host_vars values for this host."""
        mac = self.choice.interface.hw_mac if self.choice is not None and self.choice.interface is not None else None
        if self.choice is None or mac is None:
            return {}
        values = {"public_nic_mac": mac}
        if self.choice.node_ip:
            values["node_ip"] = self.choice.node_ip
        if self.target.is_address:
            values["ansible_host"] = self.target.host
        return values


@dataclass
class DiscoverResult:
    hosts: list[HostReport] = field(default_factory=list)
    accepted_host_keys: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        done = sum(1 for h in self.hosts if h.ok)
        if done == len(self.hosts):
            return EXIT_OK
        return EXIT_PARTIAL if done else EXIT_NONE


def gather_facts(client: paramiko.SSHClient, target: Target, timeout: float) -> HostFacts:
    """Run the gather script on a connected host and parse what it printed."""
    result = run_script(client, GATHER_SCRIPT, timeout)
    if result.exit_status != 0:
        last = (result.stderr.strip().splitlines() or ["no error output"])[-1]
        raise SshError("command", f"the gather script exited {result.exit_status}: {last}")
    return parse_output(result.stdout)


def gather(options: DiscoverOptions, connector: Connector,
           on_done: Callable[[int, int, HostOutcome[HostFacts]], None] | None = None) -> list[HostReport]:
    """Connect to every target (bounded parallelism) and gather its facts; failures become per-host errors."""
    timeout = options.ssh.timeout
    outcomes = run_on_hosts(connector, options.targets, lambda client, t: gather_facts(client, t, timeout),
                            parallel=options.parallel, on_done=on_done)
    reports = []
    for outcome in outcomes:
        report = HostReport(target=outcome.target, facts=outcome.value, seconds=outcome.seconds)
        if outcome.error is not None:
            report.fail(outcome.kind or "ssh", outcome.error)
        elif report.facts is not None:
            report.name = outcome.target.name or report.facts.hostname
        reports.append(report)
    _check_names(reports)
    return reports


def _check_names(reports: list[HostReport]) -> None:
    counts = Counter(r.name for r in reports if r.ok and r.name)
    for report in reports:
        if not report.ok or not report.name:
            continue
        if not NAME_RE.match(report.name):
            report.fail("name", f"hostname {report.name!r} is not a usable inventory name; give one with NAME=HOST")
        elif counts[report.name] > 1:
            others = ", ".join(r.target.spec for r in reports if r.name == report.name and r is not report)
            report.fail("name", f"inventory name {report.name!r} is also that of {others}; "
                                "give distinct names with NAME=HOST")


def plan(options: DiscoverOptions, reports: list[HostReport]) -> None:
    """Choose each host's public NIC (honouring a hand-written public_nic_mac) and plan its host_vars."""
    for report in reports:
        if not report.ok or report.facts is None or report.name is None:
            continue
        existing: dict[str, object] = {}
        text = ""
        path: Path | None = None
        if options.inventory is not None:
            path = hostvars.host_vars_path(options.inventory, report.name)
            try:
                text, existing = hostvars.read_existing(path)
            except hostvars.HostVarsError as exc:
                report.fail("host_vars", str(exc))
                continue
        wanted_mac = existing.get("public_nic_mac")
        known_host = existing.get("ansible_host")
        ansible_host = report.target.host if report.target.is_address else (
            known_host if isinstance(known_host, str) else None)
        report.choice = choose_public_nic(report.facts, public_nic_mac=wanted_mac if isinstance(wanted_mac, str)
                                          else None, ansible_host=ansible_host)
        if not report.choice.ok:
            report.fail("public-nic", f"no public NIC: {report.choice.reason}")
            continue
        if path is not None:
            try:
                report.plan = hostvars.update_text(text, report.name, path, report.values())
            except hostvars.HostVarsError as exc:
                report.fail("host_vars", str(exc))


def apply(reports: list[HostReport], confirm: Callable[[HostReport], bool]) -> None:
    """Write every planned host_vars file; a conflicting one only when ``confirm(report)`` says so."""
    for report in reports:
        if not report.ok or report.plan is None:
            continue
        if report.plan.status == "unchanged":
            report.host_vars = "unchanged"
            continue
        if report.plan.needs_confirmation and not confirm(report):
            report.host_vars = "skipped"
            found = "; ".join(f"{c.key} is {c.old} but discover found {c.new}"
                              for c in report.plan.changes if c.key in report.plan.conflicts)
            report.fail("conflict", f"{report.plan.path}: {found}; not written (check it, then rerun with "
                                    "--yes to replace the hand-written value)")
            continue
        try:
            hostvars.write(report.plan)
        except OSError as exc:
            report.fail("host_vars", f"cannot write {report.plan.path}: {exc.strerror}")
            continue
        report.host_vars = "created" if report.plan.status == "create" else "updated"


def discover(options: DiscoverOptions, *, confirm: Callable[[HostReport], bool],
             on_done: Callable[[int, int, HostOutcome[HostFacts]], None] | None = None) -> DiscoverResult:
    """The whole command: gather, plan, write (writes only when ``options.inventory`` is set)."""
    with Connector(options.ssh) as connector:
        reports = gather(options, connector, on_done)
        accepted = list(connector.accepted)
    plan(options, reports)
    apply(reports, confirm)
    return DiscoverResult(reports, accepted)
