"""Gathers what one reconcile pass looks at, through the two effect modules, into an
`Observation` for the pure decisions."""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from reconciler import live as parse
from reconciler.backup_objects import (
    backup_object_state,
    newest_in_bucket,
    requested_backup,
    source_backup,
)
from reconciler.driver import Driver
from reconciler.kube import Gateway
from reconciler.names import (
    backup_claim_name,
    data_claim_name,
    instance_selector,
    label_selector,
    names_for,
    server_selector,
    volume_selector,
)
from reconciler.observation import Live, Observation, Passwords, parse_object
from reconciler.passwords import needs_applied, wanted_password
from reconciler.reconcile import GatherPlan, gather_plan, identity
from reconciler.spec import Instance
from reconciler.status import JobPhase, PasswordRecord, ToolchainVersions
from reconciler.storage import classes_to_read, resizing_claim
from reconciler.vocabulary import (
    LABEL_PASSWORD_SECRET,
    PASSWORD_KEY,
    ROTATION_NEW_KEY,
    VolumeRole,
)


def observe(
    obj: Mapping[str, Any],
    gateway: Gateway,
    driver: Driver,
    *,
    toolchain: ToolchainVersions,
    fingerprint_key: bytes,
    host_path_root: str | None,
    now: datetime,
    requested_backups: tuple[str, ...] = (),
    transfer_image: str | None = None,
) -> Observation:
    """Everything one pass reads about `obj`, parsed once. `requested_backups`: the names
    of its unfinished requested and scheduled MySQLBackups (the watch keeps them)."""
    namespace, name, _uid = identity(obj)
    parsed = parse_object(obj)
    plan = gather_plan(obj, parsed)
    live = live_objects(gateway, namespace, name, plan)
    if requested_backups:
        live = _with_requested_backups(gateway, namespace, live, requested_backups)
    stack = driver.stack_state(namespace, name, definite=plan.deleting)
    secret = None
    if plan.secret is not None:
        raw = gateway.secret_metadata(namespace, plan.secret)
        secret = parse.secret_state(raw) if raw is not None else None
    passwords = (
        _passwords(gateway, parsed.instance, parsed.status.password, secret, fingerprint_key)
        if parsed.instance is not None
        else Passwords()
    )
    s3_secret = None
    # Read when a Job may need it: a backup asked for, a restore from the bucket, the
    # final backup.
    from_bucket = plan.restore_from is not None or live.newest_backup is not None
    if plan.s3_secret is not None and (requested_backups or from_bucket or plan.deleting):
        raw = gateway.secret_metadata(namespace, plan.s3_secret)
        s3_secret = parse.secret_state(raw) if raw is not None else None
    observation = Observation(
        obj=obj,
        toolchain=toolchain,
        fingerprint_key=fingerprint_key,
        now=now,
        stack=stack,
        live=live,
        namespace_terminating=(plan.deleting or _claims_going(live))
        and gateway.namespace_terminating(namespace),
        password_secret=secret,
        passwords=passwords,
        host_path_root=host_path_root,
        transfer_image=transfer_image,
        s3_secret=s3_secret,
        parsed=parsed,
    )
    instance = parsed.instance
    classes = classes_to_read(observation, instance) if instance is not None else ()
    if not classes or plan.deleting:
        return observation
    expansion = tuple((name, gateway.volume_expansion(name)) for name in classes)
    return replace(observation, live=replace(live, volume_expansion=expansion))


def _passwords(
    gateway: Gateway,
    instance: Instance,
    record: PasswordRecord | None,
    secret: parse.SecretState | None,
    key: bytes,
) -> Passwords:
    """The password values a pass needs: what the spec asks for always; the one the
    operator's Secret holds only while that differs; a rotation's new one once it
    succeeded. The user's Secret is read only when its owner allowed it (the label)."""
    namespace, spec = instance.namespace, instance.spec
    wanted, unreadable = None, None
    ref = spec.password_secret_ref
    if (
        ref is not None
        and secret is not None
        and secret.labels.get(LABEL_PASSWORD_SECRET) == "true"
    ):
        try:
            wanted = gateway.secret_value(namespace, ref.name, ref.key)
        except (UnicodeDecodeError, binascii.Error):
            unreadable = "is not UTF-8 text"
    applied = None
    if needs_applied(record, wanted_password(instance, Passwords(wanted=wanted)), key):
        try:
            applied = gateway.secret_value(
                namespace, names_for(instance).credentials_secret, PASSWORD_KEY
            )
        except (UnicodeDecodeError, binascii.Error):
            applied = None
    rotated = None
    rotation = record.rotation if record is not None else None
    if rotation is not None and rotation.phase is JobPhase.SUCCEEDED:
        try:
            rotated = gateway.secret_value(namespace, rotation.job, ROTATION_NEW_KEY)
        except (UnicodeDecodeError, binascii.Error):
            rotated = None
    return Passwords(wanted=wanted, applied=applied, rotated=rotated, unreadable=unreadable)


def live_objects(gateway: Gateway, namespace: str, name: str, plan: GatherPlan | None) -> Live:
    """The instance's objects; without a plan (the MySQL object is gone) only its claims
    and their volumes."""
    raw_data = gateway.get_claim(namespace, data_claim_name(name))
    raw_backup = gateway.get_claim(namespace, backup_claim_name(name))
    data_claim = parse.claim_state(raw_data) if raw_data is not None else None
    backup_claim = parse.claim_state(raw_backup) if raw_backup is not None else None
    live = Live(
        data_claim=data_claim,
        backup_claim=backup_claim,
        data_volume=_volume(gateway, data_claim),
        backup_volume=_volume(gateway, backup_claim),
    )
    if plan is None:
        return live
    if plan.adoption_candidates:
        live = replace(
            live,
            retained_data=_volumes(gateway, namespace, name, VolumeRole.DATA),
            retained_backup=_volumes(gateway, namespace, name, VolumeRole.BACKUP),
        )
    pods = gateway.list_pods(namespace, label_selector(server_selector(name)))
    server = max(
        pods, key=lambda pod: str(pod["metadata"].get("creationTimestamp", "")), default=None
    )
    job = None
    if plan.job is not None:
        raw_job = gateway.get_job(namespace, plan.job)
        if raw_job is not None:
            job_pods = gateway.list_pods(namespace, f"job-name={plan.job}")
            job = parse.job_state(raw_job, job_pods)
    rotation_job = None
    if plan.rotation_job is not None:
        raw_rotation = gateway.get_job(namespace, plan.rotation_job)
        if raw_rotation is not None:
            rotation_pods = gateway.list_pods(namespace, f"job-name={plan.rotation_job}")
            rotation_job = parse.job_state(raw_rotation, rotation_pods)
    claim_event = None
    if data_claim is not None and not data_claim.bound:
        claim_event = parse.newest_event_message(
            gateway.events_for(namespace, "PersistentVolumeClaim", data_claim.name)
        )
    resize_event = None
    resizing = next((claim for claim in (data_claim, backup_claim) if resizing_claim(claim)), None)
    if resizing is not None:
        said = parse.newest_event_message(
            gateway.events_for(namespace, "PersistentVolumeClaim", resizing.name)
        )
        resize_event = (resizing.name, said) if said else None
    workload_objects = tuple(
        ((kind, object_name), found)
        for kind, object_name in plan.drift_objects
        if (found := gateway.get_workload_object(namespace, kind, object_name)) is not None
    )
    server_pod = parse.pod_state(server) if server is not None else None
    routes = True
    if not plan.deleting and server_pod is not None and server_pod.ready:
        routes = gateway.service_routes(namespace, name)
    workload = gateway.workload(namespace, instance_selector(name)) if plan.deleting else ()
    backup_object = None
    if plan.backup_object is not None:
        raw_backup_object = gateway.get_backup_object(namespace, plan.backup_object)
        if raw_backup_object is not None:
            backup_object = backup_object_state(raw_backup_object)
    restore_from, restore_from_claim = None, None
    if plan.restore_from is not None:
        raw_source = gateway.get_backup_object(namespace, plan.restore_from)
        restore_from = source_backup(raw_source) if raw_source is not None else None
        located = restore_from.claim_and_dump if restore_from is not None else None
        if located is not None:
            raw_claim = gateway.get_claim(namespace, located[0])
            restore_from_claim = parse.claim_state(raw_claim) if raw_claim is not None else None
    newest_backup = None
    if plan.newest_in_bucket is not None:
        newest_backup = newest_in_bucket(
            gateway.list_backup_objects(namespace, ""), name, plan.newest_in_bucket
        )
    return replace(
        live,
        newest_backup=newest_backup,
        resize_event=resize_event,
        restore_from=restore_from,
        restore_from_claim=restore_from_claim,
        deployment_present=any(kind == "Deployment" for (kind, _), _obj in workload_objects)
        if plan.drift_objects
        else gateway.deployment_exists(namespace, name),
        workload_objects=workload_objects,
        server_pod=server_pod,
        service_routes=routes,
        job=job,
        claim_event=claim_event,
        workload_present=any(not deleting and kind != "Job" for kind, _name, deleting in workload),
        going=tuple(f"{kind}/{name}" for kind, name, deleting in workload if deleting),
        backup_object=backup_object,
        rotation_job=rotation_job,
    )


def _with_requested_backups(
    gateway: Gateway, namespace: str, live: Live, names: tuple[str, ...]
) -> Live:
    found = []
    for backup_name in names:
        raw = gateway.get_backup_object(namespace, backup_name)
        if raw is not None:
            found.append(requested_backup(raw))
    started = next((request for request in found if request.started), None)
    job = None
    if started is not None and started.job is not None:
        raw_job = gateway.get_job(namespace, started.job)
        if raw_job is not None:
            job = parse.job_state(raw_job, gateway.list_pods(namespace, f"job-name={started.job}"))
    return replace(live, requested_backups=tuple(found), requested_backup_job=job)


def _volume(gateway: Gateway, claim: parse.ClaimState | None) -> parse.VolumeState | None:
    if claim is None or claim.volume is None:
        return None
    raw = gateway.get_volume(claim.volume)
    return parse.volume_state(raw) if raw is not None else None


def _volumes(
    gateway: Gateway, namespace: str, name: str, role: VolumeRole
) -> tuple[parse.VolumeState, ...]:
    found = gateway.list_volumes(volume_selector(namespace, name, role))
    return tuple(parse.volume_state(raw) for raw in found)


def _claims_going(live: Live) -> bool:
    return any(
        claim is not None and claim.deleting for claim in (live.data_claim, live.backup_claim)
    )
