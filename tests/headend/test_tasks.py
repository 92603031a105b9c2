"""Supervised background tasks: failures are logged, counted and restarted; stop stops."""

from __future__ import annotations

import asyncio
import logging

import pytest

from headend.tasks import Backoff, Supervisor

FAST = Backoff(first_seconds=0.01, cap_seconds=0.02, jitter=0.0)


async def test_a_failing_task_is_logged_counted_and_restarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs = 0
    done = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise ConnectionError(f"redis went away ({runs})")
        done.set()

    supervisor = Supervisor(backoff=FAST)
    with caplog.at_level(logging.ERROR, logger="headend.tasks"):
        supervisor.spawn("publisher", flaky)
        await asyncio.wait_for(done.wait(), 5)
        await asyncio.sleep(0)
    status = supervisor.status("publisher")
    assert status is not None
    assert (status.restarts, status.state) == (2, "done")
    assert "redis went away (2)" in status.last_error
    assert [r.task for r in caplog.records] == ["publisher", "publisher"]  # type: ignore[attr-defined]
    value = supervisor.metrics.registry.get_sample_value(
        "headend_task_restarts_total", {"task": "publisher"}
    )
    assert value == 2
    await supervisor.close()


async def test_cancel_stops_a_task_in_every_state() -> None:
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    failed = asyncio.Event()

    async def failing() -> None:
        failed.set()
        raise RuntimeError("always")

    supervisor = Supervisor(backoff=Backoff(first_seconds=60, jitter=0.0))
    supervisor.spawn("running", forever)
    supervisor.spawn("backing-off", failing)
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.wait_for(failed.wait(), 5)
    status = supervisor.status("backing-off")
    assert status is not None
    assert status.state == "backing_off"
    await asyncio.wait_for(supervisor.close(), 5)
    assert [s.state for s in supervisor.statuses()] == ["stopped", "stopped"]
    assert supervisor.metrics.registry.get_sample_value("headend_task_up", {"task": "running"}) == 0


async def test_one_name_runs_once() -> None:
    supervisor = Supervisor()
    supervisor.spawn("x", asyncio.Event().wait)
    with pytest.raises(ValueError, match="already running"):
        supervisor.spawn("x", asyncio.Event().wait)
    await supervisor.close()


def test_backoff_grows_to_its_cap() -> None:
    backoff = Backoff(first_seconds=1, factor=2, cap_seconds=5, jitter=0.0)
    assert [backoff.delay(n) for n in (1, 2, 3, 4)] == [1, 2, 4, 5]
