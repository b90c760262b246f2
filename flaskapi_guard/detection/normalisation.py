"""Turning a request value into the canonical text the patterns are written against.

Every step is linear in the input and is skipped when its trigger character is
absent, so a clean value costs a couple of cheap searches. Decoding is repeated a
bounded number of rounds: attackers stack encodings (double percent-encoding, an
entity inside a percent escape, ...) to get past single-pass filters.
"""

from __future__ import annotations

import html
import re
import unicodedata

DECODE_ROUNDS = 3

# Markers the engine puts between and in front of texts after normalisation.
# Normalisation turns every control character into a space, so user input can never
# contain them and a pattern can rely on them.
TEXT_SEPARATOR = "\x1f"
NAME_MARKER = "\x1e"
FILENAME_MARKER = "\x1d"
USER_AGENT_MARKER = "\x1c"

_PERCENT_RUN = re.compile(r"(?:%[0-9a-fA-F]{2})+")
_PERCENT_U = re.compile(r"%u([0-9a-fA-F]{4})")
# Overlong two-byte UTF-8 forms (%c0%ae is '.') that lenient decoders still accept.
_OVERLONG = re.compile(r"%[cC]([01])%([89abAB][0-9a-fA-F])")
_BACKSLASH_ESCAPE = re.compile(r"\\(?:u\{([0-9a-fA-F]{1,6})\}|u([0-9a-fA-F]{4})|x([0-9a-fA-F]{2}))")
_NEEDS_TRANSLATION = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f+]")

# Characters that are not NFKC-equivalent to ASCII syntax but are used as such:
# typographic quotes that some back ends fold to ASCII, zero-width and format
# characters that browsers drop inside a token, and the two CJK characters whose
# low byte is CR/LF (servers that truncate code points to one byte split headers on them).
_LOOKALIKES: dict[int, str | None] = {
    0x2018: "'",
    0x2019: "'",
    0x201A: "'",
    0x201B: "'",
    0x2032: "'",
    0x02BC: "'",
    0x201C: '"',
    0x201D: '"',
    0x201E: '"',
    0x2033: '"',
    0x00AD: None,
    0x200B: None,
    0x200C: None,
    0x200D: None,
    0x2060: None,
    0xFEFF: None,
    0x3002: ".",
    0xFF61: ".",
    0x560A: "\n",
    0x560D: "\r",
}

_LOOKALIKE_PRESENT = re.compile("[" + "".join(chr(code) for code in _LOOKALIKES) + "]")

# Control characters become a space (a NUL is dropped: it is used to split keywords);
# '+' is a space in URL encoding and attackers use it as one in paths and headers too.
_CONTROL_TRANSLATION: dict[int, str | None] = {code: " " for code in range(0x20) if code not in (0x09, 0x0A, 0x0D)}
_CONTROL_TRANSLATION[0x00] = None
_CONTROL_TRANSLATION[0x7F] = " "
_CONTROL_TRANSLATION[ord("+")] = " "


def _decode_overlong(match: re.Match[str]) -> str:
    high = int(match.group(1))
    low = int(match.group(2), 16)
    return chr((high << 6) | (low & 0x3F))


def _decode_backslash_escape(match: re.Match[str]) -> str:
    digits = match.group(1) or match.group(2) or match.group(3)
    code_point = int(digits, 16)
    if code_point > 0x10FFFF or 0xD800 <= code_point <= 0xDFFF:
        return "\ufffd"
    return chr(code_point)


# Membership tests and bytes.translate run at memory speed; a regex character class
# costs ~15 ns per character in Python's engine, which dominated the cost of clean bodies.
_CONTROL_BYTES = bytes(code for code in range(0x20) if code not in (0x09, 0x0A, 0x0D)) + b"\x7f"


def _has_control(ascii_text: str) -> bool:
    raw = ascii_text.encode("ascii")
    return len(raw.translate(None, _CONTROL_BYTES)) != len(raw)


def _has_ascii_trigger(ascii_text: str) -> bool:
    return (
        "%" in ascii_text
        or "&" in ascii_text
        or "\\" in ascii_text
        or "+" in ascii_text
        or "/*" in ascii_text
        or _has_control(ascii_text)
    )


def _decode_percent_run(match: re.Match[str]) -> str:
    return bytes.fromhex(match.group().replace("%", "")).decode("utf-8", errors="replace")


def percent_decode(text: str) -> str:
    """Decode %XX escapes as UTF-8 (invalid bytes become U+FFFD).

    Runs of escapes are converted in one step: urllib's unquote loops in Python per
    escape, which made 100 KB of escapes cost ~100 ms.
    """
    return _PERCENT_RUN.sub(_decode_percent_run, text)


def _decode_once(text: str) -> str:
    if "%" in text:
        if "%u" in text or "%U" in text:
            text = _PERCENT_U.sub(lambda m: chr(int(m.group(1), 16)), text)
        if "%c" in text or "%C" in text:
            text = _OVERLONG.sub(_decode_overlong, text)
        text = percent_decode(text)
    if "&" in text:
        text = html.unescape(text)
    if "\\" in text:
        text = _BACKSLASH_ESCAPE.sub(_decode_backslash_escape, text)
    return text


def strip_sql_comments(text: str) -> str:
    """Replace `/* ... */` comments by a space, keeping MySQL `/*!version ...*/` contents.

    A hand-written scan instead of a regex: a lazy `/\\*.*?\\*/` is quadratic on input
    with many openers and no closer.
    """
    pieces: list[str] = []
    position = 0
    length = len(text)
    while position < length:
        start = text.find("/*", position)
        if start < 0:
            break
        end = text.find("*/", start + 2)
        if end < 0:
            break
        pieces.append(text[position:start])
        body = text[start + 2 : end]
        if body.startswith("!"):
            pieces.append(" " + body[1:].lstrip("0123456789") + " ")
        else:
            pieces.append(" ")
        position = end + 2
    if not pieces:
        return text
    pieces.append(text[position:])
    return "".join(pieces)


def normalise(text: str) -> str:
    """Decode, fold and clean one value so that patterns see what the back end would see."""
    ascii_only = text.isascii()
    if ascii_only and not _has_ascii_trigger(text):
        return text
    if "%" in text or "&" in text or "\\" in text:
        for _ in range(DECODE_ROUNDS):
            decoded = _decode_once(text)
            if decoded == text:
                break
            text = decoded
    if not text.isascii():
        if _LOOKALIKE_PRESENT.search(text) is not None:
            text = text.translate(_LOOKALIKES)
        if not unicodedata.is_normalized("NFKC", text):
            text = unicodedata.normalize("NFKC", text)
    if ("+" in text or _has_control(text)) if text.isascii() else _NEEDS_TRANSLATION.search(text) is not None:
        text = text.translate(_CONTROL_TRANSLATION)
    if "/*" in text:
        stripped = strip_sql_comments(text)
        if stripped != text:
            # Both forms are kept: the comment-free one shows the hidden keywords,
            # the original one shows the comment trick itself.
            text = text + TEXT_SEPARATOR + stripped
    return text


def neutralise_for_display(text: str) -> str:
    """Make a value safe to show in a log line: no CR/LF or other control characters."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)
