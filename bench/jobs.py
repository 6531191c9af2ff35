"""Jobs on the bench's cluster: when one ran (`job_times`, pure) and running one to its end.

Times come from the API server: the Job's startTime and completionTime, and its pod's
container start and finish (all with 1 s resolution). The container's span is the script
itself; the Job's adds the pod's scheduling, sandbox and image start.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Final

from kubernetes import client
from kubernetes.client.exceptions import ApiException

POLL_S: Final = 1.0


def _epoch(value: Any) -> float | None:
    return None if value is None else float(value.timestamp())


def _span(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else round(end - start, 3)


@dataclass(frozen=True)
class JobTimes:
    name: str
    started: float | None  # the Job's status.startTime, epoch seconds
    completed: float | None  # status.completionTime: only a successful Job has one
    succeeded: int
    failed: int  # failed pods (retries)
    container_started: float | None
    container_finished: float | None
    exit_code: int | None

    @property
    def job_s(self) -> float | None:
        return _span(self.started, self.completed)

    @property
    def container_s(self) -> float | None:
        return _span(self.container_started, self.container_finished)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "job_s": self.job_s, "container_s": self.container_s}


def job_times(job: client.V1Job, pods: list[client.V1Pod]) -> JobTimes:
    """The Job's times, and the container times of its newest pod that terminated."""
    status = job.status or client.V1JobStatus()
    terminated = None
    newest = sorted(
        pods,
        key=lambda pod: _epoch(pod.metadata and pod.metadata.creation_timestamp) or 0.0,
        reverse=True,
    )
    for pod in newest:
        for container in (pod.status and pod.status.container_statuses) or []:
            if container.state is not None and container.state.terminated is not None:
                terminated = container.state.terminated
                break
        if terminated is not None:
            break
    return JobTimes(
        name=str(job.metadata and job.metadata.name),
        started=_epoch(status.start_time),
        completed=_epoch(status.completion_time),
        succeeded=status.succeeded or 0,
        failed=status.failed or 0,
        container_started=_epoch(terminated and terminated.started_at),
        container_finished=_epoch(terminated and terminated.finished_at),
        exit_code=None if terminated is None else terminated.exit_code,
    )


class Jobs:
    def __init__(self, api_client: client.ApiClient, namespace: str) -> None:
        self.namespace = namespace
        self.batch = client.BatchV1Api(api_client)
        self.core = client.CoreV1Api(api_client)

    def pods(self, name: str) -> list[client.V1Pod]:
        listed = self.core.list_namespaced_pod(self.namespace, label_selector=f"job-name={name}")
        return list(listed.items)

    def times(self, name: str) -> JobTimes | None:
        """None once the Job is gone."""
        try:
            job = self.batch.read_namespaced_job(name, self.namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return job_times(job, self.pods(name))

    def log(self, name: str) -> str:
        """The log of the Job's newest pod ('' if it has none)."""
        pods = sorted(
            self.pods(name),
            key=lambda pod: _epoch(pod.metadata and pod.metadata.creation_timestamp) or 0.0,
        )
        if not pods or pods[-1].metadata is None:
            return ""
        text: str = self.core.read_namespaced_pod_log(str(pods[-1].metadata.name), self.namespace)
        return text

    def run(self, manifest: client.V1Job, timeout_s: float) -> tuple[JobTimes, str]:
        """Creates the Job and waits until it succeeded (its times and log) or failed
        (RuntimeError with the log's tail)."""
        assert manifest.metadata is not None
        name = str(manifest.metadata.name)
        self.batch.create_namespaced_job(self.namespace, manifest)
        deadline = time.monotonic() + timeout_s
        while True:
            times = self.times(name)
            if times is not None and times.completed is not None and times.succeeded:
                return times, self.log(name)
            if times is not None and times.failed:
                raise RuntimeError(f"Job {name} failed: {self.log(name)[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"Job {name} not complete after {timeout_s:.0f}s")
            time.sleep(POLL_S)
