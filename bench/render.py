"""The Kubernetes objects that `reconciler.program` declares, captured with Pulumi's mocks.

The baseline applies exactly these, so both sides deploy identical manifests. The mocks
run the real program (no engine); each registered resource's serialized inputs are the
object's manifest (apiVersion, kind, metadata, spec...), with secrets unwrapped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import pulumi
from pulumi.runtime.mocks import MockMonitor

from reconciler.program import ClusterAccess, Phase, build_program
from reconciler.spec import Instance

PROVIDER_PREFIX: Final = "pulumi:providers:"
STACK_TYPE: Final = "pulumi:pulumi:Stack"
# The wire marker of a secret value (pulumi/sdk/go/common/resource/sig).
SECRET_SIG_KEY: Final = "4dabf18193072939515e22adb298388d"  # noqa: S105 (not a secret)
SECRET_SIG: Final = "1b47061264138c4ac30d75fd1eb44270"  # noqa: S105 (not a secret)


@dataclass(frozen=True)
class Manifest:
    """One declared Kubernetes object, in declaration order."""

    type_token: str  # e.g. kubernetes:apps/v1:Deployment
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def namespace(self) -> str | None:
        found = self.body["metadata"].get("namespace")
        return str(found) if found else None


class _Mocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.declared: list[Manifest] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        if args.typ != STACK_TYPE and not args.typ.startswith(PROVIDER_PREFIX):
            body = unwrap_secrets(dict(args.inputs))
            assert isinstance(body, dict)
            self.declared.append(Manifest(args.typ, body))
        return f"{args.name}-id", dict(args.inputs)

    def call(
        self, args: pulumi.runtime.MockCallArgs
    ) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        raise AssertionError(f"the program must not invoke functions: {args.token}")


def render_manifests(instance: Instance, phase: Phase = Phase.RUNNING) -> list[Manifest]:
    """Runs the stack program under mocks and returns the objects it declares."""
    mocks = _Mocks()
    monitor = MockMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, monitor=monitor, preview=False)
    program = build_program(instance, phase, ClusterAccess(kubeconfig="/dev/null/unused"))

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def run() -> None:
        program()

    run()
    return list(mocks.declared)


def unwrap_secrets(value: Any) -> Any:
    """Secrets unwrapped, integral doubles back to integers."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG_KEY) == SECRET_SIG:
            return unwrap_secrets(value.get("value"))
        return {key: unwrap_secrets(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(item) for item in value]
    # The wire format has only doubles; the API server wants integers for int fields.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
