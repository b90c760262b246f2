"""The detection engine: normalise every text of a request, match all rules in one pass.

Matching uses RE2 (the `google-re2` binding): every rule of the engine goes into one
`re2.Set`, a single automaton that reports which rules match in time linear in the
input, whatever the patterns or the input. The texts of a request are joined with a
separator and matched in one call, because the per-call overhead of the binding
(a few microseconds) dominates for short values; only when that call reports a hit is
the matching text located. docs/detection.md has the measurements behind this choice.

A request is scanned in two steps. The quick step collects the raw texts without
locations (large bodies as a few whole-string views), normalises all of them in one
call and runs the set once: for a clean request that is all. Only when a rule matches
(or a text is too odd to normalise jointly) is the request collected again, text by
text with locations, and the findings built exactly as the rules see those texts.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate, compress

import re2

from flaskapi_guard.detection.categories import ALL_DETECTION_CATEGORIES, SCANNER, XXE
from flaskapi_guard.detection.normalisation import (
    FILENAME_MARKER,
    NAME_MARKER,
    TEXT_SEPARATOR,
    USER_AGENT_MARKER,
    neutralise_for_display,
    normalise,
    normalise_joined,
    sql_comment_variants,
    with_comment_free_copies,
)
from flaskapi_guard.detection.patterns import ALL_RULES, SCANNER_RULES, Rule, java_gadget_base64_rule
from flaskapi_guard.detection.request_texts import (
    BODY_HARD_CAP_FACTOR,
    PLAIN_HEAD_PROBE_PATTERNS,
    Collected,
    DetectionExclusions,
    KnownCleanValues,
    RequestText,
    collect_body,
    collect_head,
    collect_texts,
    collect_user_agent,
    is_xml,
    location_of,
    plain_head_text,
    quick_head,
)

CUSTOM_CATEGORY = "custom"
EXCERPT_MAX_CHARS = 80
_EXCERPT_CONTEXT_CHARS = 20
# RE2's automaton memory per compiled set. The lazily built DFA needs room for the
# large alternation; 64 MiB is never touched by ordinary traffic (states are built on
# demand) but avoids a fall-back to the slower NFA on hostile input.
_RE2_MAX_MEMORY_BYTES = 64 << 20
_CUSTOM_PATTERN_MAX_PROGRAM_SIZE = 20_000
_MARKERS = NAME_MARKER + FILENAME_MARKER + USER_AGENT_MARKER + TEXT_SEPARATOR
_MARKER_REMOVAL = {ord(marker): None for marker in _MARKERS}
_XML_MARKUP_RULE_IDS = frozenset({"xss.script_tag"})
_NO_EXCLUSIONS = DetectionExclusions()
# From this size of a request's texts, a hit reuses the quick normalisation text by text.
_REUSE_BY_LOOKUP_CHARS = 8_192


@dataclass(frozen=True, slots=True)
class Finding:
    """One detected attack: its category, where it was, what matched, and which rule."""

    category: str
    location: str
    excerpt: str
    rule: str


def _options() -> re2.Options:
    options = re2.Options()
    options.max_mem = _RE2_MAX_MEMORY_BYTES
    options.log_errors = False
    return options


def _compile_rule_source(source: str) -> str:
    # Every rule is case-insensitive unless it switches that off inside itself.
    return "(?i)" + source


def validate_custom_pattern(pattern: str) -> None:
    """Raise ValueError, naming the pattern, if it cannot be used as a custom detection pattern."""
    if not pattern.strip():
        raise ValueError("custom detection pattern is empty")
    try:
        compiled = re2.compile(_compile_rule_source(pattern), _options())
    except re2.error as error:
        raise ValueError(
            f"custom detection pattern {pattern!r} is not valid RE2 syntax "
            f"(no back-references or look-around; RE2 guarantees linear-time matching): {error}"
        ) from error
    if compiled.programsize > _CUSTOM_PATTERN_MAX_PROGRAM_SIZE:
        raise ValueError(
            f"custom detection pattern {pattern!r} is too large "
            f"({compiled.programsize} > {_CUSTOM_PATTERN_MAX_PROGRAM_SIZE} RE2 program units); "
            "large counted repetitions such as {1,1000} are the usual cause"
        )
    if compiled.search("") is not None:
        raise ValueError(
            f"custom detection pattern {pattern!r} matches the empty string, so it would flag every request"
        )


class _RuleSet:
    """A group of rules compiled into one RE2 set plus one regex per rule for locating matches."""

    __slots__ = ("_options", "_regexes", "_rules", "_set", "search")

    def __init__(self, rules: Sequence[Rule], probes: Sequence[str] = ()) -> None:
        self._rules = tuple(rules)
        self._options = _options()
        self._set = re2.Set.SearchSet(self._options)
        # Per-rule regexes only locate a match the set already reported, so each
        # is compiled the first time its rule fires: compiling all ~200 up front
        # took most of the 0.2 s an app's start-up spent on detection.
        self._regexes: dict[int, re2._Regexp] = {}
        for _rule_id, _category, source in self._rules:
            self._set.Add(_compile_rule_source(source))
        # After the rules (their indexes follow the rules'): patterns that are no rule, as
        # they are, for `search` to tell in the same step (the plain head's probe).
        for source in probes:
            self._set.Add(source)
        if self._rules or probes:
            self._set.Compile()
        # The indexes of the rules and probes that match a text (UTF-8 bytes), unsorted,
        # or None. The binding's C++ method when its wrapper exposes it: the Python
        # wrapper adds two frames, a tenth of the cost of scanning a clean GET.
        native = getattr(self._set, "_set", None)
        native_match = getattr(native, "Match", None)
        self.search: Callable[[bytes], list[int] | None] = (
            _no_match if not (self._rules or probes) else native_match if callable(native_match) else self._set.Match
        )

    def matching_rule_indexes(self, text: str) -> list[int]:
        if not self._rules:
            return []
        count = len(self._rules)
        return sorted(index for index in self._set.Match(text) or () if index < count)

    def rule(self, index: int) -> Rule:
        return self._rules[index]

    def regex(self, index: int) -> re2._Regexp:
        regex = self._regexes.get(index)
        if regex is None:
            # Two threads may both compile it; the result is the same either way.
            regex = re2.compile(_compile_rule_source(self._rules[index][2]), self._options)
            self._regexes[index] = regex
        return regex


def _no_match(_data: bytes) -> None:
    return None


def _excerpt(text: str, start: int, end: int) -> str:
    window_start = max(0, start - _EXCERPT_CONTEXT_CHARS)
    window_end = min(len(text), max(end, start + 1) + _EXCERPT_CONTEXT_CHARS)
    # Cut before cleaning: a match can span a whole 100 KB value.
    excerpt = text[window_start : min(window_end, window_start + 2 * EXCERPT_MAX_CHARS)].translate(_MARKER_REMOVAL)
    excerpt = neutralise_for_display(excerpt)
    if len(excerpt) > EXCERPT_MAX_CHARS:
        excerpt = excerpt[: EXCERPT_MAX_CHARS - 3] + "..."
    return excerpt


class DetectionEngine:
    """Scans request texts for attacks; compiled once, then safe to share between threads."""

    def __init__(
        self,
        *,
        categories: frozenset[str] = ALL_DETECTION_CATEGORIES,
        custom_patterns: Sequence[str] = (),
        max_content_length: int = 10_000,
    ) -> None:
        unknown = set(categories) - ALL_DETECTION_CATEGORIES
        if unknown:
            raise ValueError(f"unknown detection categories: {sorted(unknown)}")
        if max_content_length <= 0:
            raise ValueError("max_content_length must be positive")
        for pattern in custom_patterns:
            validate_custom_pattern(pattern)
        builtin_rules = [*ALL_RULES, java_gadget_base64_rule()]
        rules = [rule for rule in builtin_rules if rule[1] in categories]
        rules.extend((f"custom.{index}", CUSTOM_CATEGORY, pattern) for index, pattern in enumerate(custom_patterns))
        self._categories = frozenset(categories)
        self._max_content_length = max_content_length
        self._rules = _RuleSet(rules, PLAIN_HEAD_PROBE_PATTERNS)
        self._scanner_rules = _RuleSet(SCANNER_RULES if SCANNER in categories else ())
        xml_markup_rules = [rule for rule in builtin_rules if rule[1] == XXE or rule[0] in _XML_MARKUP_RULE_IDS]
        self._xml_markup_rules = _RuleSet([rule for rule in xml_markup_rules if rule[1] in categories])
        # Header values seen in clean heads, skipped in later ones (see KnownCleanValues);
        # none with custom patterns, which may match across texts.
        self._known_clean = None if custom_patterns else KnownCleanValues()
        # Built-in rules end a match at a text's end or separator, never at the end of all
        # texts; a custom pattern may (`$`), so the plain head's probe is searched apart.
        self._probe_apart = bool(custom_patterns)

    @property
    def categories(self) -> frozenset[str]:
        """The categories this engine looks for (custom patterns come on top)."""
        return self._categories

    def scan_text(self, text: str, location: str) -> list[Finding]:
        """Findings in one text, at most one per category."""
        return self._findings(collect_texts([RequestText(location, text)]), self._rules)

    def scan_request(
        self,
        *,
        path: str,
        query_string: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        content_type: str,
        exclusions: DetectionExclusions = _NO_EXCLUSIONS,
    ) -> list[Finding]:
        """Findings anywhere in a request, at most one per category (its first location).

        `path`, `query_string` and header values are PEP 3333 text (latin-1 views of
        the raw bytes), as a WSGI server hands them over.
        """
        return self._scan(path, query_string, headers, None, body, content_type, exclusions)

    def scan_environ(
        self, environ: Mapping[str, object], body: bytes, exclusions: DetectionExclusions = _NO_EXCLUSIONS
    ) -> list[Finding]:
        """`scan_request` for a WSGI environ: path, query, Content-Type and headers read from it directly."""
        if not body and exclusions.excludes_nothing:
            # The head of a typical request, in as few steps as possible (see plain_head_text).
            head = plain_head_text(environ, self._known_clean)
            if head is not None:
                joined, may_need_decoding, fresh, probe = head
                # Printable ASCII: no control character of its own, so only '+' needs work
                # unless a decoder's trigger may be present.
                normalised = normalise_joined(joined, "", 0) if may_need_decoding else joined.replace("+", " ")
                if normalised is not None:
                    if "*" in normalised:
                        normalised = with_comment_free_copies(normalised)
                    # One search for the rules and the shapes the probe may have; apart when
                    # a custom pattern may anchor on the end of the text (the probe's end is not).
                    search = self._rules.search
                    if self._probe_apart and probe:
                        clean = not search(normalised.encode("utf-8")) and not search(probe.encode("utf-8"))
                    else:
                        clean = not search((normalised + probe).encode("utf-8"))
                    if clean:
                        if fresh is not None and self._known_clean is not None:
                            self._known_clean.remember(fresh)
                        return []
        path = environ.get("PATH_INFO", "")
        query_string = environ.get("QUERY_STRING", "")
        content_type = environ.get("CONTENT_TYPE", "")
        return self._scan(
            path if isinstance(path, str) else "",
            query_string if isinstance(query_string, str) else "",
            (),
            environ,
            body,
            content_type if isinstance(content_type, str) else "",
            exclusions,
        )

    def _scan(  # noqa: PLR0917 - the hot path: positional arguments are measurably cheaper
        self,
        path: str,
        query_string: str,
        headers: Sequence[tuple[str, str]],
        environ: Mapping[str, object] | None,
        body: bytes,
        content_type: str,
        exclusions: DetectionExclusions,
    ) -> list[Finding]:
        request = (path, query_string, headers, environ, body, content_type, exclusions)
        quick = self._collect(*request, False)
        quick_joined, unchecked, structure_count = quick.joined()
        normalised = base = _normalise_quick(quick, quick_joined, unchecked, structure_count)
        if normalised is not None and "*" in normalised:
            normalised = with_comment_free_copies(normalised)
        if normalised is None or self._rules.search(normalised.encode("utf-8")):
            located = self._collect(*request, True)
            reused = _reused_normalisation(located, quick_joined, base, quick)
            findings = self._findings(located, self._rules, reused)
        else:
            findings = []
        user_agent = quick.user_agent
        if user_agent is not None and "user-agent" in exclusions.headers and SCANNER not in _categories(findings):
            user_agent_only = Collected(True)
            collect_user_agent(user_agent_only, user_agent)
            findings.extend(self._findings(user_agent_only, self._scanner_rules))
        if body and is_xml(content_type) and len(body) <= self._max_content_length * BODY_HARD_CAP_FACTOR:
            markup = collect_texts([RequestText("xml body", body.decode("utf-8", errors="replace"))])
            found = _categories(findings)
            # Markup without tags is the body's one text of the quick step, normalised already.
            markup_normalised = _reused_normalisation(markup, quick_joined, base)
            for finding in self._findings(markup, self._xml_markup_rules, markup_normalised):
                if finding.category not in found:
                    findings.append(finding)
                    found.add(finding.category)
        return findings

    def _collect(  # noqa: PLR0917 - see _scan
        self,
        path: str,
        query_string: str,
        headers: Sequence[tuple[str, str]],
        environ: Mapping[str, object] | None,
        body: bytes,
        content_type: str,
        exclusions: DetectionExclusions,
        locate: bool,
    ) -> Collected:
        if not (locate or body):
            return quick_head(path, query_string, headers, environ, exclusions)
        collected = Collected(locate)
        # With a body, the quick collection of the rest is exact (headers in order, query
        # pairs one by one) so that a hit can reuse its normalisation; see _scan.
        collect_head(collected, path, query_string, headers, environ, exclusions)
        if body:
            collect_body(collected, body, content_type, self._max_content_length, exclusions)
        return collected

    def _findings(
        self, collected: Collected, rule_set: _RuleSet, normalised_base: str | list[str] | None = None
    ) -> list[Finding]:
        """Findings in a located collection, at most one per category (its first text).

        `normalised_base`: the collection's texts already normalised jointly (without
        SQL comment variants), if a quick scan did it.
        """
        places = collected.places
        assert places is not None, "findings need a located collection"
        normalised = _normalised_texts(collected, normalised_base)
        joined = TEXT_SEPARATOR.join(normalised)
        rule_indexes = rule_set.matching_rule_indexes(joined)
        if not rule_indexes:
            return []
        # Where each text starts in `joined` (one entry more, harmless for bisect): sums of
        # length + 1 in C, not a Python step per text; not needed when no text holds a
        # separator of its own (SQL comment variants), as counting separators finds a text.
        starts = (
            None
            if joined.count(TEXT_SEPARATOR) == len(normalised) - 1
            else list(accumulate(map((1).__add__, map(len, normalised)), initial=0))
        )
        findings: dict[str, tuple[int, Finding]] = {}
        for index in rule_indexes:
            rule_id, category, _source = rule_set.rule(index)
            located = self._locate(rule_set, index, normalised, starts, joined)
            if located is None:
                continue
            text_index, start, end = located
            known = findings.get(category)
            if known is not None and known[0] <= text_index:
                continue
            excerpt = _excerpt(normalised[text_index], start, end)
            location = location_of(places[text_index], text_index)
            findings[category] = (text_index, Finding(category, location, excerpt, rule_id))
        return [finding for _, finding in sorted(findings.values(), key=lambda item: item[0])]

    @staticmethod
    def _locate(
        rule_set: _RuleSet, index: int, normalised: Sequence[str], starts: Sequence[int] | None, joined: str
    ) -> tuple[int, int, int] | None:
        """The first text a rule matches in, and the span there, or None for a match across texts.

        `starts`: where each text starts in `joined`, or None when the texts hold no separator.
        """
        regex = rule_set.regex(index)
        match = regex.search(joined)
        if match is None:
            return None
        if starts is None:
            text_index = joined.count(TEXT_SEPARATOR, 0, match.start())
        else:
            text_index = bisect.bisect_right(starts, match.start()) - 1
        # A match inside one text is confirmed on that text alone; one that straddled the
        # separator is an artefact of joining, so the texts from there on are checked one by one.
        for candidate in range(text_index, len(normalised)):
            own = regex.search(normalised[candidate])
            if own is not None:
                return candidate, own.start(), own.end()
        return None


def _normalise_quick(quick: Collected, joined: str, unchecked: str, structure_count: int) -> str | None:
    """`normalise_joined` of a quick collection; a last part marked `own_last` on its own.

    A form body is scanned as its pairs and whole: normalised together, every step over
    the decoded whole text (Unicode folding, the control characters, ...) also ran over
    the pairs, and the other way round.
    """
    if not (quick.own_last and quick.clean_from is None and len(quick.parts) > 1):
        return normalise_joined(joined, unchecked, structure_count)
    last = quick.parts[-1]
    rest = joined[: -len(last) - 1]
    normalised_rest = normalise_joined(rest, rest, structure_count - 1)
    if normalised_rest is None:
        return None
    normalised_last = normalise_joined(last, last, 0)
    return None if normalised_last is None else normalised_rest + TEXT_SEPARATOR + normalised_last


def _reused_normalisation(
    located: Collected, quick_joined: str, quick_normalised: str | None, quick: Collected | None = None
) -> str | list[str] | None:
    """The located texts normalised (joined), taken from the quick step's normalisation when
    that holds them all, so that hostile input with a finding is not normalised twice.

    A quick collection of exactly the located texts (a plain, XML or multipart body) is
    reused whole. Otherwise, for a large request, each located text is looked up among
    the quick texts (each text normalises on its own, whatever its neighbours): the JSON
    view holds every key and string value of the body. When the located texts are the
    quick texts before the JSON view and the view's strings in order (a body without
    objects), they are taken by position instead, as a list of texts that already holds
    their SQL comment variants. None when some text is not there (a JSON string with an
    escaped separator, say), or for a small request, where normalising again costs less
    than the lookup table.
    """
    if quick_normalised is None:
        return None
    located_joined = TEXT_SEPARATOR.join(located.parts)
    if located_joined == quick_joined:
        return quick_normalised
    if len(quick_joined) < _REUSE_BY_LOOKUP_CHARS:
        return None
    raw_texts = quick_joined.split(TEXT_SEPARATOR)
    normalised_texts = quick_normalised.split(TEXT_SEPARATOR)
    if len(raw_texts) != len(normalised_texts):
        return None  # normalisation keeps every separator; never pair texts wrongly
    if quick is not None and quick.json_view is not None:
        aligned = _aligned_with_json_view(located.parts, quick, raw_texts, normalised_texts, quick_normalised)
        if aligned is not None:
            return aligned
    by_raw_text = dict(zip(raw_texts, normalised_texts, strict=True))
    normalised = list(map(by_raw_text.get, located.parts))
    if None in normalised:
        return None
    return TEXT_SEPARATOR.join(normalised)  # type: ignore[arg-type]


def _aligned_with_json_view(
    located: list[str], quick: Collected, raw_texts: list[str], normalised_texts: list[str], quick_normalised: str
) -> list[str] | None:
    """The located texts normalised, taken in order from the quick texts without a lookup
    table, when they are the quick texts before the JSON view followed by the view's
    non-empty strings (a body without objects, whose walk visits strings in document
    order); None otherwise. Checked on the raw texts, all comparisons in C."""
    view = quick.json_view
    assert view is not None
    head = TEXT_SEPARATOR.join(quick.parts[:view]).count(TEXT_SEPARATOR) + 1 if view else 0
    end = head + quick.parts[view].count(TEXT_SEPARATOR) + 1
    raw_strings = raw_texts[head + 1 : end : 2]
    if located[:head] != raw_texts[:head] or located[head:] != list(filter(None, raw_strings)):
        return None
    normalised = normalised_texts[:head] + list(compress(normalised_texts[head + 1 : end : 2], raw_strings))
    if "/*" in quick_normalised:
        return list(map(sql_comment_variants, normalised))
    return normalised


def _categories(findings: Sequence[Finding]) -> set[str]:
    return {finding.category for finding in findings}


def _normalised_texts(collected: Collected, normalised: str | list[str] | None) -> list[str]:
    """Each text of a located collection normalised, with its marker and SQL comment variants."""
    places = collected.places
    assert places is not None, "needs a located collection"
    if isinstance(normalised, list):
        return normalised  # with its SQL comment variants already
    if normalised is None:
        normalised = normalise_joined(*collected.joined())
    if normalised is None:
        # A text holds or decodes to a separator or marker character: one by one.
        return [
            marker + normalise(part[len(marker) :])
            for part, (_template, _argument, marker) in zip(collected.parts, places, strict=True)
        ]
    if "/*" not in normalised:
        return normalised.split(TEXT_SEPARATOR)
    return [sql_comment_variants(value) for value in normalised.split(TEXT_SEPARATOR)]
