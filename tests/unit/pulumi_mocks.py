"""Pulumi's own mocks, with a monitor that records every RegisterResource request, so a
test sees exactly what the engine would receive: the inputs as serialized (secrets still
wrapped) and the resource options (retainOnDelete, dependencies, secret outputs...)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import pulumi
from google.protobuf import json_format  # type: ignore[import-untyped]  # no stubs pinned
from pulumi.runtime.mocks import MockMonitor

# The wire format that marks a secret value (pulumi/sdk/go/common/resource/sig).
SECRET_SIG_KEY: Final = "4dabf18193072939515e22adb298388d"
SECRET_SIG: Final = "1b47061264138c4ac30d75fd1eb44270"


@dataclass(frozen=True)
class Registration:
    type: str
    name: str
    urn: str
    wire: dict[str, Any]  # the serialized inputs, secrets still wrapped
    protect: bool
    retain_on_delete: bool
    delete_before_replace: bool
    dependencies: tuple[str, ...]
    ignore_changes: tuple[str, ...]
    additional_secret_outputs: tuple[str, ...]
    provider: str

    @property
    def inputs(self) -> dict[str, Any]:
        unwrapped = unwrap_secrets(self.wire)
        assert isinstance(unwrapped, dict)
        return unwrapped


class Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        return f"{args.name}-id", dict(args.inputs)

    def call(
        self, args: pulumi.runtime.MockCallArgs
    ) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        raise AssertionError(f"the program must not invoke functions: {args.token}")


class RecordingMonitor(MockMonitor):
    def __init__(self) -> None:
        super().__init__(Mocks())
        self.registrations: list[Registration] = []

    def RegisterResource(self, request: Any) -> Any:
        if request.type != "pulumi:pulumi:Stack":
            self.registrations.append(
                Registration(
                    type=request.type,
                    name=request.name,
                    urn=self.make_urn(request.parent, request.type, request.name),
                    wire=json_format.MessageToDict(request.object),
                    protect=request.protect,
                    retain_on_delete=request.retainOnDelete,
                    delete_before_replace=request.deleteBeforeReplace,
                    dependencies=tuple(request.dependencies),
                    ignore_changes=tuple(request.ignoreChanges),
                    additional_secret_outputs=tuple(request.additionalSecretOutputs),
                    provider=request.provider,
                )
            )
        return super().RegisterResource(request)  # type: ignore[no-untyped-call]


def unwrap_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get(SECRET_SIG_KEY) == SECRET_SIG:
            return unwrap_secrets(value.get("value"))
        return {key: unwrap_secrets(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(item) for item in value]
    return value


def plain_strings(value: Any) -> list[str]:
    """Every string in `value` that is not inside a secret."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG_KEY) == SECRET_SIG:
            return []
        return [s for key, item in value.items() for s in [key, *plain_strings(item)]]
    if isinstance(value, list):
        return [s for item in value for s in plain_strings(item)]
    return [value] if isinstance(value, str) else []
