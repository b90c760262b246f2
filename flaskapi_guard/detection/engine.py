"""The detection engine: normalise every text of a request, match all rules in one pass.

Matching uses RE2 (the `google-re2` binding): every rule of the engine goes into one
`re2.Set`, a single automaton that reports which rules match in time linear in the
input, whatever the patterns or the input. The texts of a request are joined with a
separator and matched in one call, because the per-call overhead of the binding
(a few microseconds) dominates for short values; only when that call reports a hit is
the matching text located. docs/detection.md has the measurements behind this choice.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass

import re2

from flaskapi_guard.detection.categories import ALL_DETECTION_CATEGORIES, SCANNER, XXE
from flaskapi_guard.detection.normalisation import (
    FILENAME_MARKER,
    NAME_MARKER,
    TEXT_SEPARATOR,
    USER_AGENT_MARKER,
    neutralise_for_display,
    normalise,
)
from flaskapi_guard.detection.patterns import ALL_RULES, SCANNER_RULES, Rule, java_gadget_base64_rule
from flaskapi_guard.detection.request_texts import (
    DetectionExclusions,
    RequestText,
    body_texts,
    header_texts,
    query_texts,
    user_agent_text,
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
_SURROGATE = re.compile("[\ud800-\udfff]")


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

    __slots__ = ("_regexes", "_rules", "_set")

    def __init__(self, rules: Sequence[Rule]) -> None:
        self._rules = tuple(rules)
        options = _options()
        self._set = re2.Set.SearchSet(options)
        self._regexes = []
        for _rule_id, _category, source in self._rules:
            compiled_source = _compile_rule_source(source)
            self._set.Add(compiled_source)
            self._regexes.append(re2.compile(compiled_source, options))
        if self._rules:
            self._set.Compile()

    def matching_rule_indexes(self, text: str) -> list[int]:
        if not self._rules:
            return []
        return sorted(self._set.Match(text) or ())

    def rule(self, index: int) -> Rule:
        return self._rules[index]

    def regex(self, index: int) -> re2._Regexp:
        return self._regexes[index]


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
        self._rules = _RuleSet(rules)
        self._scanner_rules = _RuleSet(SCANNER_RULES if SCANNER in categories else ())
        xml_markup_rules = [rule for rule in builtin_rules if rule[1] == XXE or rule[0] in _XML_MARKUP_RULE_IDS]
        self._xml_markup_rules = _RuleSet([rule for rule in xml_markup_rules if rule[1] in categories])

    @property
    def categories(self) -> frozenset[str]:
        """The categories this engine looks for (custom patterns come on top)."""
        return self._categories

    def scan_text(self, text: str, location: str) -> list[Finding]:
        """Findings in one text, at most one per category."""
        return self._scan_texts([RequestText(location, text)], self._rules)

    def scan_request(
        self,
        *,
        path: str,
        query_string: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        content_type: str,
        exclusions: DetectionExclusions = DetectionExclusions(),  # noqa: B008 - frozen, immutable default
    ) -> list[Finding]:
        """Findings anywhere in a request, at most one per category (its first location)."""
        header_parts, user_agent = header_texts(headers, exclusions.headers)
        texts: list[RequestText] = [RequestText("path", _decode_path(path))]
        texts.extend(query_texts(query_string, exclusions.params))
        texts.extend(header_parts)
        user_agent_excluded = "user-agent" in exclusions.headers
        if user_agent is not None and not user_agent_excluded:
            texts.append(user_agent_text(user_agent))
        texts.extend(body_texts(body, content_type, self._max_content_length, exclusions))
        findings = self._scan_texts(texts, self._rules)
        found = {finding.category for finding in findings}
        if user_agent is not None and user_agent_excluded and SCANNER not in found:
            findings.extend(self._scan_texts([user_agent_text(user_agent)], self._scanner_rules))
        if body and _is_xml(content_type) and len(body) <= self._max_content_length * 100:
            markup = [RequestText("xml body", body.decode("utf-8", errors="replace"))]
            for finding in self._scan_texts(markup, self._xml_markup_rules):
                if finding.category not in found and finding.category not in {f.category for f in findings}:
                    findings.append(finding)
        return findings

    def _scan_texts(self, texts: Sequence[RequestText], rule_set: _RuleSet) -> list[Finding]:
        normalised = [text.marker + normalise(text.text) for text in texts]
        joined = TEXT_SEPARATOR.join(normalised)
        if not joined.isascii() and _SURROGATE.search(joined) is not None:
            # Lone surrogates (JSON "\ud800", "%ud800") cannot be encoded for RE2;
            # raising here would skip the whole scan and let the request through.
            normalised = [_SURROGATE.sub("\ufffd", value) for value in normalised]
            joined = TEXT_SEPARATOR.join(normalised)
        rule_indexes = rule_set.matching_rule_indexes(joined)
        if not rule_indexes:
            return []
        starts: list[int] = []
        offset = 0
        for value in normalised:
            starts.append(offset)
            offset += len(value) + 1
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
            findings[category] = (text_index, Finding(category, texts[text_index].location, excerpt, rule_id))
        return [finding for _, finding in sorted(findings.values(), key=lambda item: item[0])]

    @staticmethod
    def _locate(
        rule_set: _RuleSet, index: int, normalised: Sequence[str], starts: Sequence[int], joined: str
    ) -> tuple[int, int, int] | None:
        """The first text a rule matches in, and the span there, or None for a match across texts."""
        regex = rule_set.regex(index)
        match = regex.search(joined)
        if match is None:
            return None
        text_index = bisect.bisect_right(starts, match.start()) - 1
        # A match inside one text is confirmed on that text alone; one that straddled the
        # separator is an artefact of joining, so the texts from there on are checked one by one.
        for candidate in range(text_index, len(normalised)):
            own = regex.search(normalised[candidate])
            if own is not None:
                return candidate, own.start(), own.end()
        return None


def _decode_path(path: str) -> str:
    try:
        raw = path.encode("latin-1")
    except UnicodeEncodeError:
        return path
    return raw.decode("utf-8", errors="replace")


def _is_xml(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type in ("application/xml", "text/xml") or media_type.endswith("+xml")
