"""A stable hash of everything the stack program declares for one `Desired`.

The reconciler stores it in status and skips `up` when it, the generation and the
toolchain versions all match what was last applied. It covers the desired state, the Job
scripts and `PROGRAM_REVISION`, which must be bumped whenever `manifests.py` or
`program.py` changes what they declare for the same input.

Status is readable by anyone who can read the object, so the password enters the hash
only through an HMAC keyed with a secret of the operator's (derived from its state
passphrase): without the key, the fingerprint says nothing about the password.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from typing import Any, Final

from reconciler.desired import Desired
from reconciler.job_scripts import job_scripts

PROGRAM_REVISION: Final = 3
FINGERPRINT_PREFIX: Final = "sha256:"


def fingerprint_key(passphrase: str) -> bytes:
    """The HMAC key, derived from the state passphrase (a domain-separated hash)."""
    return hashlib.sha256(b"mysql-operator/fingerprint\0" + passphrase.encode()).digest()


# Fields added after instances were deployed, left out while unset: an operator upgrade
# then changes no fingerprint, and costs no `up`, for instances that do not use them.
UNSET_ADDITIONS: Final = (
    ("instance", "spec", "backup", "s3"),
    ("restore_source", "url"),
    ("restore_source", "size"),
    ("restore_source", "sha256"),
    ("restore_source", "transfer_image"),
    ("restore_source", "store"),
    ("final_upload",),
    ("password_rotations",),
)


def _drop_unset_additions(rendered: dict[str, Any]) -> None:
    for *parents, leaf in UNSET_ADDITIONS:
        node: Any = rendered
        for parent in parents:
            node = node.get(parent) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node and node[leaf] is None:
            del node[leaf]


def fingerprint_payload(desired: Desired, key: bytes) -> dict[str, Any]:
    """What the fingerprint hashes: the desired state (the password only as an HMAC), the
    Job scripts and the program's revision."""
    rendered = dataclasses.asdict(desired)
    del rendered["restore_finished"]  # how later changes apply, not what is declared
    del rendered["instance"]["spec"]["drift"]  # what a hand edit leads to, not what is declared
    _drop_unset_additions(rendered)
    # The password the stack declares, as an HMAC: in spec.password's place when that is
    # set (a spec.password the server does not have yet changes nothing the stack
    # declares), as its own entry for a referenced Secret.
    declared = desired.applied_password
    del rendered["password"]
    hashed = (
        None if declared is None else hmac.new(key, declared.encode(), hashlib.sha256).hexdigest()
    )
    if desired.instance.spec.password is not None:
        rendered["instance"]["spec"]["password"] = hashed
    elif hashed is not None:
        rendered["password"] = hashed
    return {
        "revision": PROGRAM_REVISION,
        "desired": rendered,
        "scripts": dict(job_scripts()),
    }


def inputs_fingerprint(desired: Desired, key: bytes) -> str:
    """`sha256:<hex>`; equal for equal inputs (and key) across processes."""
    payload = fingerprint_payload(desired, key)
    # sort_keys and fixed separators make the encoding canonical; enums encode as values.
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return FINGERPRINT_PREFIX + hashlib.sha256(encoded.encode()).hexdigest()
