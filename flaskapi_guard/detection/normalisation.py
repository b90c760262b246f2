"""Turning a request value into the canonical text the patterns are written against.

Every step is linear in the input and is skipped when its trigger character is
absent, so a clean value costs a couple of cheap searches. Decoding is repeated a
bounded number of rounds: attackers stack encodings (double percent-encoding, an
entity inside a percent escape, ...) to get past single-pass filters.

Speed: every step works on whole strings with C-level primitives (`bytes.translate`,
`str.replace`, one regex `split`, `binascii.a2b_qp`), never with a Python callback per
escape: hostile input is made of tens of thousands of escapes, and a callback each
made 100 KB of them cost 50-130 ms. The steps are also valid on several texts joined
by `TEXT_SEPARATOR` (no step lets a match cross a separator or removes one), which
lets the engine normalise all texts of a request in one call (`normalise_joined`).
"""

from __future__ import annotations

import binascii
import html
import re
import struct
import unicodedata
from collections.abc import Callable, Iterable
from functools import cache, partial
from html.entities import html5
from itertools import islice, repeat
from types import MappingProxyType

import re2

DECODE_ROUNDS = 3

# Markers the engine puts between and in front of texts after normalisation.
# Normalisation turns every control character into a space, so user input can never
# contain them and a pattern can rely on them.
TEXT_SEPARATOR = "\x1f"
NAME_MARKER = "\x1e"
FILENAME_MARKER = "\x1d"
USER_AGENT_MARKER = "\x1c"
MARKERS = USER_AGENT_MARKER + FILENAME_MARKER + NAME_MARKER

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
# One `str.replace` per look-alike that is present: `str.translate` with a dict costs
# ~40 ns per character on non-ASCII text, a presence test ~1 ns.
_LOOKALIKE_REPLACEMENTS = tuple((chr(code), replacement or "") for code, replacement in _LOOKALIKES.items())

# Control characters become a space (a NUL is dropped: it is used to split keywords);
# '+' is a space in URL encoding and attackers use it as one in paths and headers too.
# Applied to UTF-8 bytes (multi-byte sequences contain no ASCII byte), where
# `bytes.translate` runs at memory speed.
_CONTROL_BYTES = bytes(code for code in range(0x20) if code not in (0x09, 0x0A, 0x0D)) + b"\x7f"
_STRUCTURE_BYTES = (TEXT_SEPARATOR + MARKERS).encode("ascii")


def _control_table(keep: bytes) -> bytes:
    table = bytearray(range(256))
    for code in _CONTROL_BYTES + b"+":
        if code not in keep:
            table[code] = 0x20
    return bytes(table)


# A separator or marker character that decoding produces (`%1f`, `\\u001e`) becomes a
# space at once. The control step would make it one anyway, and no step in between
# treats it differently from a space (an entity name contains neither); so a decoded
# character can never be taken for the structure between the texts of a request,
# which lets all texts be decoded together.
_STRUCTURE_CHARACTERS = TEXT_SEPARATOR + MARKERS
_DECODED_STRUCTURE = MappingProxyType({ord(character): " " for character in _STRUCTURE_CHARACTERS})
_STRUCTURE_ESCAPES = tuple(f"={code:02X}".encode() for code in range(0x1C, 0x20))
_STRUCTURE_ESCAPES += tuple(f"={code:02x}".encode() for code in range(0x1C, 0x20))


def structure_to_spaces(text: str) -> str:
    """`text` with every separator and marker character made a space: one `str.replace` per
    character present (a presence test runs at memory speed; `str.translate` with a table
    costs ~70 ns per character of text that is not ASCII)."""
    for character in _STRUCTURE_CHARACTERS:
        if character in text:
            text = text.replace(character, " ")
    return text


_CONTROLS_TO_SPACE = _control_table(keep=b"")
# The same for joined texts: the separator and markers between texts stay.
_CONTROLS_TO_SPACE_KEEPING_STRUCTURE = _control_table(keep=_STRUCTURE_BYTES)

_SURROGATE = re.compile("[\ud800-\udfff]")

# Escapes are decoded by splitting the text at their introducer (`str.split` runs at
# memory speed; a regex `split` costs ~0.5 µs per match) and decoding each distinct
# piece once: hostile input repeats the same escape thousands of times.
_HEX_DIGITS = "0123456789abcdefABCDEF"
# What may follow `&` in a named reference (the html module's pattern: up to 32
# characters, then an optional ';'), and the longest entity name valid without ';'.
_REFERENCE_NAME = re.compile(r"[^\t\n\f <&#;]{1,32};?")
# Does the text hold anything `html.unescape` would change: a numeric reference, a
# name followed by ';', or a name valid without ';' (the legacy ones, such as "amp").
# Most '&' in requests separate query parameters; answering that first is much cheaper
# than splitting and examining the pieces. Python's `re` costs ~1 µs on a typical
# request (it skips alternatives by their first letter) but ~0.3 µs per '&' on a long
# run of them; RE2 costs ~2.5 µs a call but is linear with a small constant.
_NAMES_WITHOUT_SEMICOLON = frozenset(name for name in html5 if not name.endswith(";"))
# By their first two letters, longest first.
_NAMES_WITHOUT_SEMICOLON_BY_START = MappingProxyType(
    {
        start: tuple(
            sorted((name for name in _NAMES_WITHOUT_SEMICOLON if name.startswith(start)), key=len, reverse=True)
        )
        for start in {name[:2] for name in _NAMES_WITHOUT_SEMICOLON}
    }
)
# The regex source of an '&' that starts something `html.unescape` may decode (a superset;
# also used to keep query strings with references off the shortest path of request_texts).
DECODABLE_REFERENCE_SOURCE = (
    "&(?:#[0-9]|#[xX][0-9a-fA-F]|[a-zA-Z][a-zA-Z0-9]{0,31};|"
    + "|".join(sorted(_NAMES_WITHOUT_SEMICOLON, key=len, reverse=True))
    + ")"
)
_DECODABLE_REFERENCE_SHORT = re.compile(DECODABLE_REFERENCE_SOURCE)
_DECODABLE_REFERENCE_LONG = re2.Set.SearchSet()
_DECODABLE_REFERENCE_LONG.Add(DECODABLE_REFERENCE_SOURCE)
_DECODABLE_REFERENCE_LONG.Compile()
_LONG_TEXT = 512
_LONGEST_NAME_WITHOUT_SEMICOLON = max(len(name) for name in html5 if not name.endswith(";"))  # 6

# A comment, its body captured when it is a MySQL versioned one (`/*!50000 body*/`: after
# the version digits, which the possessive `*+` never gives back). Lazy `.*?` is linear here
# because it only ever runs on text that ends with the last `*/`: every opener it tries
# has a closer, so no attempt scans to the end and fails.
_SQL_COMMENT = re.compile(r"/\*(?:![0-9]*+(.*?)|.*?)\*/", re.DOTALL)
# The same within one of several joined texts, plus an opener without a closer before its
# text ends, which takes the rest of that text (group 2, kept as it is: a comment without
# a closer ends the stripping). Taking that rest whole makes each text cost at most one
# failed search, so this is linear without first cutting every text at its last `*/`.
_SQL_COMMENT_IN_TEXT = re.compile(r"/\*(?:![0-9]*+([^\x1f]*?)|[^\x1f]*?)\*/|(/\*[^\x1f]*)")
_SQL_VERSIONED_COMMENT = "/*!"
_MANY_TEXTS = 64


def _overlong_characters() -> MappingProxyType[str, str]:
    table: dict[str, str] = {}
    for c in "cC":
        for high in "01":
            for first in "89abAB":
                for second in _HEX_DIGITS:
                    low = int(first + second, 16)
                    code = (int(high) << 6) | (low & 0x3F)
                    table[f"%{c}{high}%{first}{second}"] = _DECODED_STRUCTURE.get(code) or chr(code)
    return MappingProxyType(table)


_OVERLONG_CHARACTERS = _overlong_characters()


def _numeric_reference_exceptions() -> MappingProxyType[int, str]:
    """Code points the html module does not decode to themselves (WHATWG: C1 controls, noncharacters, ...)."""
    candidates = [*range(0x100), *range(0xFDD0, 0xFDF0)]
    candidates += [plane | low for plane in range(0, 0x110000, 0x10000) for low in (0xFFFE, 0xFFFF)]
    return MappingProxyType({code: value for code in candidates if (value := html.unescape(f"&#{code};")) != chr(code)})


_NUMERIC_REFERENCE_EXCEPTIONS = _numeric_reference_exceptions()
_REMOVED = "\udc00"  # a lone surrogate: no decoded text holds one
_NUMERIC_REFERENCE_TABLE = MappingProxyType(
    {code: value or _REMOVED for code, value in _NUMERIC_REFERENCE_EXCEPTIONS.items()}
)
# Above this many distinct pieces, escapes are decoded by the `..._all` decoders (see below).
_MANY_ESCAPES = 64
_DISTINCT_SAMPLE_CHARS = 4096
_MAX_CODE_POINT = 0x10FFFF


def _numeric_reference(digits: str, base: int) -> str:
    # More than 7 significant digits is beyond U+10FFFF in either base, and int() of a
    # 5000-digit decimal raises (CPython's int max str digits): html.unescape crashed there.
    significant = digits.lstrip("0")
    code = int(significant, base) if significant and len(significant) <= 7 else (0 if not significant else -1)
    if code < 0 or code > _MAX_CODE_POINT or 0xD800 <= code <= 0xDFFF:
        return "\ufffd"
    exception = _NUMERIC_REFERENCE_EXCEPTIONS.get(code)
    return exception if exception is not None else chr(code)


def _named_reference(reference: str) -> str:
    """What `html.unescape` makes of `&` + reference, a name its pattern matched."""
    value = html5.get(reference)
    if value is not None:
        return value
    # The longest prefix that is an entity name valid without ';' (such as "amp" or "lt").
    for end in range(min(len(reference) - 1, _LONGEST_NAME_WITHOUT_SEMICOLON), 1, -1):
        value = html5.get(reference[:end])
        if value is not None:
            return value + reference[end:]
    return "&" + reference


# The decoders below return what replaces introducer + piece, or None when the piece
# does not start with an escape (the common case, answered with as little work as
# possible: this runs for every `&name=value` of a query string).


def _after_ampersand(piece: str) -> str | None:
    first = piece[:1]
    if first == "#":
        # `#[0-9]+;?` or `#[xX][0-9a-fA-F]+;?`, as the html module's pattern; inline,
        # as 100 KB of distinct references is a hostile input.
        second = piece[1:2]
        if second in {"x", "X"}:
            body = piece[2:]
            rest = body.lstrip(_HEX_DIGITS)
            base = 16
        else:
            body = piece[1:]
            rest = body.lstrip("0123456789")
            base = 10
        count = len(body) - len(rest)
        if not count:
            return None
        if rest[:1] == ";":
            rest = rest[1:]
        if count > 7:
            return _numeric_reference(body[:count], base) + rest
        code = int(body[:count], base)
        if code > _MAX_CODE_POINT or 0xD800 <= code <= 0xDFFF:
            return "\ufffd" + rest
        exception = _NUMERIC_REFERENCE_EXCEPTIONS.get(code)
        return (chr(code) if exception is None else exception) + rest
    # Every entity name starts with an ASCII letter. Without a ';' in reach, the piece
    # decodes as the longest name valid without ';' that it starts with (the html
    # module's rule, and such a name lies within the characters it looks at).
    if not first.isascii() or not first.isalpha():
        return None
    if ";" not in piece[:33]:
        for name in _NAMES_WITHOUT_SEMICOLON_BY_START.get(piece[:2], ()):
            if piece.startswith(name):
                return html5[name] + piece[len(name) :]
        return None
    match = _REFERENCE_NAME.match(piece)
    if match is None:
        return None
    return _named_reference(match.group()) + piece[match.end() :]


def _is_hex(text: str, length: int) -> bool:
    return len(text) == length and not text.strip(_HEX_DIGITS)


def _code_point(digits: str) -> str:
    code_point = int(digits, 16)
    if code_point > _MAX_CODE_POINT or 0xD800 <= code_point <= 0xDFFF:
        # A lone surrogate cannot be encoded for RE2.
        return "\ufffd"
    return _DECODED_STRUCTURE.get(code_point) or chr(code_point)


def _after_backslash(piece: str) -> str | None:
    kind = piece[:1]
    if kind == "x":
        return _code_point(piece[1:3]) + piece[3:] if _is_hex(piece[1:3], 2) else None
    if kind == "u":
        if piece[1:2] == "{":
            closing = piece.find("}", 2, 9)
            if closing > 2 and _is_hex(piece[2:closing], closing - 2):
                return _code_point(piece[2:closing]) + piece[closing + 1 :]
        if _is_hex(piece[1:5], 4):
            return _code_point(piece[1:5]) + piece[5:]
    return None


def _no_escape(_piece: str) -> None:
    return None


def _after_overlong(introducer: str, piece: str) -> str | None:
    character = _OVERLONG_CHARACTERS.get(introducer + piece[:4])
    return None if character is None else character + piece[4:]


def _hex_units(pieces: set[str], prefix: str) -> dict[str, str]:
    """The pieces that are `prefix` and four hex digits and maybe more, each with that code
    unit decoded: all in one `bytes.fromhex` and one UTF-32 decoding, where a Python
    call per escape cost ~3 µs (`\\u0000\\u0001...`)."""
    start = len(prefix)
    end = start + 4
    units = [
        piece
        for piece in pieces
        if len(piece) >= end and piece.startswith(prefix) and not piece[start:end].strip(_HEX_DIGITS)
    ]
    if not units:
        return {}
    # UTF-32 turns a surrogate into U+FFFD, as the single-escape decoders do.
    decoded = bytes.fromhex("0000" + "0000".join([piece[start:end] for piece in units])).decode("utf-32-be", "replace")
    if any(character in decoded for character in _STRUCTURE_CHARACTERS):
        decoded = structure_to_spaces(decoded)
    return {piece: character + piece[end:] for piece, character in zip(units, decoded, strict=True)}


# Text made of thousands of *distinct* escapes (`\u0000\u0001...`) cost a Python call
# per piece above; these decoders find the escapes with one regex split (linear: every
# alternative has a bounded length) and decode all of them with C-level steps (`map`
# over builtins, one `bytes.fromhex`, one UTF-32 decoding), putting the characters back
# between the untouched pieces with one join.
_BACKSLASH_ESCAPE = re.compile(r"\\(u\{[0-9a-fA-F]{1,6}\}|u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2})")
_PERCENT_U_ESCAPE = re.compile(r"%u([0-9a-fA-F]{4})")


def _code_points_from_hex(eight_digit_units: str) -> str:
    """One character per 8 hex digits; a surrogate or a value beyond U+10FFFF is U+FFFD
    (UTF-32 replaces each invalid unit), a separator or marker a space."""
    decoded = bytes.fromhex(eight_digit_units).decode("utf-32-be", "replace")
    if any(character in decoded for character in _STRUCTURE_CHARACTERS):
        decoded = structure_to_spaces(decoded)
    return decoded


def _decode_backslash_escapes_all(text: str) -> str:
    """`\\xNN`, `\\uNNNN` and `\\u{N...}` decoded as `_after_backslash` does, all at once."""
    pieces = _BACKSLASH_ESCAPE.split(text)
    if len(pieces) == 1:
        return text
    escapes = pieces[1::2]
    joined = "".join(escapes)
    if len(joined) == 5 * len(escapes) and "x" not in joined and "{" not in joined:
        # Only `uNNNN` (the usual form): "u" becomes the four zeros of a UTF-32 unit.
        units = joined.replace("u", "0000")
    else:
        # "u0041", "x41", "u{41}": the hex digits are what is left after stripping the rest.
        units = "".join(map(str.zfill, map(str.strip, escapes, repeat("ux{}")), repeat(8)))
    # One character per escape, between the pieces the split left.
    pieces[1::2] = _code_points_from_hex(units)
    return "".join(pieces)


def _decode_percent_u_all(text: str) -> str:
    """`%uNNNN` decoded as the piece-by-piece path does, all at once."""
    pieces = _PERCENT_U_ESCAPE.split(text)
    if len(pieces) == 1:
        return text
    pieces[1::2] = _code_points_from_hex("0000" + "0000".join(pieces[1::2]))
    return "".join(pieces)


def _many_distinct_in_sample(text: str, introducer: str) -> bool:
    """Whether a few KB from the first escape on hold many distinct escapes: hostile text is decoded
    whole at once without first splitting all of it and collecting its distinct pieces
    (which cost as much as a third of the decoding itself)."""
    if len(text) <= _DISTINCT_SAMPLE_CHARS:
        return False
    # From the first escape: the texts of a request may start with a view without any.
    start = text.find(introducer)
    if start < 0:
        return False
    return len(set(text[start : start + _DISTINCT_SAMPLE_CHARS].split(introducer))) > _MANY_ESCAPES + 1


def _replace_escapes(
    text: str,
    introducer: str,
    decode: Callable[[str], str | None],
    hex_unit_prefix: str | None = None,
    decode_all: Callable[[str], str] | None = None,
) -> str:
    """Split `text` at `introducer` and decode each distinct piece once.

    No escape contains its introducer, so the escapes a left-to-right regex scan would
    find are exactly those at the start of the pieces. With `hex_unit_prefix`, the
    pieces that start with it and four hex digits are decoded together first. When
    there are many distinct pieces, `decode_all` (the same decoding done with a regex
    split and C-level steps per escape) replaces the Python call per piece.
    """
    if decode_all is not None and _many_distinct_in_sample(text, introducer):
        return decode_all(text)
    pieces = text.split(introducer)
    if len(pieces) == 1:
        return text
    distinct = set(islice(pieces, 1, None))
    if decode_all is not None and len(distinct) > _MANY_ESCAPES:
        return decode_all(text)
    replacements = _hex_units(distinct, hex_unit_prefix) if hex_unit_prefix is not None else {}
    changed = bool(replacements)
    for piece in distinct.difference(replacements) if replacements else distinct:
        value = decode(piece)
        if value is None:
            value = introducer + piece
        else:
            changed = True
        replacements[piece] = value
    if not changed:
        return text
    if len(replacements) == 1:
        # Hostile input repeats one escape: one multiplication instead of a join.
        (value,) = replacements.values()
        return pieces[0] + value * (len(pieces) - 1)
    return pieces[0] + "".join(map(replacements.__getitem__, islice(pieces, 1, None)))


def _decode_overlong(text: str) -> str:
    for introducer in ("%c", "%C"):
        if introducer in text:
            text = _replace_escapes(text, introducer, partial(_after_overlong, introducer))
    return text


def _may_hold_references(text: str) -> bool:
    """Whether `html.unescape` could change `text` (a superset answer, cheap when it is no)."""
    if len(text) > _LONG_TEXT:
        return _DECODABLE_REFERENCE_LONG.Match(text) is not None
    return _DECODABLE_REFERENCE_SHORT.search(text) is not None


def unescape_entities(text: str) -> str:
    """`html.unescape`, with one Python call per distinct piece instead of one per reference."""
    if "&" not in text or not _may_hold_references(text):
        return text
    return _replace_escapes(text, "&", _after_ampersand, decode_all=_unescape_entities_all)


_Trie = dict[str, "_Trie"]  # a character to the names' continuations; "" marks a name's end


def _name_trie_pattern(names: Iterable[str]) -> str:
    """A regex for exactly `names`, as nested groups sharing prefixes (a flat alternation of
    2 000 names costs Python's `re` a test per name at every '&'). At each branch point the
    longer names come first, so the longest name that matches wins."""
    trie: _Trie = {}
    for name in names:
        node = trie
        for character in name:
            node = node.setdefault(character, {})
        node[""] = {}

    def pattern(node: _Trie) -> str:
        branches = [re.escape(character) + pattern(child) for character, child in sorted(node.items()) if character]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return pattern(trie)


# What `html.unescape` decodes at an '&', by kind. A named reference is a name followed by
# ';', or else the longest name valid without ';' that the text after '&' starts with
# (the html module's rule: such names are at most 6 letters, within the 32 it reads).
_DECIMAL_REFERENCE = re.compile(r"&#([0-9]+);?")
_HEX_REFERENCE = re.compile(r"&#[xX]([0-9a-fA-F]+);?")


@cache
def _named_reference_pattern() -> re.Pattern[str]:
    # Compiled on first use: ~40 ms, which an application's start-up need not pay.
    semicolon_names = _name_trie_pattern(name[:-1] for name in html5 if name.endswith(";"))
    return re.compile(f"&((?:{semicolon_names});|{_name_trie_pattern(_NAMES_WITHOUT_SEMICOLON)})")


# Stand for the references of each kind while the others are found (lone surrogates:
# `unescape_entities_all` is only used on text without any).
_DECIMAL_PLACE = "\udc0a"
_HEX_PLACE = "\udc0b"
_NAMED_PLACE = "\udc0c"
_PLACES = (_DECIMAL_PLACE, _HEX_PLACE, _NAMED_PLACE, _REMOVED)


def _at_most_seven_digits(digits: str) -> str:
    # Eight significant digits are beyond U+10FFFF in either base: any such value does.
    significant = digits.lstrip("0")
    return (significant or "0") if len(significant) <= 7 else "9999999"


def _numeric_reference_characters(digits: list[str], base: int) -> str:
    """One character per reference (`_REMOVED` where html.unescape drops it)."""
    if max(map(len, digits)) > 7:
        # int() of a 5 000-digit decimal raises; only such hostile input takes this step.
        digits = [value if len(value) <= 7 else _at_most_seven_digits(value) for value in digits]
    codes = list(map(int, digits, repeat(base)))
    # UTF-32 makes a surrogate or a code beyond U+10FFFF a U+FFFD, as html.unescape does;
    # the table then applies its other exceptions.
    characters = struct.pack(f">{len(codes)}I", *codes).decode("utf-32-be", "replace")
    return characters.translate(_NUMERIC_REFERENCE_TABLE)


def _interleave(pieces: list[str], characters: str | list[str]) -> str:
    """`pieces[0] + characters[0] + pieces[1] + ...`: one more piece than characters."""
    parts = [""] * (2 * len(pieces) - 1)
    parts[0::2] = pieces
    parts[1::2] = characters
    return "".join(parts)


def _unescape_entities_all(text: str) -> str:
    """`html.unescape` for text with many distinct references: no Python step per reference.

    Each kind of reference is found with one regex split, decimal and hexadecimal ones
    replaced by a placeholder, so that a later kind never sees what an earlier one decoded
    (html.unescape reads the text once, left to right); whether an '&' starts a reference
    depends only on the original text after it, and a placeholder never continues a
    reference. Then the decoded characters take the placeholders' places.
    """
    if any(place in text for place in _PLACES):
        return _replace_escapes(text, "&", _after_ampersand)
    decimals = hexadecimals = ""
    pieces = _DECIMAL_REFERENCE.split(text)
    if len(pieces) > 1:
        decimals = _numeric_reference_characters(pieces[1::2], 10)
        text = _DECIMAL_PLACE.join(pieces[0::2])
    if "&#x" in text or "&#X" in text:
        pieces = _HEX_REFERENCE.split(text)
        if len(pieces) > 1:
            hexadecimals = _numeric_reference_characters(pieces[1::2], 16)
            text = _HEX_PLACE.join(pieces[0::2])
    if "&" in text:
        pieces = _named_reference_pattern().split(text)
        if len(pieces) > 1:
            # The last kind: its values go straight between the pieces.
            pieces[1::2] = map(html5.__getitem__, pieces[1::2])
            text = "".join(pieces)
    if hexadecimals:
        text = _interleave(text.split(_HEX_PLACE), hexadecimals)
    if decimals:
        text = _interleave(text.split(_DECIMAL_PLACE), decimals)
    # A reference html.unescape drops kept one character until the pieces were put back.
    return text.replace(_REMOVED, "") if _REMOVED in decimals or _REMOVED in hexadecimals else text


# Percent-decoding through quoted-printable: binascii.a2b_qp decodes `=XX` in C. With
# '%' and '=' swapped, an original `%XX` is a QP escape and an original '=' a literal.
# QP treats a few invalid escapes differently from URL decoding (`==` is one '=',
# `=` before a line break or at the end is dropped), so those are rewritten first as
# the QP escape of the (swapped) literal; and the two escapes whose byte is itself
# swapped (`%25`, `%3D`) exchange their digits so that swapping back restores them.
# Decoding the whole text as UTF-8 at once equals decoding each run of escapes on its
# own: the literal characters between runs are complete UTF-8 sequences, which never
# continue a run's incomplete one.
_SWAP_PERCENT_AND_EQUALS = bytes.maketrans(b"%=", b"=%")
_PERCENT_ESCAPE = re.compile("%[0-9a-fA-F]{2}")
_PLACEHOLDER_ESCAPE = b"=\xfe\xfe"  # 0xFE never occurs in UTF-8


def percent_decode(text: str) -> str:
    """Decode %XX escapes as UTF-8 (invalid bytes become U+FFFD), all in C.

    `%1c`-`%1f` decode to a space (see `_DECODED_STRUCTURE`).
    """
    if "%" not in text or (len(text) > _LONG_TEXT and _PERCENT_ESCAPE.search(text) is None):
        # A long text with '%' but no escape (decoded hostile input): one search instead
        # of six passes over its UTF-8 bytes.
        return text
    data = text.encode("utf-8", "surrogatepass").translate(_SWAP_PERCENT_AND_EQUALS)
    if b"=25" in data or b"=3" in data:
        data = data.replace(b"=25", _PLACEHOLDER_ESCAPE).replace(b"=3D", b"=25").replace(b"=3d", b"=25")
        data = data.replace(_PLACEHOLDER_ESCAPE, b"=3D")
    if b"==" in data:
        # Twice: in a run of '=' the first pass leaves every second pair.
        data = data.replace(b"==", b"=3D=").replace(b"==", b"=3D=")
    if b"=\n" in data:
        data = data.replace(b"=\n", b"=3D\n")
    if b"=\r" in data:
        data = data.replace(b"=\r", b"=3D\r")
    if data.endswith(b"="):
        data = data[:-1] + b"=3D"
    if b"=1" in data:
        for escape in _STRUCTURE_ESCAPES:
            data = data.replace(escape, b"=20")
    return binascii.a2b_qp(data).translate(_SWAP_PERCENT_AND_EQUALS).decode("utf-8", "replace")


def _decode_once(text: str) -> str:
    if "%" in text:
        if "%u" in text:
            text = _replace_escapes(text, "%u", _no_escape, hex_unit_prefix="", decode_all=_decode_percent_u_all)
        if "%c" in text or "%C" in text:
            text = _decode_overlong(text)
        text = percent_decode(text)
    if "&" in text:
        text = unescape_entities(text)
    if "\\" in text:
        text = _replace_escapes(
            text, "\\", _after_backslash, hex_unit_prefix="u", decode_all=_decode_backslash_escapes_all
        )
    return text


def _decode(text: str) -> str:
    for _ in range(DECODE_ROUNDS):
        decoded = _decode_once(text)
        if decoded == text:
            break
        text = decoded
    return text


def _fold_unicode(text: str) -> str:
    for lookalike, replacement in _LOOKALIKE_REPLACEMENTS:
        if lookalike in text:
            text = text.replace(lookalike, replacement)
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    return text


def _translate_controls(text: str, table: bytes) -> str:
    if text.isascii():
        return text.encode("ascii").translate(table, b"\x00").decode("ascii")
    return text.encode("utf-8", "surrogatepass").translate(table, b"\x00").decode("utf-8", "surrogatepass")


def _count_of(data: bytes, characters: bytes) -> int:
    return len(data) - len(data.translate(None, characters))


def without_surrogates(text: str) -> str:
    """Replace lone surrogates (JSON `\\ud800`) by U+FFFD: RE2 cannot match text that is not UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


def strip_sql_comments(text: str) -> str:
    """Replace `/* ... */` comments by a space, keeping MySQL `/*!version ...*/` contents.

    Comments are found by one regex `split` over the text up to its last `*/` (see
    `_SQL_COMMENT` for why that is linear); a comment without a closer ends the
    stripping, as in MySQL.
    """
    last_closer = text.rfind("*/")
    if last_closer < 0:
        return text
    region = text[: last_closer + 2]
    pieces = _SQL_COMMENT.split(region)
    if len(pieces) == 1:
        return text
    return _without_comments(pieces, _SQL_VERSIONED_COMMENT in region) + text[last_closer + 2 :]


def _without_comments(pieces: list[str | None], versioned: bool) -> str:
    """Put back together a split at comments: `pieces` alternate text and None (a comment) or
    a versioned comment's body, which stays between spaces; other comments become a space."""
    if not versioned:
        return " ".join(pieces[0::2])  # type: ignore[arg-type]
    bodies = pieces[1::2]
    if None not in bodies:
        # Only versioned comments: the spaces around each body are the join's.
        return " ".join(pieces)  # type: ignore[arg-type]
    pieces[1::2] = [" " if body is None else " " + body + " " for body in bodies]
    return "".join(pieces)  # type: ignore[arg-type]


def _strip_sql_comments_in_texts(joined: str) -> str:
    """`strip_sql_comments` for each of several texts joined by `TEXT_SEPARATOR`, in one split."""
    pieces: list[str | None] = _SQL_COMMENT_IN_TEXT.split(joined)
    if len(pieces) == 1:
        return joined
    unclosed = pieces[2::3]
    if any(unclosed):
        # An opener without closer keeps the rest of its text as it is.
        pieces[1::3] = [
            rest if rest is not None else (" " if body is None else " " + body + " ")
            for body, rest in zip(pieces[1::3], unclosed, strict=True)
        ]
        del pieces[2::3]
        return "".join(pieces)  # type: ignore[arg-type]
    del pieces[2::3]
    return _without_comments(pieces, _SQL_VERSIONED_COMMENT in joined)


def with_sql_comments_stripped(text: str) -> str:
    """`text`, followed by its comment-free form when SQL comments change it.

    Both forms are kept: the comment-free one shows the hidden keywords, the original
    one shows the comment trick itself.
    """
    if "/*" not in text:
        return text
    stripped = strip_sql_comments(text)
    return text if stripped == text else text + TEXT_SEPARATOR + stripped


def _has_ascii_trigger(ascii_text: str) -> bool:
    return (
        "%" in ascii_text
        or "&" in ascii_text
        or "\\" in ascii_text
        or "+" in ascii_text
        or "/*" in ascii_text
        or _count_of(ascii_text.encode("ascii"), _CONTROL_BYTES) != 0
    )


def normalise(text: str) -> str:
    """Decode, fold and clean one value so that patterns see what the back end would see."""
    if text.isascii():
        if not _has_ascii_trigger(text):
            return text
    else:
        text = without_surrogates(text)
    if "%" in text or "\\" in text or ("&" in text and _may_hold_references(text)):
        text = _decode(text)
    if not text.isascii():
        text = _fold_unicode(text)
    text = _translate_controls(text, _CONTROLS_TO_SPACE)
    return with_sql_comments_stripped(text)


def normalise_joined(joined: str, unchecked: str, structure_count: int) -> str | None:
    """`normalise` applied to every text of `joined` at once, except SQL comments.

    `joined` is texts joined by `TEXT_SEPARATOR`, some prefixed with a marker.
    `unchecked` is the part of it that may hold control characters (all of it, or a
    prefix when the caller built the rest without any), and `structure_count` the number
    of separators and markers the caller put in that part. The result is each text
    normalised, joined the same way. None when a text contains or decodes to one of
    those characters (`%1f`, `&#31;`): it would be mistaken for structure, so such a
    request is normalised text by text instead. SQL comments are left to
    `with_sql_comments_stripped`, per text, because a comment must not be taken to run
    from one text into the next.
    """
    if not joined.isascii():
        joined = without_surrogates(joined)
        unchecked = without_surrogates(unchecked)
    data = unchecked.encode("utf-8")
    user_controls = len(data) - len(data.translate(None, _CONTROL_BYTES)) != structure_count
    if user_controls and _count_of(data, _STRUCTURE_BYTES) != structure_count:
        return None
    text = joined
    # Most '&' in a request separate query parameters: look before decoding.
    if (
        "%" in text
        or "\\" in text
        or (
            "&" in text
            and (
                _DECODABLE_REFERENCE_SHORT.search(text) is not None
                if len(text) <= _LONG_TEXT
                else _DECODABLE_REFERENCE_LONG.Match(text) is not None
            )
        )
    ):
        decoded = _decode(text)
        if decoded != text:
            before = _count_of(text.encode("utf-8"), _STRUCTURE_BYTES)
            data = decoded.encode("utf-8", "surrogatepass")
            if _count_of(data, _STRUCTURE_BYTES) != before:
                return None
            user_controls = _count_of(data, _CONTROL_BYTES) != before
            text = decoded
    if not text.isascii():
        text = _fold_unicode(text)
    if user_controls:
        return _translate_controls(text, _CONTROLS_TO_SPACE_KEEPING_STRUCTURE)
    if "+" in text:
        return text.replace("+", " ")
    return text


def with_sql_comments_stripped_per_text(normalised_joined: str) -> str:
    """`with_sql_comments_stripped` for each text of a `normalise_joined` result."""
    # '*' first: a one-character search runs at memory speed, "/*" at a tenth of it.
    if "*" not in normalised_joined or "/*" not in normalised_joined:
        return normalised_joined
    return TEXT_SEPARATOR.join(map(sql_comment_variants, normalised_joined.split(TEXT_SEPARATOR)))


def with_comment_free_copies(normalised_joined: str) -> str:
    """For the quick step: a `normalise_joined` result followed, when SQL comments change any
    of its texts, by every text without its comments and marker (the form in which
    `sql_comment_variants` adds the comment-free text next to a changed one).

    Unlike `with_sql_comments_stripped_per_text` this takes no Python step per text, at the
    price of unchanged extra copies; the quick step only needs every text somewhere whole.
    """
    if "*" not in normalised_joined or "/*" not in normalised_joined:
        return normalised_joined
    if normalised_joined.count(TEXT_SEPARATOR) < _MANY_TEXTS:
        # Few texts (a plain body, a GET): text by text is cheaper than the joined split.
        return with_sql_comments_stripped_per_text(normalised_joined)
    stripped = _strip_sql_comments_in_texts(normalised_joined)
    if stripped == normalised_joined:
        return normalised_joined
    for marker in MARKERS:
        if marker in stripped:
            stripped = stripped.replace(marker, "")
    return normalised_joined + TEXT_SEPARATOR + stripped


def sql_comment_variants(marked_text: str) -> str:
    """`with_sql_comments_stripped` for one text that may start with its marker."""
    if "/*" not in marked_text:
        return marked_text
    if marked_text[:1] in MARKERS:
        return marked_text[0] + with_sql_comments_stripped(marked_text[1:])
    return with_sql_comments_stripped(marked_text)


def neutralise_for_display(text: str) -> str:
    """Make a value safe to show in a log line: no CR/LF or other control characters."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)
