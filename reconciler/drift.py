"""Drift (pure): what a hand edit changed in the instance's Deployment and Services, by
comparing each field the operator declares (manifests.py) with the live object. Fields
the operator does not declare (those the API server defaults, a restart annotation) are
not its business; a list must match in length and element by element, so an added
container, env var or port counts. No engine run: the objects are read like any other.

What follows is lifecycle's: with `spec.drift: Heal` an `up --refresh` puts the declared
state back (once per distinct drift: if the same drift is still there after it, it is
only reported), with `Report` only the DriftDetected condition says it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from reconciler.actions import Deploy
from reconciler.conditions import Reason
from reconciler.desired import Desired
from reconciler.manifests import rendered
from reconciler.observation import Observation
from reconciler.spec import DriftMode, Instance, quantity_value

# The kinds whose hand edits are looked for, with the name of each object as declared.
WATCHED_KINDS: Final = ("Deployment", "Service")


def drifted(
    declared: Sequence[Mapping[str, Any]], live: Mapping[tuple[str, str], Mapping[str, Any]]
) -> tuple[str, ...]:
    """Each declared field of a Deployment or Service whose live value differs, as
    `Kind/name path: declared X, found Y`. An object that is missing is not drift (it is
    re-created by the ordinary path)."""
    found: list[str] = []
    for manifest in declared:
        kind, name = str(manifest.get("kind")), str(manifest["metadata"]["name"])
        obj = live.get((kind, name))
        if kind not in WATCHED_KINDS or obj is None or obj.get("spec") is None:
            continue
        for path, want, have in _differences(manifest.get("spec"), obj.get("spec"), "spec"):
            found.append(f"{kind}/{name} {path}: declared {_shown(want)}, found {_shown(have)}")
    return tuple(found)


def signature(drift: Sequence[str]) -> str:
    """A short, stable name for one set of differences."""
    return hashlib.sha256("\n".join(sorted(drift)).encode()).hexdigest()[:16]


def _differences(want: Any, have: Any, path: str) -> Iterator[tuple[str, Any, Any]]:
    if want is None:
        return
    if isinstance(want, Mapping):
        if not isinstance(have, Mapping):
            yield path, want, have
            return
        for key, value in want.items():
            yield from _differences(value, have.get(key), f"{path}.{key}")
        return
    if isinstance(want, list):
        if not isinstance(have, list) or len(have) != len(want):
            yield path, _count(want), _count(have)
            return
        for index, (one, other) in enumerate(zip(want, have, strict=True)):
            yield from _differences(one, other, f"{path}[{index}]")
        return
    if not _same(want, have, path):
        yield path, want, have


def _same(want: Any, have: Any, path: str) -> bool:
    if want == have or str(want) == str(have):
        return True
    # The API server writes quantities its own way (1024Mi as 1Gi, 0.5 as 500m).
    if ".resources." in path and isinstance(want, str) and isinstance(have, str):
        try:
            return quantity_value(want) == quantity_value(have)
        except ValueError:
            return False
    return False


class _Entries(int):
    """A list's length, shown as such."""

    def __repr__(self) -> str:
        return f"{int(self)} entries"


def _count(value: Any) -> _Entries | None:
    return _Entries(len(value)) if isinstance(value, list) else None


def _shown(value: Any) -> str:
    return "nothing" if value is None else repr(value)


def drift_step(
    observation: Observation, instance: Instance, desired: Desired, fingerprint: str
) -> Deploy | tuple[Reason, str] | None:
    """For an instance about to be marked Ready: an `up --refresh` that heals its drift,
    or the DriftDetected condition to set, (reason, message); None when the objects were
    not read."""
    live = observation.live
    if not live.workload_objects:
        return None
    declared = rendered(desired)
    found = drifted(declared, dict(live.workload_objects))
    if not found:
        return Reason.NO_DRIFT, "the Deployment and Services are as declared"
    listed = "; ".join(found)
    healed = observation.parsed_object.status.drift_healed == signature(found)
    if instance.spec.drift is DriftMode.HEAL and not healed:
        return Deploy(
            desired,
            fingerprint,
            Reason.DRIFT_HEALING,
            f"putting back what was edited by hand: {listed}",
            refresh=True,
            heals=found,
            replace=_drifted_services(declared, found),
        )
    if healed:
        return (
            Reason.DRIFT_NOT_HEALED,
            f"still differs after an `up --refresh` (so it is only reported): {listed}",
        )
    return Reason.DRIFTED, f"edited by hand (spec.drift: Report): {listed}"


def _drifted_services(
    declared: Sequence[Mapping[str, Any]], found: Sequence[str]
) -> tuple[str, ...]:
    """The drifted Services: a server-side apply would merge a hand-edited port in beside
    the declared one, so these are created again instead."""
    names = [str(m["metadata"]["name"]) for m in declared if m["kind"] == "Service"]
    return tuple(name for name in names if any(f.startswith(f"Service/{name} ") for f in found))
