"""Render-server slots on a Ray cluster: the ``render_<size>`` custom resources its nodes offer, read as
the host's ``Capacity``.

A node offers slots with ``ray start --resources '{"render_standard": 2}'`` and each render server's actor
takes one, so Ray's scheduler is the slot table. Apart from ``openrr.hosts.ray`` because reading the
cluster's resources is a job of its own (blocking calls, a private per-node view) that starts and stops
both consult.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ray

from openrr.compat.ray import available_resources_per_node
from openrr.domain.session import Size
from openrr.hosts.base import Capacity, NodeCapacity, Slots


def resource_name(size: str) -> str:
    """The custom resource a node offers per render-server slot of ``size`` (``render_standard``)."""
    return f"render_{size.strip().lower()}"


def available_per_node() -> dict[str, dict[str, float]]:
    """Available resources by node id (alive nodes); ``{}`` when Ray cannot say. Blocking.

    Without it, nodes show totals only and a stop does not wait for the freed slot to show."""
    try:
        return available_resources_per_node()
    # A private API (openrr.compat.ray): whatever it raises, missing from this Ray version or failing, the
    # caller goes on without the per-node view, as documented above.
    except Exception:  # noqa: BLE001 -- optional private view: any failure means "not available"
        return {}


def cluster_state() -> dict[str, Any]:
    """What ``capacity_of`` reads: the cluster's totals, what is free, its nodes. Needs a driver. Blocking."""
    return {
        "total": ray.cluster_resources(),  # type: ignore[no-untyped-call]
        "available": ray.available_resources(),  # type: ignore[no-untyped-call]
        "nodes": ray.nodes(),  # type: ignore[no-untyped-call]
        "per_node": available_per_node(),
    }


def capacity_of(state: Mapping[str, Any]) -> Capacity:
    """Slots per size from the cluster's ``render_<size>`` resources (alive nodes), with every node Ray
    knows, dead ones included (``alive`` False, no slots)."""
    totals: Mapping[str, float] = state["total"]
    available: Mapping[str, float] = state["available"]
    sizes = {
        size.value.lower(): Slots(
            int(totals.get(resource_name(size.value), 0)),
            # Ray omits a resource from available_resources() once all of it is in use.
            int(available.get(resource_name(size.value), 0)),
        )
        for size in Size
    }
    return Capacity(
        sizes=sizes, nodes=tuple(_node_capacity(node, state["per_node"]) for node in state["nodes"])
    )


def _node_capacity(node: Mapping[str, Any], per_node: Mapping[str, Mapping[str, float]]) -> NodeCapacity:
    node_id = str(node.get("NodeID", ""))
    alive = bool(node.get("Alive"))
    node_total: Mapping[str, float] = node.get("Resources") or {}
    node_free: Mapping[str, float] = per_node.get(node_id, {}) if alive else {}
    slots = {
        size.value.lower(): Slots(
            int(node_total.get(resource_name(size.value), 0)) if alive else 0,
            int(node_free.get(resource_name(size.value), 0)),
        )
        for size in Size
        if resource_name(size.value) in node_total
    }
    return NodeCapacity(node_id, str(node.get("NodeManagerAddress", "")), alive, slots)
