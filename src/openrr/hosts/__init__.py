"""Where render servers run. One protocol (base.Host), one module per kind of place."""

from openrr.hosts.base import Host, HostState, HostStatus

__all__ = ["Host", "HostState", "HostStatus"]
