"""Progress of chapter runs: a live line on a terminal, one line per chapter in a log."""

from __future__ import annotations

import re
import shutil
import sys
import threading
import time


class Progress:
    """Progress of chapter runs: on a terminal a live line (chapter, elapsed seconds, cell k of n, the current
    section or step) that ends as one summary line; elsewhere (CI logs) just that line per chapter when it ends:
    ``<prefix><chapter> (<run>): ok in 12.3 s``, ``failed after ...`` or ``interrupted after ...``."""

    def __init__(self, stream=None, live: bool | None = None, prefix: str = ""):
        self.stream = stream if stream is not None else sys.stderr
        self.live = bool(live if live is not None else getattr(self.stream, "isatty", lambda: False)())
        self.prefix = prefix
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker = None
        self._state = ""
        self._start = time.perf_counter()

    def start(self, chapter: str, run: str) -> None:
        self.chapter, self.run, self._start = chapter, run, time.perf_counter()
        self._state = "starting the kernel"
        if self.live:
            self._stop.clear()
            self._ticker = threading.Thread(target=self._tick, daemon=True)
            self._ticker.start()
            self._draw()

    def cell(self, k: int, n: int, where: str) -> None:
        """Cell ``k`` of ``n`` code cells started; ``where``: its section heading or step name."""
        self._state = f"cell {k}/{n}" + (f" {where}" if where else "")
        if self.live:
            self._draw()

    def finish(self, outcome: str) -> None:
        """``outcome``: "ok", "failed" or "interrupted"."""
        seconds = time.perf_counter() - self._start
        if self._ticker is not None:
            self._stop.set()
            self._ticker.join()
            self._ticker = None
        word = "in" if outcome == "ok" else "after"
        line = f"{self.prefix}{self.chapter} ({self.run}): {outcome} {word} {seconds:.1f} s"
        with self._lock:
            self.stream.write(("\r\x1b[K" if self.live else "") + line + "\n")
            self.stream.flush()

    def _tick(self):
        while not self._stop.wait(1.0):
            self._draw()

    def _draw(self):
        elapsed = time.perf_counter() - self._start
        line = f"{self.prefix}{self.chapter} ({self.run}) {elapsed:.0f} s, {self._state}"
        width = shutil.get_terminal_size((100, 20)).columns - 1
        with self._lock:
            if not self._stop.is_set():
                self.stream.write("\r\x1b[K" + line[:width])
                self.stream.flush()


_STEP = re.compile(r"""steps\[["']([\w.-]+)["']\]""")
_HEADING = re.compile(r"^#{1,6}\s+(.*\S)\s*$", re.M)


def cell_places(nb) -> dict[int, tuple[int, int, str]]:
    """cell index -> (k, n, where) for each code cell: its number among the n code cells, and the step it runs
    (``steps["fig1a"]``) or else the heading of the section it is in."""
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    places, heading = {}, ""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            found = _HEADING.findall(cell.source)
            heading = found[-1] if found else heading
        elif cell.cell_type == "code":
            step = _STEP.search(cell.source)
            where = f"step {step.group(1)}" if step else (f"§ {heading}" if heading else "")
            places[index] = (code.index(index) + 1, len(code), where)
    return places


