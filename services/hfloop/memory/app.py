"""`hfloop worker --role memory`: the memory worker as a process, until SIGINT/SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading

from hfloop.config import Settings


def run_worker(settings: Settings) -> None:
    from hfloop.memory.service import MemoryService

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    service = MemoryService(settings)
    service.start()
    logging.getLogger(__name__).info("memory worker consuming (group %s)", settings.memory_group_id)
    try:
        while not stop.wait(5.0):
            if service.error is not None:
                logging.getLogger(__name__).warning("last batch error: %s", service.error)
    finally:
        service.stop()
