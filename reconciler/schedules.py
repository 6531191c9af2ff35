"""spec.backup.schedule (pure): when a fire of the cron schedule makes a MySQLBackup.

- Each fire time is acted on once: the status keeps the last one (`lastScheduleTime`),
  and the MySQLBackup it makes is named after the fire time, so a reconciler killed
  between the create and the status write creates nothing twice.
- No backfill: when the schedule is first seen, counting starts then; after the operator
  was down, only the latest missed fire makes a backup.
- A fire while an earlier scheduled backup has not finished (still Pending because the
  instance is not Ready, or Running) is skipped with an Event rather than piled up. A
  failed one does not stop the schedule: the next fire makes a new backup.
- The backups themselves run as requested backups do (requested_backups.py): only once
  the instance is Ready.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from cronsim import CronSim

from reconciler.actions import Action, Notice, ScheduleBackup
from reconciler.backup_objects import Trigger, scheduled_backup_object
from reconciler.conditions import timestamp
from reconciler.observation import Observation
from reconciler.spec import Instance

# Never sleep longer than this before looking at the schedule again.
MAX_WAKE_S: Final = 3600.0


def latest_fire(schedule: str, zone: str, now: datetime) -> datetime:
    """The latest fire time at or before `now`."""
    local = now.astimezone(ZoneInfo(zone)).replace(microsecond=0) + timedelta(seconds=1)
    return next(CronSim(schedule, local, reverse=True))


def next_fire(schedule: str, zone: str, now: datetime) -> datetime:
    """The first fire time after `now`."""
    return next(CronSim(schedule, now.astimezone(ZoneInfo(zone))))


def wake_in_s(instance: Instance, now: datetime) -> float | None:
    """How long until the schedule next needs a look; None without a schedule."""
    backup = instance.spec.backup
    if backup.schedule is None:
        return None
    seconds = (next_fire(backup.schedule, backup.time_zone, now) - now).total_seconds()
    return min(MAX_WAKE_S, max(1.0, seconds + 1.0))


def schedule_step(observation: Observation, instance: Instance) -> Action | None:
    backup = instance.spec.backup
    if backup.schedule is None:
        return None
    now = observation.now
    last_text = observation.parsed_object.status.last_schedule_time
    if last_text is None:
        return ScheduleBackup(timestamp(now), None)
    due = latest_fire(backup.schedule, backup.time_zone, now)
    if due <= _parse(last_text):
        return None
    fired = timestamp(due)
    unfinished = [
        request
        for request in observation.live.requested_backups
        if request.trigger is Trigger.SCHEDULE and not request.finished
    ]
    if unfinished:
        return ScheduleBackup(
            fired,
            None,
            Notice(
                "BackupSkipped",
                f"schedule {backup.schedule!r} fired at {fired}; skipped, since the scheduled "
                f"backup {unfinished[0].name} has not finished",
                warning=True,
            ),
        )
    record = scheduled_backup_object(
        namespace=instance.namespace, instance=instance.name, uid=instance.uid, fire_time=due
    )
    return ScheduleBackup(
        fired,
        record,
        Notice("BackupScheduled", f"MySQLBackup {record.name}: schedule fired at {fired}"),
    )


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
