"""Source text, source spans and the one error type every phase raises.

Every user-facing failure is a `PplError` carrying a `Span`; `render` is the
single printer that turns it into the `file:line:col: error: ...` layout with
the quoted source line and a caret.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Source:
    """A spec's text and the name it is reported under."""

    name: str
    text: str

    @classmethod
    def from_path(cls, path: str | Path) -> Source:
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise PplError(f"cannot read spec {path}: {exc.strerror or exc}", hint=None) from None
        try:
            # utf-8-sig: a byte-order mark some editors write is not part of the spec.
            return cls(str(path), raw.decode("utf-8-sig"))
        except UnicodeDecodeError as exc:
            before = raw[: exc.start].decode("utf-8", errors="replace").split("\n")
            raise PplError(
                f"cannot read spec {path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} on line "
                f"{len(before)}, column {len(before[-1]) + 1})",
                hint="save the spec as UTF-8; names and numbers are ASCII, comments may be any UTF-8 text",
            ) from None

    def line(self, number: int) -> str:
        """Line `number` as the parser counts lines: split at newlines only (a form feed or a
        vertical tab inside a line would make str.splitlines quote the wrong line)."""
        lines = self.text.split("\n")
        return lines[number - 1].removesuffix("\r") if 0 < number <= len(lines) else ""


@dataclass(frozen=True)
class Span:
    """1-based line and column of the first character, and of the one after the last."""

    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.line}:{self.column}"


class PplError(Exception):
    """A mistake in a spec, its data or its fit, located in the spec when possible.

    `kind` decides the exit code of the command line: spec errors exit 2, data
    errors 3, fitting errors 4.
    """

    kind = "spec"
    source: Source | None = None  # the file the span points into, where a command reads several

    def __init__(self, message: str, span: Span | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.span = span
        self.hint = hint


class DataError(PplError):
    kind = "data"


class FitError(PplError):
    kind = "fit"


def did_you_mean(name: str, candidates: list[str] | tuple[str, ...]) -> str | None:
    """The likeliest intended name: fewest edits (at most a third of the name, or one),
    ties to the same case and then the nearest letters; else difflib's best match."""
    allowed = max(1, len(name) // 3)
    close = [c for c in candidates if _edits(name, c) <= allowed]
    if close:
        best = min(close, key=lambda c: (_edits(name, c), c[:1].isupper() != name[:1].isupper(),
                                         sum(abs(ord(a) - ord(b)) for a, b in zip(name, c))))
        return f"did you mean '{best}'?"
    matches = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else None


def _edits(a: str, b: str) -> int:
    """Levenshtein distance."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


MAX_QUOTED_WIDTH = 200


def render(error: PplError, source: Source | None) -> str:
    """The one printer: header, numbered source line, caret under the span, hint."""
    where = source.name if source else "pplc"
    if error.span is None or source is None:
        text = f"{where}: error: {error.message}"
        return text + (f"\n  hint: {error.hint}" if error.hint else "")
    span = error.span
    line_text = source.line(span.line).expandtabs(1)
    start = span.column - 1
    if len(line_text) > MAX_QUOTED_WIDTH:
        # Quote a window around the error so a 10 MB line prints one screen.
        window = max(0, start - MAX_QUOTED_WIDTH // 2)
        line_text = line_text[window : window + MAX_QUOTED_WIDTH]
        start -= window
    width = span.end_column - span.column if span.end_line == span.line else 1
    width = max(1, min(width, len(line_text) - start))
    gutter = " " * len(str(span.line))
    caret = " " * start + "^" * width
    lines = [
        f"{where}:{span.line}:{span.column}: error: {error.message}",
        f"  {span.line} | {line_text}",
        f"  {gutter} | {caret}" + (f" {error.hint}" if error.hint else ""),
    ]
    return "\n".join(lines)
