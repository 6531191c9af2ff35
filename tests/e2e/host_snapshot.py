"""What a real node may leave on the host: hack/localcluster/host_snapshot.py, which
`hack/cluster down --check` uses too."""

from localcluster.host_snapshot import HostSnapshot, processes_mentioning

__all__ = ["HostSnapshot", "processes_mentioning"]
