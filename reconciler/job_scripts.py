"""The shell scripts that the restore and backup Jobs run, as shipped in the package.

The program puts them into a ConfigMap that the Jobs mount, so that the Jobs can use the
instance's own image (it has mysql and mysqldump) rather than an image of ours.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Final

BACKUP_SCRIPT: Final = "backup.sh"
RESTORE_SCRIPT: Final = "restore.sh"
# Run inline by the password rotation Job; not in the ConfigMap (manifests.rotation_job).
ROTATION_SCRIPT: Final = "rotate-password.sh"


@cache
def job_scripts() -> Mapping[str, str]:
    """Script file name to contents; read once, they cannot change under a running process."""
    folder = resources.files("reconciler").joinpath("scripts")
    # Read-only: the cached value is shared by every caller.
    return MappingProxyType(
        {name: folder.joinpath(name).read_text() for name in (BACKUP_SCRIPT, RESTORE_SCRIPT)}
    )
