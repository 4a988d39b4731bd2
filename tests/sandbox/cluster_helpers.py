"""Helpers of the cluster-formation sandbox tests: the cluster as kubectl on the first control plane shows it."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import Sandbox, recap, task_results

KUBECTL = "kubectl --kubeconfig /etc/kubernetes/admin.conf"


def kubectl_json(box: Sandbox, args: str) -> Any:
    return json.loads(box.ssh("cp1", f"{KUBECTL} {args} -o json").stdout)


def ready_nodes(box: Sandbox) -> set[str]:
    nodes = kubectl_json(box, "get nodes")["items"]
    return {n["metadata"]["name"] for n in nodes
            if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])}


def assert_unchanged(output: str, hosts: set[str]) -> None:
    counts = recap(output)
    assert hosts <= set(counts)
    for host in hosts:
        assert counts[host]["changed"] == 0 and counts[host]["failed"] == 0, \
            f"{host}: {counts[host]}\n{task_results(output, ('changed', 'fatal', 'failed'))}"
