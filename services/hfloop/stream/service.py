"""Running the stream app: as a blocking worker process, or in a thread of another process.

``run_worker`` is what ``hfloop worker --role stream`` calls (SIGINT/SIGTERM stop it
cleanly; a crash exits non-zero so a supervisor restarts it). ``StreamService`` runs the
same faust worker in its own thread and event loop for ``hfloop dev`` and the tests:
mode's worker installs signal handlers with ``loop.add_signal_handler``, which only works
on the main thread, so the threaded worker leaves signals to the host process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
import time
from typing import Any

import faust

from hfloop.config import Settings
from hfloop.events.errors import KafkaAuthenticationError
from hfloop.events.serde import Serde
from hfloop.stream.app import Stats, StreamApp, TopicNames

log = logging.getLogger(__name__)


class _ThreadWorker(faust.Worker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spinner = None  # the host process owns the terminal (and pytest may close its stdout)

    def install_signal_handlers(self) -> None:  # only the main thread may own signal handlers
        pass

    def _setproctitle(self, info: str, *, ident: str = "") -> None:  # the host process keeps its title
        pass


def _prepare(settings: Settings, names: TopicNames | None) -> None:
    from hfloop.events.kafka import create_topics

    if names is None or names == TopicNames():
        create_topics(settings)  # the contract topics, idempotent; faust creates its own internal topics


def run_worker(settings: Settings, names: TopicNames | None = None) -> None:
    """Run the stream processors until SIGINT/SIGTERM (blocking)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        _prepare(settings, names)
    except KafkaAuthenticationError as exc:
        log.error("%s", exc)
        sys.exit(os.EX_CONFIG)  # a configuration error: restarting will not help
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    stream = StreamApp(settings, names)

    async def exit_stuck(why: str) -> None:
        # A stuck faust worker may not stop cleanly either: leave at once, nothing is committed
        # while it rebalances or recovers, and the supervisor starts a fresh one.
        log.critical("stream worker stuck: %s; exiting for the supervisor to restart it", why)
        logging.shutdown()
        os._exit(os.EX_SOFTWARE)

    stream.on_stuck = exit_stuck
    worker = faust.Worker(
        stream.app, loop=loop, loglevel="INFO", override_logging=False, redirect_stdouts=False
    )
    worker.execute_from_commandline()  # raises SystemExit; re-raises a crash


class StreamService:
    """The stream processors in a background thread with their own event loop."""

    def __init__(
        self, settings: Settings, names: TopicNames | None = None, serde: Serde | None = None
    ) -> None:
        self.settings = settings
        self.names = names
        self.serde = serde
        self.error: BaseException | None = None
        self.stream: StreamApp | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: _ThreadWorker | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None

    @property
    def stats(self) -> Stats:
        return self.stream.stats if self.stream else Stats()

    def start(self, timeout: float = 60.0) -> StreamService:
        _prepare(self.settings, self.names)
        self._thread = threading.Thread(target=self._run, name="hfloop-stream", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError(f"stream worker did not start within {timeout:.0f}s")
        if self.error is not None:
            raise RuntimeError(f"stream worker failed to start: {self.error!r}") from self.error
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until partitions are assigned and table recovery has finished."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            app = self.stream.app if self.stream else None
            if self.error is not None:
                raise RuntimeError(f"stream worker failed: {self.error!r}") from self.error
            if (app is not None and not app.rebalancing and app.tables.recovery.completed.is_set()  # type: ignore[attr-defined]
                    and app.consumer.assignment()):  # fmt: skip
                return
            time.sleep(0.1)
        raise TimeoutError(f"stream worker not ready within {timeout:.0f}s")

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            self.stream = StreamApp(self.settings, self.names, self.serde)
            self._worker = worker = _ThreadWorker(self.stream.app, loop=loop, quiet=True, daemon=False,
                                                  override_logging=False, redirect_stdouts=False)  # fmt: skip
            self._stop = asyncio.Event()
            loop.run_until_complete(worker.start())
            self._started.set()
            loop.run_until_complete(self._until_stopped(worker))
        except BaseException as exc:
            self.error = exc
            log.exception("stream worker failed")
        finally:
            self._started.set()
            with contextlib.suppress(Exception):
                if self._worker is not None and not self._worker._stopped.is_set():
                    loop.run_until_complete(self._worker.stop())
            _cancel_all(loop)
            loop.close()

    async def _until_stopped(self, worker: Any) -> None:
        assert self._stop is not None
        stopped = asyncio.ensure_future(worker.wait_until_stopped())
        requested = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({stopped, requested}, return_when=asyncio.FIRST_COMPLETED)
        for f in (stopped, requested):
            f.cancel()
        if worker.crash_reason is not None:
            self.error = worker.crash_reason
        await worker.stop()

    def stop(self, timeout: float = 30.0) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("stream worker thread still running after %.0fs", timeout)
        self._thread = None

    def __enter__(self) -> StreamService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for t in tasks:
        t.cancel()
    if tasks:
        with contextlib.suppress(Exception):
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
