"""Jobs: the transcode queue, running jobs with their progress, the dead letters with
why each died; retry (a dead letter) and cancel (a queued or running job)."""

from __future__ import annotations

import asyncio
from typing import Any

from console.view import Data, View, last_segment, when
from protos import transcode_pb2

_STATES = {
    transcode_pb2.JOB_STATE_QUEUED: "queued",
    transcode_pb2.JOB_STATE_RUNNING: "running",
    transcode_pb2.JOB_STATE_SUCCEEDED: "succeeded",
    transcode_pb2.JOB_STATE_FAILED: "failed",
    transcode_pb2.JOB_STATE_CANCELLED: "cancelled",
}
# Listed per state at most (the queue page is a glance, not an archive).
SHOWN = 200


def _job(job: transcode_pb2.Job) -> dict[str, Any]:
    return {
        "id": last_segment(job.name),
        "asset": job.asset,
        "profile": job.profile,
        "state": _STATES.get(job.state, "unknown"),
        "percent": round(job.progress.percent, 1),
        "phase": job.progress.phase,
        "eta_seconds": round(job.progress.eta_seconds),
        "worker": job.worker,
        "reason": job.reason,
        "deliveries": job.deliveries,
        "updated": when(job.update_time),
    }


async def _state(view: View, state: int) -> list[dict[str, Any]]:
    answer = await view.call(
        view.services.transcode.ListJobs,
        transcode_pb2.ListJobsRequest(state=state, page_size=SHOWN),  # type: ignore[arg-type]
    )
    return [_job(job) for job in answer.jobs]


async def load_jobs(view: View) -> Data:
    """Queued and running jobs, and the dead letters."""
    queued, running, dead = await asyncio.gather(
        _state(view, transcode_pb2.JOB_STATE_QUEUED),
        _state(view, transcode_pb2.JOB_STATE_RUNNING),
        view.optional(
            "dead_letters",
            view.services.transcode.ListDeadLetters,
            transcode_pb2.ListDeadLettersRequest(page_size=SHOWN),
        ),
    )
    letters = [
        {**_job(d.job), "reason": d.reason, "deliveries": d.deliveries, "dead": when(d.dead_time)}
        for d in (dead.dead_letters if dead is not None else ())
    ]
    total = dead.total_size if dead is not None else 0
    return {"queued": queued, "running": running, "dead_letters": letters, "dead_total": total}


async def retry(view: View) -> Data:
    """Put a dead letter back on the queue."""
    job = await view.call(
        view.services.transcode.RetryJob,
        transcode_pb2.RetryJobRequest(name=f"jobs/{view.match['job']}"),
    )
    return {"job": _job(job)}


async def cancel(view: View) -> Data:
    """Cancel a queued or running job."""
    job = await view.call(
        view.services.transcode.CancelJob,
        transcode_pb2.CancelJobRequest(name=f"jobs/{view.match['job']}"),
    )
    return {"job": _job(job)}
