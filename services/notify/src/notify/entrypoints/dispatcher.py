"""The delivery loop: every subscription with work due gets its own task, which sends its
events in number order, one request at a time; up to ``max_in_flight`` subscriptions are
served at once, so a slow or dead endpoint holds up nobody else.

The loop sleeps until woken — by this process's ingestion committing new notifications, or a
delivery finishing — or until the next scheduled retry or heartbeat, and looks at the database
every ``idle_poll`` seconds for work other processes made (a new subscription's handshake, a
resend)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

from ..adapters.render import Bases, render
from ..adapters.sender import Sender
from ..service_layer.delivery import WINDOW, Deliveries, Job

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Dispatcher:
    def __init__(
        self,
        deliveries: Deliveries,
        sender: Sender,
        bases: Bases,
        *,
        max_in_flight: int,
        idle_poll: float,
        timeout: float,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.deliveries = deliveries
        self.sender = sender
        self.bases = bases
        self.max_in_flight = max_in_flight
        self.idle_poll = idle_poll
        self.timeout = timeout
        self.clock = clock
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = threading.Event()
        self._acks: list[tuple[Job, asyncio.Future[None]]] = []
        self._recorder: asyncio.Task[None] | None = None
        self.sent = 0

    # ---- called from other threads ---------------------------------------------------------

    def wake(self) -> None:
        """New work may be due (thread-safe)."""
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def stop(self) -> None:
        self._stopping.set()
        self.wake()

    # ---- the loop --------------------------------------------------------------------------

    async def run(self, heartbeat: Callable[[], None] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        released = await asyncio.to_thread(self.deliveries.release_mine)
        if released:
            log.info("took back %d subscriptions this worker held before it stopped", released)
        log.info("delivery started")
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                try:
                    await self._claim()
                    sleep = await self._sleep_for()
                except Exception as exc:  # the database may be away for a moment
                    log.warning("delivery loop: %s; retrying", exc)
                    sleep = self.idle_poll
                if heartbeat is not None:
                    heartbeat()
                if sleep > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), sleep)
        finally:
            for task in self.tasks.values():
                task.cancel()
            await asyncio.gather(*self.tasks.values(), return_exceptions=True)
            await self.sender.close()
            log.info("delivery stopped")

    async def _claim(self) -> None:
        free = self.max_in_flight - len(self.tasks)
        if free <= 0:
            return
        jobs = await asyncio.to_thread(self.deliveries.claim, self.clock(), free, set(self.tasks))
        for job in jobs:
            subscription_id = job.subscription.id
            task = asyncio.create_task(self._deliver(job))
            self.tasks[subscription_id] = task
            task.add_done_callback(partial(self._done, subscription_id))

    def _done(self, subscription_id: str, _task: object = None) -> None:
        self.tasks.pop(subscription_id, None)
        if self._wake is not None:
            self._wake.set()  # a slot is free

    async def _sleep_for(self) -> float:
        if len(self.tasks) >= self.max_in_flight:
            return self.idle_poll
        due = await asyncio.to_thread(self.deliveries.next_due)
        if due is None:
            return self.idle_poll
        return max(0.0, min(self.idle_poll, (due - self.clock()).total_seconds()))

    async def _deliver(self, job: Job | None) -> None:
        """Send one subscription's due work in order until none is left or an attempt fails.
        A full window is acknowledged in the transaction that takes the next; the last one
        joins the acknowledgements of other subscriptions, recorded together."""
        subscription_id = job.subscription.id if job is not None else ""
        try:
            while job is not None and not self._stopping.is_set():
                if not await self._attempt(job):
                    return
                if len(job.events) < WINDOW:
                    await self._acknowledge(job)
                    return
                job = await asyncio.to_thread(
                    self.deliveries.next_job, subscription_id, self.clock(), job
                )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "delivering subscription %s failed; its lease will lapse", subscription_id
            )

    async def _acknowledge(self, job: Job) -> None:
        """Queue the job's acknowledgement; one recorder writes those of many subscriptions in
        one transaction (a fan-out of one event to many subscriptions would otherwise cost a
        transaction per subscription)."""
        done = asyncio.get_running_loop().create_future()
        self._acks.append((job, done))
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.create_task(self._record())
        await done

    async def _record(self) -> None:
        while self._acks:
            batch, self._acks = self._acks, []
            try:
                await asyncio.to_thread(
                    self.deliveries.acknowledge, [job for job, _ in batch], self.clock()
                )
            except Exception as exc:
                for _, done in batch:
                    if not done.done():  # (its delivery may have been cancelled: stopping)
                        done.set_exception(exc)
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)

    async def _attempt(self, job: Job) -> bool:
        """Send the job's requests in order; True when all were acknowledged (the caller
        records it), False at the first failure (recorded here with what went through before
        it, and the next try scheduled)."""
        subscription = job.subscription
        timeout = min(self.timeout, float(subscription.timeout_seconds))
        endpoint = subscription.parsed_endpoint
        acknowledged: int | None = None
        for events in job.requests():
            request = render(subscription, job.kind, events, self.bases, self.clock())
            outcome = await self.sender.send(endpoint, request.body, request.headers, timeout)
            numbers = f"{events[0].number}-{events[-1].number}" if events else "-"
            if not outcome.ok:
                gave_up = await asyncio.to_thread(
                    self.deliveries.failed,
                    job,
                    self.clock(),
                    outcome.error or "failed",
                    acknowledged,
                )
                log.info(
                    "subscription %s: %s %s not delivered (%s)%s",
                    subscription.id,
                    job.kind.value,
                    numbers,
                    outcome.error,
                    "; retry period over, status error" if gave_up else "",
                )
                return False
            self.sent += 1
            if events:
                acknowledged = events[-1].number
        return True
