"""A client that keeps calling the API's /readyz through the VIP while a test or the failover benchmark takes the
VIP holder away, and what it saw: how many calls, how many failed, and the longest time without an answer."""

from __future__ import annotations

import http.client
import ssl
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Outage:
    calls: int
    failed: int
    longest_gap: float  # seconds between the last answer before a failed call and the first answer after it
    answered_after: bool  # the API answered again after its last failed call
    errors: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"{self.calls} calls, {self.failed} failed, longest time without an answer {self.longest_gap:.1f} s"
                f"{'' if self.answered_after else ', no answer at the end'}")


class Prober(threading.Thread):
    """GET https://host:port/readyz every `interval` seconds with a `timeout`, until stopped or `limit` seconds
    have passed (it stops by itself)."""

    def __init__(self, host: str, port: int, interval: float = 0.2, timeout: float = 1.0, limit: float = 120.0) -> None:
        super().__init__(daemon=True)
        self.host, self.port, self.interval, self.timeout, self.limit = host, port, interval, timeout, limit
        self.ctx = ssl.create_default_context()
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE  # a probe of reachability, not a client of the API
        self.results: list[tuple[float, bool, str]] = []
        self.done = threading.Event()
        self.lock = threading.Lock()

    def call(self) -> tuple[bool, str]:
        conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=self.ctx)
        try:
            conn.request("GET", "/readyz")
            resp = conn.getresponse()
            body = resp.read()
            return resp.status == 200 and body.strip() == b"ok", f"HTTP {resp.status}"
        except (OSError, http.client.HTTPException) as exc:
            return False, f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()

    def run(self) -> None:
        end = time.monotonic() + self.limit
        while not self.done.is_set() and time.monotonic() < end:
            start = time.monotonic()
            ok, why = self.call()
            if self.done.is_set():
                break  # stopped while this call was under way: the sum was decided on the calls before it
            with self.lock:
                self.results.append((start, ok, why))
            self.done.wait(max(0.0, self.interval - (time.monotonic() - start)))
        self.done.set()

    def answered_since(self, since: float, steady: float) -> bool:
        """Every call of the last `steady` seconds answered, and they all started after `since`."""
        with self.lock:
            recent = [r for r in self.results if r[0] >= since]
        if not recent or recent[-1][0] - steady < since:
            return False
        cut = recent[-1][0] - steady
        return all(ok for t, ok, _ in recent if t >= cut)

    def stop_when_steady(self, since: float, steady: float = 3.0) -> Outage:
        """Wait until the calls of the last `steady` seconds after `since` all answered (or the prober's limit
        passed), stop, and sum up."""
        while not self.done.is_set() and not self.answered_since(since, steady):
            time.sleep(0.1)
        self.done.set()
        self.join()
        return self.outage()

    def outage(self) -> Outage:
        with self.lock:
            results = list(self.results)
        failed = [r for r in results if not r[1]]
        gap, last_ok, in_gap = 0.0, None, False
        for t, ok, _ in results:
            if ok:
                if in_gap and last_ok is not None:
                    gap = max(gap, t - last_ok)
                last_ok, in_gap = t, False
            else:
                in_gap = True
        errors = sorted({why for _, ok, why in results if not ok})
        return Outage(len(results), len(failed), gap, bool(results) and results[-1][1] and not in_gap, errors)
