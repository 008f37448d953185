"""Progress for long work: a one-line bar on a terminal, plain log lines otherwise."""

import sys
import time

# ANSI: erase from the cursor to the end of the line.
_ERASE_TO_END = "\x1b[K"


def format_bytes(count):
    """Returns `count` bytes as a short human string.

    Args:
        count: a number of bytes.

    Returns:
        The count in B, kB, MB or GB (powers of 1000).

    Example:

    >>> format_bytes(553_412_000), format_bytes(999), format_bytes(12_300)
    ('553.4 MB', '999 B', '12.3 kB')
    """
    for unit in ("B", "kB", "MB", "GB"):
        if abs(count) < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"


class Progress:
    """Counts items and bytes against known totals and shows how far along the work is.

    Args:
        label: what is being done, e.g. "convert".
        total_items: number of items expected.
        total_bytes: bytes expected.
        stream: where to write; standard error by default.
        enabled: False to stay silent (library calls default to silent).
        interval_seconds: off a terminal, the longest time between two lines
            (a line is also written at every tenth of the work).

    Example:

    >>> import io
    >>> stream = io.StringIO()
    >>> progress = Progress("convert", 2, 2000, stream=stream)
    >>> progress.advance(1, 1000, "dense/kernel")
    >>> print(stream.getvalue().strip())  # doctest: +ELLIPSIS
    convert [############------------] 1/2 1.0 kB/2.0 kB ...s dense/kernel
    """

    def __init__(self, label, total_items, total_bytes, *, stream=None, enabled=True,
                 interval_seconds=5.0):
        self.label = label
        self.total_items = total_items
        self.total_bytes = total_bytes
        self.items = 0
        self.bytes = 0
        self._stream = stream or sys.stderr
        self._enabled = enabled
        self._terminal = enabled and hasattr(self._stream, "isatty") and self._stream.isatty()
        self._started = time.monotonic()
        self._last_shown = 0.0
        self._interval = interval_seconds
        self._last_decile = -1
        self._first_done = None

    def start(self, message):
        """Shows one line saying what is about to happen, before the first item is done.

        Work such as a batch's worker start-up (TensorFlow import, model build)
        takes seconds before any item is done; this says so at once.
        """
        if self._enabled:
            self._stream.write(message + "\n")
            self._stream.flush()
        self._started = time.monotonic()

    def note(self, message):
        """Shows one line saying what the next seconds go to, before the first item is done."""
        if self._enabled:
            self._stream.write(("\r" if self._terminal else "") + message + "\n")
            self._stream.flush()

    def advance(self, items=1, nbytes=0, note=""):
        if self._first_done is None:
            # The rate is measured from the first item done: the time before it
            # is start-up (a batch's TensorFlow import and model build).
            self._first_done = (time.monotonic(), self.items + items, self.bytes + nbytes)
        self.items += items
        self.bytes += nbytes
        if not self._enabled:
            return
        now = time.monotonic()
        if self._terminal:
            if now - self._last_shown >= 0.1 or self.items >= self.total_items:
                self._stream.write("\r" + self._line(now, note)[:200].ljust(100))
                self._stream.flush()
                self._last_shown = now
            return
        decile = int(10 * self.items / max(self.total_items, 1))
        if decile != self._last_decile or now - self._last_shown >= self._interval:
            self._stream.write(self._line(now, note) + "\n")
            self._stream.flush()
            self._last_decile, self._last_shown = decile, now

    def close(self):
        if self._terminal:
            self._stream.write("\n")
            self._stream.flush()

    def _eta(self, now):
        """Seconds left at the rate since the first item was done; None until that means something.

        Before a second item is done there is no rate that excludes start-up,
        so no ETA is shown rather than a guess.
        """
        if self._first_done is None:
            return None
        first_time, first_items, first_bytes = self._first_done
        if self.items <= first_items:
            return None
        if self.total_bytes and self.bytes > first_bytes:
            rate = (self.bytes - first_bytes) / max(now - first_time, 1e-9)
            return max(self.total_bytes - self.bytes, 0) / rate
        rate = (self.items - first_items) / max(now - first_time, 1e-9)
        return max(self.total_items - self.items, 0) / rate

    def _line(self, now, note):
        elapsed = now - self._started
        fraction = self.bytes / self.total_bytes if self.total_bytes else (
            self.items / max(self.total_items, 1))
        width = 24
        filled = int(width * min(fraction, 1.0))
        bar = "#" * filled + "-" * (width - filled)
        text = (f"{self.label} [{bar}] {self.items}/{self.total_items} "
                f"{format_bytes(self.bytes)}/{format_bytes(self.total_bytes)} {elapsed:.1f}s")
        eta = self._eta(now)
        if eta is not None:
            text += f" ETA {eta:.1f}s"
        return f"{text} {note}" if note else text


class StatusLine:
    """One line on a terminal saying what the next seconds go to, erased before any output.

    Off a terminal it writes nothing, so logs and captured output hold only
    the results, and an error stays one line.

    Args:
        stream: where to write; standard error by default.
        enabled: False to stay silent.

    Example:

    >>> import io
    >>> status = StatusLine(stream=io.StringIO())  # not a terminal: silent
    >>> status.show("convert: starting (TensorFlow import) ...")
    >>> status.clear()
    """

    def __init__(self, *, stream=None, enabled=True):
        self._stream = stream or sys.stderr
        self._enabled = enabled and hasattr(self._stream, "isatty") and self._stream.isatty()
        self._shown = False

    def show(self, message):
        if self._enabled:
            # No newline: a progress bar (a `\r` line) or `clear` takes its place.
            self._stream.write("\r" + message + _ERASE_TO_END)
            self._stream.flush()
            self._shown = True

    def clear(self):
        if self._shown:
            self._stream.write("\r" + _ERASE_TO_END)
            self._stream.flush()
            self._shown = False
