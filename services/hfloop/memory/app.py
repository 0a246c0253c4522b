"""`hfloop worker --role memory`: the memory worker as a process, until SIGINT/SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading

from hfloop.config import Settings
from hfloop.events.errors import KafkaAuthenticationError


def run_worker(settings: Settings) -> None:
    from hfloop.memory.service import MemoryService

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    log = logging.getLogger(__name__)
    service = MemoryService(settings)
    try:
        service.start()  # creates the topics: refused credentials end here, within a second
    except KafkaAuthenticationError as exc:
        log.error("memory worker not started: %s", exc)
        service.stop()
        sys.exit(os.EX_CONFIG)  # a configuration error: restarting will not help
    log.info("memory worker consuming (group %s)", settings.memory_group_id)
    reported: BaseException | None = None
    try:
        while not stop.wait(1.0):
            if service.fatal is not None:
                sys.exit(os.EX_CONFIG)  # the loop logged why
            if service.error is not None and service.error is not reported:
                reported = service.error
                log.warning("last batch error: %s", service.error)
    finally:
        service.stop()
