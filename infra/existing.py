"""What an installation finds already in the cluster: the state passphrase a previous
installation left (`pulumi destroy` keeps its Secret).

The program reads it so that a reinstall keeps it. A new random passphrase would be
created over the kept Secret (creating is a server-side apply, an upsert), and every
instance stack, encrypted with the old one, would become unreadable.
"""

from __future__ import annotations

import base64

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from infra.config import InstallConfig
from infra.resources import PASSPHRASE_KEY, names_for


def existing_passphrase(install: InstallConfig) -> str | None:
    """The kept passphrase, or None when there is none (a first installation)."""
    api = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=install.kubeconfig, context=install.context
    )
    names = names_for(install)
    try:
        secret = client.CoreV1Api(api).read_namespaced_secret(
            names.passphrase_secret, names.namespace
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    encoded = (secret.data or {}).get(PASSPHRASE_KEY)
    return base64.b64decode(encoded).decode() if encoded else None
