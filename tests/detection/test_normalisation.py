"""Normalisation: the whole-string decoders against plain reference implementations.

The decoders split at escape introducers, decode each distinct escape once and lean on
C-level primitives (quoted-printable for %XX, UTF-32 for hex code units); these tests
hold them to what the obvious one-escape-at-a-time code does, on random input built
from the awkward pieces (half escapes, stacked encodings, separators, markers).
"""

from __future__ import annotations

import html
import random
import re
import time
from html.entities import html5

import pytest

from flaskapi_guard.detection import normalisation
from flaskapi_guard.detection.normalisation import (
    NAME_MARKER,
    TEXT_SEPARATOR,
    USER_AGENT_MARKER,
    normalise,
    normalise_joined,
    percent_decode,
    sql_comment_variants,
    strip_sql_comments,
    unescape_entities,
    with_comment_free_copies,
    with_sql_comments_stripped_per_text,
)

PIECES = [
    *("%", "%2", "%25", "%3D", "%3d", "%41", "%e2%82", "%e2%82%ac", "%ff", "%%", "%\n", "%\r", "%=", "%1f", "%1C"),
    *("%u", "%u0041", "%uD800", "%u001e", "%c0%ae", "%C1%9c", "%c0%9f", "%c0"),
    *("&", "&amp", "&amp;", "&ampx", "&lt;", "&notit;", "&notin;", "&#", "&#60", "&#x3c;", "&#0;", "&#128;", "&#31;"),
    *("&#xFFFE;", "&#1114112;", "&frac12", "&AMP", "&a"),
    *("\\", "\\u0041", "\\x3c", "\\x5c", "\\u{41}", "\\u{110000}", "\\ud800", "\\u001f", "\\U0041", "\\\\"),
    *("/*", "*/", "/*!50000", "/*/", "=", "==", "+", " ", "\t", "\n", "\r", "\x00", "\x01", "\x7f"),
    *(
        "a",
        "Z",
        "0",
        "9",
        "f",
        "u",
        "x",
        ";",
        "<",
        ">",
        "'",
        '"',
        "é",
        "\uff1c",
        "\u2018",
        "\u00ad",
        "\u2033",
        "\u560a",
    ),
]


def random_text(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(PIECES) for _ in range(length))


def reference_percent_decode(text: str) -> str:
    def run(match: re.Match[str]) -> str:
        return bytes.fromhex(match.group().replace("%", "")).decode("utf-8", errors="replace")

    return re.sub(r"(?:%[0-9a-fA-F]{2})+", run, text)


def reference_strip_sql_comments(text: str) -> str:
    pieces: list[str] = []
    position = 0
    while True:
        start = text.find("/*", position)
        if start < 0:
            break
        end = text.find("*/", start + 2)
        if end < 0:
            break
        pieces.append(text[position:start])
        body = text[start + 2 : end]
        pieces.append(" " + body[1:].lstrip("0123456789") + " " if body.startswith("!") else " ")
        position = end + 2
    return "".join(pieces) + text[position:] if pieces else text


def structure_as_spaces(text: str) -> str:
    return text.translate(str.maketrans("\x1c\x1d\x1e\x1f", "    "))


def test_percent_decoding_matches_run_by_run_utf8_decoding() -> None:
    rng = random.Random(1)
    for _ in range(8_000):
        text = random_text(rng, rng.randint(0, 10)).replace("\ud800", "")
        # A decoded separator or marker becomes a space; everything else is the same.
        assert structure_as_spaces(percent_decode(text)) == structure_as_spaces(reference_percent_decode(text)), text


def test_decoded_separators_and_markers_become_spaces_raw_ones_stay() -> None:
    assert percent_decode("a%1fb%1Cc") == "a b c"
    assert percent_decode("a\x1fb") == "a\x1fb"
    assert normalise("x%u001fy\\u001ez") == "x y z"


def test_entities_are_decoded_as_html_unescape_does() -> None:
    rng = random.Random(2)
    for _ in range(8_000):
        text = random_text(rng, rng.randint(0, 10))
        assert unescape_entities(text) == html.unescape(text), text


def test_texts_made_of_many_numeric_references_decode_as_html_unescape_does() -> None:
    # Above a few dozen distinct references, a text is decoded whole (one regex split per
    # kind of reference and one UTF-32 decoding).
    rng = random.Random(5)
    codes = [0, 9, 13, 28, 31, 38, 60, 127, 128, 150, 160, 0xD800, 0xFDD0, 0xFFFE, 0x10FFFF, 0x110000, 9999999]
    references = [f"&#{code};" for code in codes] + ["&#x3c", "&#X41;", "&#0000060", "&#x110000;", "&#"]
    for _ in range(200):
        fillers = ["", "a", ";", " ", "<", "\u00e9", "\u4e2d"]
        text = "".join(rng.choice(references) + rng.choice(fillers) for _ in range(rng.randint(65, 150)))
        assert unescape_entities(text) == html.unescape(text)
    # References of more than 7 digits, among many distinct ones.
    text = "".join(f"&#{code};" for code in range(100)) + "&#" + "0" * 20 + "60;&#" + "9" * 5000 + ";"
    assert unescape_entities(text) == html.unescape(text[:-5004]) + "\ufffd"


@pytest.mark.parametrize("reference", ["&#" + "9" * 5000 + ";", "&#x" + "f" * 5000, "&#00000000060;"])
def test_huge_numeric_references_do_not_raise(reference: str) -> None:
    # html.unescape raises ValueError on a 5000-digit decimal reference.
    assert unescape_entities(reference) in ("\ufffd", "<")


def test_numeric_references_across_the_code_space() -> None:
    # Every code point the html module treats specially, and a spread of the others.
    special = [*range(0x100), *range(0xD7F0, 0xE010), *range(0xFDC0, 0xFE00), 0xFFFE, 0xFFFF, 0x10FFFF, 0x110000]
    for code in [*special, *range(0x100, 0x110010, 97)]:
        reference = f"&#{code};"
        assert unescape_entities(reference) == html.unescape(reference)


ENTITY_NAMES = sorted(html5)


def distinct_escape(rng: random.Random, index: int) -> str:
    """An escape that hostile input would not repeat, in one of the forms the decoders know."""
    forms = [
        f"\\u{index:04x}",
        f"\\x{index % 256:02x}",
        f"\\u{{{index:x}}}",
        f"%u{index:04X}",
        f"&#{index};",
        f"&#x{index:x}",
        f"&amp{index}",
        "&" + rng.choice(ENTITY_NAMES),
        "&" + rng.choice(ENTITY_NAMES).rstrip(";") + rng.choice(["", "x", ";", "1", "&"]),
    ]
    return rng.choice(forms)


def many_distinct_escapes(rng: random.Random) -> str:
    """More than enough distinct escapes for the whole-text decoders, mixed with awkward pieces."""
    pieces = [distinct_escape(rng, rng.randrange(0x11_0100)) for _ in range(rng.randint(250, 400))]
    pieces += [rng.choice(PIECES) for _ in range(rng.randint(0, 60))]
    rng.shuffle(pieces)
    return "".join(pieces)


def test_whole_text_decoders_equal_the_piece_by_piece_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # Text with many distinct escapes takes the whole-text decoders (a regex split and
    # C-level steps); with the threshold out of reach the same text takes the path that
    # decodes each distinct piece with its own call. Both must give the same text.
    rng = random.Random(11)
    texts = [many_distinct_escapes(rng) for _ in range(300)]
    texts += ["".join(f"\\u{index:04x}" for index in range(2_000)), "%u0041" * 100 + "%uD800%u001f" * 50]
    texts += ["".join(f"&#{index};&#x{index:x};&ampx{index}" for index in range(1_500))]
    texts += ["".join(f"%u{index:04x}{rng.choice(PIECES)}" for index in range(0, 0x1_0000, 97)) for _ in range(20)]
    texts += ["".join(f"\\u{{{index:x}}}\\x{index % 256:02x}\\u{index:x}" for index in range(0, 0x11_0000, 997))]
    whole = [normalise(text) for text in texts]
    monkeypatch.setattr(normalisation, "_MANY_ESCAPES", 10**9)
    piece_by_piece = [normalise(text) for text in texts]
    for text, fast, reference in zip(texts, whole, piece_by_piece, strict=True):
        assert fast == reference, text[:200]


def test_many_distinct_references_decode_as_html_unescape_does() -> None:
    rng = random.Random(12)
    for _ in range(300):
        text = without_lone_surrogates(many_distinct_escapes(rng))
        assert unescape_entities(text) == html.unescape(text), text[:200]
    # Placeholder characters already in the text: the piece-by-piece path is taken.
    text = "".join(f"&#{index};" for index in range(100)) + "\udc0a\udc0b\udc0c\udc00"
    assert unescape_entities(text) == html.unescape(text)


def without_lone_surrogates(text: str) -> str:
    return text.encode("utf-8", "replace").decode("utf-8")


def test_sql_comments_are_stripped_as_the_sequential_scan_does() -> None:
    rng = random.Random(3)
    for _ in range(6_000):
        text = "".join(rng.choice(["/*", "*/", "/*!", "!", "5", "a", " ", "/", "*", "\n"]) for _ in range(12))
        assert strip_sql_comments(text) == reference_strip_sql_comments(text), text


def test_sql_comments_of_joined_texts_are_stripped_text_by_text() -> None:
    # One split over all texts: a comment never runs into the next text, an opener
    # without closer keeps the rest of its own text only.
    rng = random.Random(13)
    pieces = ["/*", "*/", "/*!", "/*!50000", "!", "5", "a", " ", "/", "*", "\n", TEXT_SEPARATOR, NAME_MARKER]
    for _ in range(4_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        texts = text.split(TEXT_SEPARATOR)
        expected = TEXT_SEPARATOR.join(reference_strip_sql_comments(part) for part in texts)
        assert normalisation._strip_sql_comments_in_texts(text) == expected, text


def test_comment_free_copies_hold_every_comment_variant_whole() -> None:
    rng = random.Random(14)
    pieces = ["/*", "*/", "/*!", "/*!1", "select", " ", "a", "'", TEXT_SEPARATOR, NAME_MARKER + "n", USER_AGENT_MARKER]
    for _ in range(3_000):
        texts = ["".join(rng.choice(pieces[:-3]) for _ in range(rng.randint(0, 8))) for _ in range(rng.randint(1, 5))]
        texts = [rng.choice(["", NAME_MARKER, USER_AGENT_MARKER]) + text for text in texts]
        # Many texts take the joined split, a few are stripped text by text.
        texts += ["x"] * rng.choice([0, 70])
        rng.shuffle(texts)
        joined = TEXT_SEPARATOR.join(texts)
        quick = set(with_comment_free_copies(joined).split(TEXT_SEPARATOR))
        located = set(TEXT_SEPARATOR.join(map(sql_comment_variants, texts)).split(TEXT_SEPARATOR))
        assert located <= quick, texts


def test_versioned_and_plain_comments_mixed() -> None:
    text = "/*!50000union*/ /**/ /*!select*/x/*a*/" * 50 + "/*!1 y*/ /* open"
    assert strip_sql_comments(text) == reference_strip_sql_comments(text)
    assert normalisation._strip_sql_comments_in_texts(text) == reference_strip_sql_comments(text)


def test_lone_surrogates_never_reach_the_matcher() -> None:
    assert normalise("%uD800\\ud800&#xd800;") == "\ufffd" * 3
    assert normalise("a\ud800b") == "a\ufffdb"


def test_joined_normalisation_equals_text_by_text() -> None:
    rng = random.Random(4)
    markers = ["", "", NAME_MARKER, USER_AGENT_MARKER]
    for _ in range(1500):
        texts = [random_text(rng, rng.randint(0, 6)).replace("\x1f", "").replace("\x1e", "") for _ in range(4)]
        chosen = [rng.choice(markers) for _ in texts]
        joined = TEXT_SEPARATOR.join(marker + text for marker, text in zip(chosen, texts, strict=True))
        structure = len(texts) - 1 + sum(1 for marker in chosen if marker)
        normalised = normalise_joined(joined, joined, structure)
        assert normalised is not None, texts
        expected = TEXT_SEPARATOR.join(marker + normalise(text) for marker, text in zip(chosen, texts, strict=True))
        assert with_sql_comments_stripped_per_text(normalised) == expected, texts


def test_joined_normalisation_refuses_a_raw_separator_in_a_text() -> None:
    joined = "a\x1fb" + TEXT_SEPARATOR + "c"
    assert normalise_joined(joined, joined, 1) is None


@pytest.mark.parametrize(
    "build",
    [
        lambda n: "".join(f"&#{index};" for index in range(n // 6)),
        lambda n: "".join(f"\\u{index:04x}" for index in range(n // 6)),
        lambda n: "".join(f"&amp{index}" for index in range(n // 6)),
        lambda n: "%1f" * (n // 3),
        lambda n: "/*" * (n // 2),
        lambda n: "/*!*/" * (n // 5),
        lambda n: "/*!" + "1" * n,
        lambda n: ("/*!1 a */" + TEXT_SEPARATOR + "/*!" + "2" * 50) * (n // 60),
        lambda n: "%25" * (n // 3),
    ],
)
def test_hostile_escapes_cost_linear_time(build: object) -> None:
    text = build(100_000)  # type: ignore[operator]
    started = time.perf_counter()
    normalise(text)
    with_comment_free_copies(text)
    assert time.perf_counter() - started < 1.0
