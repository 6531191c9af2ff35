"""A stable hash of everything the stack program renders for one instance and phase.

The reconcile step stores it in status and skips `up` when it, the generation and the
toolchain versions all match (ENGINEERING.md section 3). It covers the instance, the
phase, the Job scripts and `PROGRAM_REVISION`, which must be bumped whenever
`reconciler.program` changes what it declares for the same instance.

Status is readable by anyone who can read the object, and a plain hash of inputs that
include a weak password could be brute-forced offline. The password therefore enters
the hash only through scrypt, salted with the object's uid.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from typing import Final

from reconciler.job_scripts import job_scripts
from reconciler.program import Phase
from reconciler.spec import Instance

PROGRAM_REVISION: Final = 1
FINGERPRINT_PREFIX: Final = "sha256:"


def inputs_fingerprint(instance: Instance, phase: Phase) -> str:
    """`sha256:<hex>`; equal for equal inputs across processes and Python versions."""
    rendered = dataclasses.asdict(instance)
    password = instance.spec.password
    rendered["spec"]["password"] = None if password is None else _slow_digest(password, instance)
    payload = {
        "revision": PROGRAM_REVISION,
        "phase": phase.value,
        "instance": rendered,
        "scripts": dict(job_scripts()),
    }
    # sort_keys and fixed separators make the encoding canonical; enums encode as values.
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return FINGERPRINT_PREFIX + hashlib.sha256(encoded.encode()).hexdigest()


def _slow_digest(password: str, instance: Instance) -> str:
    return _scrypt_hex(password, instance.uid)


# Every resync recomputes the fingerprint of every unchanged object, and one scrypt costs
# about 64 ms of CPU here (docs/benchmarks.md, no-op cost); the digest of a given
# password and uid never changes, so it is worked out once per process.
@functools.lru_cache(maxsize=4096)
def _scrypt_hex(password: str, salt: str) -> str:
    # n=2**14, r=8: about 16 MiB and tens of milliseconds.
    digest = hashlib.scrypt(password.encode(), salt=salt.encode(), n=2**14, r=8, p=1, dklen=32)
    return digest.hex()
