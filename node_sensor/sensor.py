"""The per-node sensor: watch the core folder, record finished files durably, hand them to Prefect.

    Sensor(cfg, ...).run(stop, ready)

Set-up (folder, ledger, observer) is separate from the loop; ``ready`` is set
once the watcher runs and the first sweep is done, so tests wait on it instead
of sleeping. Three loops share the ledger: the watchdog observer, the sweep
(every collector.watchInterval, and the stability checks in between), and the
dispatcher that turns pending entries into flow runs, in batches, with backoff.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect.client.schemas.objects import FlowRun

from coredumps.config import Config
from coredumps.corefiles import FileIdentity
from coredumps.errors import BadInputError
from coredumps.inputs import is_utf8, shown
from node_sensor import handover, metrics
from node_sensor.ledger import Entry, Ledger
from node_sensor.watcher import Tracker, start_observer

log = logging.getLogger(__name__)
Correlate = Callable[[Path], dict[str, Any]]
Submitted = Callable[[FlowRun, float], None]
SubmitMany = Callable[[str, list[handover.Item]], list[handover.Outcome]]
STABILITY_CHECK_SECONDS = 0.5
GATHER_QUIET_SECONDS = 0.05
GATHER_MAX_SECONDS = 1.0
"""A new file is handed over once no other has arrived for 0.05 s, or 1 s after the first of a burst: the files of
a burst share one request, made before their flow runs load the server."""


class Sensor:
    def __init__(
        self,
        cfg: Config,
        *,
        config_path: str | None = None,
        correlate: Correlate | None = None,
        on_submitted: Submitted | None = None,
        submit: SubmitMany = handover.submit_many,
    ) -> None:
        self.cfg = cfg
        self.node = cfg.agent.resolved_node_name()
        self.folder = Path(cfg.collector.coredump_path).absolute()
        self.config_path = config_path
        self.correlate = correlate
        self.on_submitted = on_submitted
        self._submit = submit
        self.ledger = Ledger(Path(cfg.agent.data_dir) / "sensor-ledger.db")
        self.tracker = Tracker(self.folder, cfg.collector.stable_for, self._finished)
        self._wake = threading.Event()
        self.watching = False
        self.prefect_reachable = False

    # -- finding files -------------------------------------------------------------------------
    def _known(self, path: Path, st: os.stat_result) -> bool:
        return self.ledger.state(FileIdentity.from_stat(self.node, st).key()) is not None

    def _finished(self, path: Path) -> None:
        try:
            st = path.lstat()
            key = FileIdentity.from_stat(self.node, st).key()
        except (OSError, BadInputError):
            return
        if self.ledger.state(key) is not None:
            return
        if not is_utf8(str(path)):
            # The run's parameters, rows and ledger hold text: a name that is not UTF-8 cannot be handed over.
            self.ledger.add(key, shown(path), "{}", state="bad-name")
            metrics.FILES_SKIPPED.labels("name-not-utf8").inc()
            log.warning("%s: the file name is not valid UTF-8; the file is left where it is, not handed over",
                        shown(path))
            return
        age = time.time() - st.st_mtime
        max_age = self.cfg.collector.max_file_age
        if max_age > 0 and age > max_age:
            self.ledger.add(key, str(path), "{}", state="too-old")
            metrics.FILES_SKIPPED.labels("too-old").inc()
            log.info("%s is older than collector.maxFileAge; not handed over", shown(path))
            return
        params: dict[str, Any] = {"path": str(path), "node": self.node}
        if self.config_path:
            params["config_path"] = self.config_path
        if self.correlate is not None:
            try:
                params.update(self.correlate(path))
            except Exception:  # correlation is best effort; the core is handed over regardless
                metrics.ERRORS.labels("correlation").inc()
                log.warning("could not correlate %s with a pod", shown(path), exc_info=True)
        if self.ledger.add(key, str(path), json.dumps(params)):
            metrics.FILES_SEEN.inc()
            log.info("finished core %s (%d bytes)", shown(path), st.st_size)
            self._wake.set()

    # -- handing over --------------------------------------------------------------------------
    def dispatch_once(self) -> int:
        """Hand over every due ledger entry, oldest first, in batches; returns how many were handed over.

        Once a batch fails as a whole (Prefect is unreachable), the later ones wait for the backoff.
        """
        handed = 0
        due = self.ledger.due()
        for start in range(0, len(due), handover.BATCH_LIMIT):
            batch = due[start:start + handover.BATCH_LIMIT]
            created = self._dispatch(batch)
            if created is None:
                break
            handed += created
        counts = self.ledger.counts()
        for state in ("pending", "submitted"):
            metrics.QUEUE_DEPTH.labels(state).set(counts.get(state, 0))
        return handed

    def _dispatch(self, batch: list[Entry]) -> int | None:
        """Hand over one batch; how many runs were created, or None when the whole batch failed."""
        try:
            outcomes = self._submit(self.node, [(entry.key, json.loads(entry.params)) for entry in batch])
        except Exception as exc:
            reason = handover.describe(exc)
            self.prefect_reachable = False
            for entry in batch:
                delay = self._retry_later(entry, reason)
            log.warning("could not hand %d file(s) to Prefect (%s); retrying in %.0fs", len(batch), reason, delay)
            return None
        self.prefect_reachable = True
        created = 0
        for entry, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, Exception):
                reason = handover.describe(outcome)
                delay = self._retry_later(entry, reason)
                log.warning("could not hand %s to Prefect (%s); retrying in %.0fs", shown(entry.path), reason, delay)
                continue
            created += 1
            self.ledger.submitted(entry.key, str(outcome.id))
            metrics.HANDED_OVER.inc()
            log.info("handed %s over as flow run %s", shown(entry.path), outcome.id)
            if self.on_submitted is not None:
                self.on_submitted(outcome, entry.detected_at)
        return created

    def _retry_later(self, entry: Entry, reason: str) -> float:
        metrics.ERRORS.labels("handover").inc()
        return self.ledger.retry_later(entry.key, reason)

    # -- the loop ------------------------------------------------------------------------------
    def run(self, stop: threading.Event, ready: threading.Event | None = None) -> None:
        """Watch until ``stop`` is set; ``ready`` is set once watching and the first sweep are done."""
        self.folder.mkdir(parents=True, exist_ok=True)
        observer = start_observer(self.tracker)
        self.watching = True
        dispatcher = threading.Thread(target=self._dispatch_loop, args=(stop,), name="dispatcher", daemon=True)
        try:
            self.tracker.sweep(self._known)
            dispatcher.start()
            if ready is not None:
                ready.set()
            next_sweep = time.monotonic() + self.cfg.collector.watch_interval
            while not stop.wait(STABILITY_CHECK_SECONDS):
                self.tracker.check_stable()
                if time.monotonic() >= next_sweep:
                    self.tracker.sweep(self._known)
                    next_sweep = time.monotonic() + self.cfg.collector.watch_interval
        finally:
            self.watching = False
            observer.stop()
            observer.join(timeout=5)
            self._wake.set()
            if dispatcher.is_alive():
                dispatcher.join(timeout=10)

    def _dispatch_loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.dispatch_once()
            except Exception:
                metrics.ERRORS.labels("dispatcher").inc()
                log.exception("dispatcher error")
            if self._wake.wait(1.0):
                self._gather(stop)

    def _gather(self, stop: threading.Event) -> None:
        """Wait while new files keep arriving (a burst), so that they are handed over together."""
        until = time.monotonic() + GATHER_MAX_SECONDS
        self._wake.clear()
        while self._wake.wait(GATHER_QUIET_SECONDS) and time.monotonic() < until and not stop.is_set():
            self._wake.clear()
