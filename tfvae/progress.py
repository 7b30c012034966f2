"""A progress bar for long work: one line per epoch, redrawn in place on a terminal."""

from __future__ import annotations

import sys
import time


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def format_metrics(metrics: dict, names=None) -> str:
    names = names or list(metrics)
    parts = []
    for name in names:
        value = metrics.get(name)
        if value is None:
            continue
        parts.append(f"{name} {value:.4g}" if abs(value) < 1e4 else f"{name} {value:.1f}")
    return "  ".join(parts)


class Progress:
    """Draws `label [=====>    ] done/total  metrics  rate  ETA` on stderr.

    On a terminal the line is redrawn in place; elsewhere (a log file, CI) only the finished
    line is printed, so logs stay readable. `enabled=False` prints nothing.
    """

    def __init__(self, stream=None, enabled: bool = True, width: int = 24, min_interval: float = 0.1):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.width = width
        self.min_interval = min_interval
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_draw = 0.0
        self._line_len = 0

    def start(self, label: str, total: int, unit: str = "step"):
        self.label, self.total, self.unit = label, max(1, total), unit
        self.t0 = time.perf_counter()
        self._done0 = None

    def _line(self, done: int, text: str, rate_text: str, finished: bool) -> str:
        frac = min(1.0, done / self.total)
        filled = int(frac * self.width)
        bar = "=" * filled + (">" if filled < self.width else "") + " " * max(0, self.width - filled - 1)
        elapsed = time.perf_counter() - self.t0
        if finished:
            timing = f"{_duration(elapsed)}"
        else:
            eta = elapsed / frac * (1 - frac) if frac > 0 else 0
            timing = f"ETA {_duration(eta)}"
        return f"{self.label} [{bar}] {done}/{self.total}  {text}  {rate_text}  {timing}".rstrip()

    def update(self, done: int, text: str = "", rate_text: str = ""):
        if not (self.enabled and self.interactive):
            return
        now = time.perf_counter()
        if now - self._last_draw < self.min_interval and done < self.total:
            return
        self._last_draw = now
        self._draw(self._line(done, text, rate_text, False))

    def _draw(self, line: str):
        pad = " " * max(0, self._line_len - len(line))
        self.stream.write("\r" + line + pad)
        self.stream.flush()
        self._line_len = len(line)

    def finish(self, done: int, text: str = "", rate_text: str = ""):
        if not self.enabled:
            return
        line = self._line(done, text, rate_text, True)
        if self.interactive:
            self._draw(line)
            self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self._line_len = 0

    def message(self, text: str):
        if self.enabled:
            if self.interactive and self._line_len:
                self.stream.write("\n")
                self._line_len = 0
            self.stream.write(text + "\n")
            self.stream.flush()
