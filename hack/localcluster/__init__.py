"""A local Kubernetes cluster built from the project's own toolchain (see hack/cluster).

Two kinds of node:
- kwok: one fake node whose pods become Ready and whose Job pods succeed at once; the
  whole cluster listens on 127.0.0.1 and needs no privileges.
- real: a kubelet on Debian's containerd and runc, kube-proxy in iptables mode and
  CoreDNS, running real containers from locally built images. Pods live on a bridge of
  our own that nothing beyond this machine sees; it needs root.

Both kinds also run an S3-compatible object store (MinIO), and the real node a default
StorageClass (local-path-provisioner), as host processes of the cluster.

Modules: processes (start/stop by PID), layout (the state directory), pki (certificates),
control_plane (etcd, apiserver, controller-manager, scheduler), kwok_node, real_node,
storage (the default StorageClass), object_store (MinIO, its Service and Secret, signing its
requests with reconciler/s3.py), host_snapshot (what `down --check`
compares), example (the operator on examples/mysql.yaml), cli (the commands).
"""
