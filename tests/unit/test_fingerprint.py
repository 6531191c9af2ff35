"""The inputs fingerprint: stable for equal inputs, changed by anything the program would
declare differently, and keyed so that status (readable by anyone who can read the
object) says nothing about the password."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from reconciler.desired import ClaimBinding, Desired
from reconciler.fingerprint import fingerprint_key, inputs_fingerprint
from reconciler.spec import BackupSpec, DeletionPolicy, Instance, MySQLSpec, SecretKeyRef
from reconciler.vocabulary import Stage
from tests.unit.builders import FINGERPRINT_KEY, PASSWORD, desired

pytestmark = pytest.mark.unit


def of(value: Desired, key: bytes = FINGERPRINT_KEY) -> str:
    return inputs_fingerprint(value, key)


def test_equal_inputs_give_equal_fingerprints() -> None:
    assert of(desired()) == of(desired())


def test_the_fingerprint_is_a_sha256() -> None:
    found = of(desired())
    assert found.startswith("sha256:")
    assert len(found) == len("sha256:") + 64
    int(found.removeprefix("sha256:"), 16)


def test_the_stage_changes_it() -> None:
    assert len({of(desired(stage)) for stage in Stage}) == len(Stage)


def test_the_attempts_change_it() -> None:
    first = of(desired(Stage.RESTORING))
    assert of(desired(Stage.RESTORING, restore_attempt=2)) != first
    assert of(desired(Stage.RESTORING, backup_attempt=2)) != first


def test_a_data_binding_changes_it() -> None:
    adopted = ClaimBinding("pv-old", "local", "2Gi")
    assert of(desired(data_binding=adopted)) != of(desired())
    assert of(desired(data_binding=replace(adopted, size="3Gi"))) != of(
        desired(data_binding=adopted)
    )


def test_a_backup_binding_changes_it() -> None:
    adopted = ClaimBinding("pv-old-dumps", "local", "2Gi")
    assert of(desired(backup_binding=adopted)) != of(desired())
    assert of(desired(backup_binding=adopted)) != of(desired(data_binding=adopted))


def test_the_readiness_gate_changes_it() -> None:
    gated = replace(desired(), readiness_gated=True)
    assert inputs_fingerprint(gated, FINGERPRINT_KEY) != inputs_fingerprint(
        desired(), FINGERPRINT_KEY
    )


def test_the_end_of_the_restore_does_not() -> None:
    # It only freezes the finished Job's spec: nothing to apply, so no `up`.
    gated = replace(desired(), readiness_gated=True)
    finished = replace(gated, restore_finished=True)
    assert inputs_fingerprint(finished, FINGERPRINT_KEY) == inputs_fingerprint(
        gated, FINGERPRINT_KEY
    )


def test_a_spec_change_changes_it() -> None:
    assert of(desired(image="mysql:8.0")) != of(desired())
    assert of(desired(backup={"keep": 9})) != of(desired())
    assert of(desired(backup={"scope": "all"})) != of(desired())


def test_a_new_lifetime_changes_it() -> None:
    assert of(desired(uid="77777777-aaaa-bbbb-cccc-dddddddddddd")) != of(desired())


def test_a_default_cannot_hide_a_change() -> None:
    spec = MySQLSpec(
        image="mysql:5.7",
        database="db",
        storage_size="1Gi",
        backup=BackupSpec(storage_size="1Gi"),
        password_secret_ref=SecretKeyRef(name="s"),
    )
    base = Desired(Instance(name="a", namespace="n", uid="u", spec=spec), Stage.SERVING)
    retained = replace(
        base,
        instance=replace(base.instance, spec=replace(spec, deletion_policy=DeletionPolicy.RETAIN)),
    )
    assert of(base) != of(retained)


def test_the_password_changes_it() -> None:
    assert of(desired(password="another-password")) != of(desired())


def test_the_password_enters_only_through_the_key() -> None:
    # Same password, different key: someone without the key cannot test guesses.
    other_key = fingerprint_key("another-passphrase")
    assert of(desired(), other_key) != of(desired())


def test_without_a_password_the_key_does_not_matter() -> None:
    by_ref = desired(password=None, passwordSecretRef={"name": "root-pw"})
    assert of(by_ref, fingerprint_key("another-passphrase")) == of(by_ref)


def test_the_fingerprint_is_a_digest_and_carries_no_input() -> None:
    # A fixed-size digest whatever the inputs: nothing of the spec, the password
    # included, can be carried in it, however long.
    for password in (PASSWORD, "p" * 1000):
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", of(desired(password=password)))


def test_the_key_is_derived_from_the_passphrase() -> None:
    assert fingerprint_key("p") == fingerprint_key("p")
    assert fingerprint_key("p") != fingerprint_key("q")
    assert len(fingerprint_key("p")) == 32
