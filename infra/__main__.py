"""`pulumi up` installs the MySQL operator (Pulumi.yaml: `main: infra/`).

The language host runs this file with `runpy`, which puts `infra/` itself on `sys.path`;
the repository root goes first so that `infra.*` and `reconciler.settings` import the same
way here as in the tests.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pulumi

from infra.config import read_config, read_passphrase
from infra.existing import existing_passphrase
from infra.install import declare
from infra.resources import names_for


def main() -> None:
    config = pulumi.Config()
    install = read_config(config)
    names = names_for(install)
    # A configured passphrase wins; else the one a previous installation kept; else a new.
    passphrase = read_passphrase(config)
    if passphrase is None:
        kept = existing_passphrase(install)
        passphrase = pulumi.Output.secret(kept) if kept is not None else None
    installed = declare(install, passphrase)
    pulumi.export("namespace", installed.namespace.metadata.name)
    pulumi.export("serviceAccount", installed.service_account.metadata.name)
    pulumi.export("clusterRole", installed.cluster_role.metadata.name)
    pulumi.export("deployment", installed.deployment.metadata.name)
    pulumi.export("crd", installed.crd.metadata.name)
    pulumi.export("passphraseSecret", names.passphrase_secret)  # the name, never the value
    pulumi.export(
        "stateBackend",
        install.backend_url
        or f"file backend on PersistentVolumeClaim {names.namespace}/{names.state_claim}",
    )
    pulumi.export("keptOnDestroy", list(installed.kept_on_destroy))
    pulumi.log.info(
        "`pulumi destroy` removes the reconciler Deployment, its ServiceAccount, ClusterRole "
        "and binding, and keeps: " + "; ".join(installed.kept_on_destroy)
    )


main()
