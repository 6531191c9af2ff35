"""The cluster's CA and certificates, made with openssl, and kubeconfigs that use them."""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from localcluster.layout import CLUSTER_DOMAIN, SERVICE_IP, write_if_changed

CLIENT_EXTENSIONS = "keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"

# Each client gets the identity that Kubernetes' bootstrap RBAC already grants, except
# kwok, which plays every kubelet of its fake nodes, CoreDNS (see real_node) and the
# local-path-provisioner (see storage).
CLIENT_SUBJECTS: Mapping[str, str] = {
    "admin": "/O=system:masters/CN=admin",
    "kube-controller-manager": "/CN=system:kube-controller-manager",
    "kube-scheduler": "/CN=system:kube-scheduler",
    "apiserver-kubelet-client": "/O=system:masters/CN=kube-apiserver-kubelet",
    "kwok": "/O=system:masters/CN=kwok",
    "kube-proxy": "/CN=system:kube-proxy",
    "coredns": "/CN=mysql-operator:coredns",
    "local-path-provisioner": "/CN=mysql-operator:local-path-provisioner",
}


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def new_key(path: Path) -> None:
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(path))
    path.chmod(0o600)


def issue(pki: Path, name: str, subject: str, extensions: str) -> None:
    """Issues `name`.crt/.key signed by the CA, unless it exists already."""
    key, cert = pki / f"{name}.key", pki / f"{name}.crt"
    if cert.exists():
        return
    new_key(key)
    with tempfile.TemporaryDirectory() as scratch:
        csr, ext = Path(scratch) / "csr", Path(scratch) / "ext"
        ext.write_text(extensions)
        openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
        openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(pki / "ca.crt"),
            "-CAkey", str(pki / "ca.key"), "-CAcreateserial", "-days", "825",
            "-extfile", str(ext), "-out", str(cert),
        )  # fmt: skip


def server_extensions(ips: Iterable[str], names: Iterable[str]) -> str:
    sans = [f"IP:{ip}" for ip in ips] + [f"DNS:{name}" for name in names]
    return (
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        f"subjectAltName={','.join(sans)}\n"
    )


def ensure_pki(pki: Path, api_ip: str) -> None:
    pki.mkdir(parents=True, exist_ok=True)
    if not (pki / "ca.crt").exists():
        new_key(pki / "ca.key")
        openssl(
            "req", "-x509", "-new", "-key", str(pki / "ca.key"), "-days", "3650",
            "-subj", "/CN=mysql-operator-local-ca", "-out", str(pki / "ca.crt"),
        )  # fmt: skip
    service_names = ["kubernetes", "kubernetes.default", "kubernetes.default.svc"]
    issue(
        pki,
        "apiserver",
        "/CN=kube-apiserver",
        server_extensions(
            ips=sorted({"127.0.0.1", api_ip, SERVICE_IP}),
            names=["localhost", *service_names, f"kubernetes.default.svc.{CLUSTER_DOMAIN}"],
        ),
    )
    for client, subject in CLIENT_SUBJECTS.items():
        issue(pki, client, subject, CLIENT_EXTENSIONS)
    if not (pki / "sa.key").exists():
        new_key(pki / "sa.key")
        openssl("ec", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))


def ensure_node_certificates(pki: Path, node: str, node_ip: str) -> None:
    """The kubelet's client identity (system:node:<name>) and its serving certificate."""
    issue(pki, "kubelet", f"/O=system:nodes/CN=system:node:{node}", CLIENT_EXTENSIONS)
    issue(pki, "kubelet-serving", f"/CN={node}", server_extensions([node_ip], [node]))


def write_kubeconfig(path: Path, server: str, pki: Path, user: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {"server": server, "certificate-authority": str(pki / "ca.crt")},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate": str(pki / f"{user}.crt"),
                    "client-key": str(pki / f"{user}.key"),
                },
            }
        ],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
        "current-context": "local",
    }
    # JSON is valid YAML, and keeps this package free of third-party imports.
    write_if_changed(path, json.dumps(config, indent=2))
    path.chmod(0o600)
