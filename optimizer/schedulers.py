"""Publish placement rankings to schedulers: Slurm node weights, Kubernetes node labels.

Commands are built as argument lists for ``subprocess.run(argv)`` — never a shell string —
and every node name is validated first, so a hostile name (``n1; rm -rf /``, ``--all``,
``a=b``) can never become a shell word, an option or a second assignment. Invalid names are
skipped and reported, not escaped: a name that does not match the scheduler's own grammar
is not a node the scheduler knows.

- Slurm: ``scontrol update NodeName=<n> Weight=<w>``; lower weight is allocated first, so the
  best-ranked node gets weight 1 (Slurm weights are unsigned 32-bit; we use 1..65535).
- Kubernetes: ``kubectl label node <n> dcim.io/energy-rank=<r> --overwrite`` and
  ``kubectl annotate node <n> dcim.io/marginal-facility-w=<w> --overwrite``; or the same as a
  strategic-merge patch manifest per node (:func:`kubernetes_patches`), for a controller.
"""

from __future__ import annotations

import math
import re
import subprocess
from collections.abc import Sequence

SLURM_NODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}\Z")  # \Z: "$" lets a trailing newline in
# RFC 1123 subdomain, what Kubernetes requires of node names
K8S_NODE = re.compile(r"^(?=.{1,253}\Z)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
LABEL_RANK = "dcim.io/energy-rank"
ANNOTATION_COST = "dcim.io/marginal-facility-w"
MAX_WEIGHT = 65535


def valid_slurm_node(name: str) -> bool:
    return isinstance(name, str) and bool(SLURM_NODE.match(name))


def valid_k8s_node(name: str) -> bool:
    return isinstance(name, str) and bool(K8S_NODE.match(name))


def slurm_weights(ranking: Sequence[tuple[str, float]]) -> dict[str, int]:
    """Weights from a best-first ranking: rank 1 → weight 1; ineligible (inf) nodes last."""
    out = {}
    for rank, (host, score) in enumerate(ranking, start=1):
        out[host] = MAX_WEIGHT if not math.isfinite(score) else min(rank, MAX_WEIGHT - 1)
    return out


def slurm_commands(ranking: Sequence[tuple[str, float]], *, scontrol: str = "scontrol") -> tuple[list[list[str]], list[str]]:
    """(argv lists, rejected names)."""
    cmds, rejected = [], []
    for host, weight in slurm_weights(ranking).items():
        if not valid_slurm_node(host):
            rejected.append(host)
            continue
        cmds.append([scontrol, "update", f"NodeName={host}", f"Weight={int(weight)}"])
    return cmds, rejected


def kubernetes_commands(ranking: Sequence[tuple[str, float]], *, kubectl: str = "kubectl") -> tuple[list[list[str]], list[str]]:
    """(argv lists, rejected names): one label and one annotation command per node."""
    cmds, rejected = [], []
    for rank, (host, score) in enumerate(ranking, start=1):
        if not valid_k8s_node(host):
            rejected.append(host)
            continue
        label_rank = str(rank) if math.isfinite(score) else "ineligible"
        cost = f"{score:.0f}" if math.isfinite(score) else "inf"
        cmds.append([kubectl, "label", "node", "--overwrite", "--", host, f"{LABEL_RANK}={label_rank}"])
        cmds.append([kubectl, "annotate", "node", "--overwrite", "--", host, f"{ANNOTATION_COST}={cost}"])
    return cmds, rejected


def kubernetes_patches(ranking: Sequence[tuple[str, float]]) -> tuple[list[dict], list[str]]:
    """Strategic-merge patches ``{"apiVersion": "v1", "kind": "Node", "metadata": {…}}``."""
    out, rejected = [], []
    for rank, (host, score) in enumerate(ranking, start=1):
        if not valid_k8s_node(host):
            rejected.append(host)
            continue
        out.append({"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": host,
            "labels": {LABEL_RANK: str(rank) if math.isfinite(score) else "ineligible"},
            "annotations": {ANNOTATION_COST: f"{score:.0f}" if math.isfinite(score) else "inf"}}})
    return out, rejected


def run_commands(cmds: list[list[str]], *, timeout_s: float = 10.0, dry_run: bool = False) -> list[tuple[list[str], int, str]]:
    """Run each argv (no shell). Returns (argv, return code, stderr); dry run returns 0, ''."""
    results = []
    for argv in cmds:
        if dry_run:
            results.append((argv, 0, ""))
            continue
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False, shell=False)
            results.append((argv, proc.returncode, proc.stderr.strip()[:500]))
        except (OSError, subprocess.TimeoutExpired) as exc:
            results.append((argv, -1, str(exc)))
    return results
