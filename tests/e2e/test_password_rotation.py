"""Password rotation on the real node: a new spec.password and an edited password Secret
are applied to the running server (the old password stops working, the new one works,
the rows stay), a delete and re-create afterwards restores with the new password, and a
rotation the server refuses is rolled back and reported, then applied when retried."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest
from kubernetes import client

from tests.e2e.conftest import RealNode
from tests.e2e.sql_client import connects, count_rows, sql, write_rows
from tests.harness import Harness, condition, harness_in_new_namespace, has_condition

pytestmark = pytest.mark.e2e

NAME: Final = "rotated"
DATABASE: Final = "otus-database"
OLD: Final = "otuspassword"
# Quotes, backslashes, a dollar sign and a newline: each needs care in SQL or a shell.
TRICKY: Final = "n3w 'pass' \\back\\slash $HOME \"q\"\nline two"
SPEC: Final = {"image": "mysql:5.7", "database": DATABASE, "password": OLD, "storage_size": "1Gi"}
RETRY_ANNOTATION: Final = "otus.homework/retry"


@pytest.fixture
def harness(real_node: RealNode, tmp_path: Path) -> Iterator[Harness]:
    namespace = f"e2e-{uuid.uuid4().hex[:8]}"
    with harness_in_new_namespace(real_node.api(), real_node.kubeconfig, namespace, tmp_path) as h:
        h.start()
        yield h


def put_secret(harness: Harness, name: str, value: str, *, consent: bool = False) -> None:
    """A Secret with `value` under `password`; `consent`: MySQL objects may use it."""
    labels = {"otus.homework/mysql-password": "true"} if consent else {}
    body = client.V1Secret(
        metadata=client.V1ObjectMeta(name=name, labels=labels), string_data={"password": value}
    )
    try:
        harness.core.create_namespaced_secret(harness.namespace, body)
    except client.ApiException as error:
        if error.status != 409:
            raise
        harness.core.replace_namespaced_secret(name, harness.namespace, body)


def rotations(obj: dict[str, Any] | None) -> int:
    record = ((obj or {}).get("status") or {}).get("password") or {}
    count = record.get("rotations", 0)
    return count if isinstance(count, int) else 0


def ready_after_rotations(count: int) -> Any:
    def check(obj: dict[str, Any] | None) -> bool:
        return has_condition("Ready", "True")(obj) and rotations(obj) == count

    return check


def said_anywhere(harness: Harness, name: str) -> str:
    """The object's status and Events, and the reconciler's log: where people look."""
    status = json.dumps((harness.get(name) or {}).get("status"))
    events = " ".join(str(event.message) for event in harness.events(name))
    return "\n".join([status, events, *harness.log_lines()])


def test_a_new_spec_password_is_applied_and_survives_delete_and_recreate(
    harness: Harness,
) -> None:
    harness.create(NAME, dict(SPEC))
    harness.wait_ready(NAME, generation=1)
    write_rows(harness, NAME, DATABASE, 50)
    put_secret(harness, "old-password", OLD)
    put_secret(harness, "new-password", TRICKY)

    harness.patch(NAME, {"spec": {"password": TRICKY}})
    rotated = harness.wait_for(NAME, ready_after_rotations(1), "the new password applied")
    assert rotated["status"]["observedGeneration"] == 2
    assert "PasswordRotated" in [str(event.reason) for event in harness.events(NAME)]
    assert not connects(harness, NAME, ("old-password", "password"))
    assert connects(harness, NAME, ("new-password", "password"))
    # Through the operator's Secret, which its Jobs use: it holds the new password too.
    assert count_rows(harness, NAME, DATABASE) == 50
    said = said_anywhere(harness, NAME)
    assert "n3w" not in said
    assert OLD not in said
    leftovers = [
        str(secret.metadata.name)
        for secret in harness.core.list_namespaced_secret(harness.namespace).items
        if "-password-" in str(secret.metadata.name)
    ]
    assert leftovers == []

    # The final backup runs with the new password, and the instance of the same name
    # comes back with every row.
    harness.delete(NAME)
    harness.wait_gone(NAME)
    harness.create(NAME, {**SPEC, "password": TRICKY})
    harness.wait_ready(NAME, generation=1)
    assert count_rows(harness, NAME, DATABASE) == 50
    assert connects(harness, NAME, ("new-password", "password"))
    assert not connects(harness, NAME, ("old-password", "password"))


def test_an_edited_secret_is_applied_and_a_refused_rotation_is_rolled_back(
    harness: Harness,
) -> None:
    put_secret(harness, "root-pw", "first-secret", consent=True)
    spec = {key: value for key, value in SPEC.items() if key != "password"}
    harness.create(NAME, {**spec, "passwordSecretRef": {"name": "root-pw"}})
    harness.wait_ready(NAME, generation=1)
    write_rows(harness, NAME, DATABASE, 20)
    put_secret(harness, "first", "first-secret")
    put_secret(harness, "second", "second-secret")
    put_secret(harness, "helper", "helper-password")

    # Root loses the right to change other accounts (a helper admin takes it away and
    # gives it back): the rotation changes root@'%', is refused for root@localhost, and
    # puts the old password back.
    sql(
        harness,
        NAME,
        DATABASE,
        "CREATE USER 'helper'@'%' IDENTIFIED BY 'helper-password'; "
        "GRANT ALL ON *.* TO 'helper'@'%' WITH GRANT OPTION;",
    )
    revoke = "REVOKE CREATE USER, UPDATE ON *.* FROM 'root'@'%';"
    sql(harness, NAME, DATABASE, revoke, user="helper", password_from=("helper", "password"))
    put_secret(harness, "root-pw", "second-secret", consent=True)
    stalled = harness.wait_for(
        NAME,
        has_condition("Stalled", "True", "PasswordRotationFailed"),
        "the refused rotation reported",
        240,
    )
    message = (condition(stalled, "Stalled") or {})["message"]
    assert message.startswith("spec.passwordSecretRef changed, and Job rotated-password-")
    assert "the old password is back: ERROR 1227" in message
    assert "second-secret" not in said_anywhere(harness, NAME)
    assert connects(harness, NAME, ("first", "password"))
    assert not connects(harness, NAME, ("second", "password"))
    assert count_rows(harness, NAME, DATABASE) == 20

    # Fixed, and asked again: applied.
    grant = "GRANT CREATE USER, UPDATE ON *.* TO 'root'@'%';"
    sql(harness, NAME, DATABASE, grant, user="helper", password_from=("helper", "password"))
    harness.patch(NAME, {"metadata": {"annotations": {RETRY_ANNOTATION: "1"}}})
    harness.wait_for(NAME, ready_after_rotations(1), "the retried rotation applied")
    assert connects(harness, NAME, ("second", "password"))
    assert not connects(harness, NAME, ("first", "password"))
    assert count_rows(harness, NAME, DATABASE) == 20
