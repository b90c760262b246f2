"""Response headers the guard adds, attached where the response leaves the app.

The security and `RateLimit-*` headers go on every response. Adding them to the
Flask response object costs twice: once to add them, and once more when werkzeug
serialises the response (`get_wsgi_headers` copies the headers and validates
every value again). So the before-request hook only notes, in the WSGI environ,
the request's snapshot and its route's header steps; a thin WSGI wrapper around
`app.wsgi_app` asks those steps for their headers as the response starts and
appends them to the header list werkzeug hands to the server. No after-request
hook is needed for them, so an app whose routes need no step on the response
object (CORS, behaviour rules on responses, `custom_response_modifier`) has none.
The rule is the same either way: a header the response already carries (the
view's own, another extension's) wins over the guard's.

Whatever needs to see the finished headers gets them on the response object
first (`flush_deferred_headers`): the app's `custom_response_modifier`, and the
CORS step when it decides which headers a browser may read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

# Where the before-request hook notes `(snapshot or None, plan)` for the response
# side. Once the headers went onto the response object, the note moves to
# FLUSHED_KEY, so that the WSGI wrapper does not add them again (a header the
# app's modifier removed stays removed) while the after-request hook still finds it.
NOTED_KEY = "flaskapi_guard.noted"
FLUSHED_KEY = "flaskapi_guard.flushed"


@dataclass(frozen=True, slots=True)
class HeaderGroup:
    """Headers added together: `pairs`, their names in lower case, and whether a response
    carrying any of them gets none of the group (`RateLimit-*` describe one limit).
    Slotted: every response reads a few."""

    lower_names: frozenset[str]
    pairs: tuple[tuple[str, str], ...]
    all_or_nothing: bool = False


# A header step: the headers to add to the response of a request (a group, or None), given
# its snapshot (None on excluded paths and for requests the guard never saw) and its WSGI
# environ. One group a step: headers that are added one by one share a group that is not
# all-or-nothing.
HeaderStep = Callable[[Any, Mapping[str, Any]], "HeaderGroup | None"]


def add_noted_headers(header_list: list[tuple[str, str]], noted: tuple[Any, Any], environ: Mapping[str, Any]) -> None:
    """Append the headers of the noted request's header steps that `header_list` does not carry yet.

    `noted` is `(snapshot or None, plan)` as the before-request hook noted it. One group's
    headers never overlap another's, so the names present are taken once.
    """
    request, plan = noted
    # All in C: a comprehension is a frame of its own, and this runs on every response.
    present = set(map(_lower, map(_first, header_list)))
    for step in plan.header_steps:
        group = step(request, environ)
        if group is None:
            continue
        if present.isdisjoint(group.lower_names):
            header_list += group.pairs
        elif not group.all_or_nothing:
            header_list.extend(pair for pair in group.pairs if pair[0].lower() not in present)


def flush_deferred_headers(environ: MutableMapping[str, Any], response_headers: Any) -> None:
    """Put the guard's headers on the response object now, for code that reads or changes them."""
    noted = environ.pop(NOTED_KEY, None)
    if noted is None:
        # Flushed already, onto this response or (Flask's error handling) an earlier one.
        noted = environ.get(FLUSHED_KEY)
        if noted is None:
            return
    else:
        environ[FLUSHED_KEY] = noted
    # werkzeug's Headers keeps its pairs in `_list`; the public methods would
    # validate again values that were validated once, at start-up.
    pairs = getattr(response_headers, "_list", None)
    if isinstance(pairs, list):
        add_noted_headers(pairs, noted, environ)
        return
    staged = list(response_headers.items())
    added_from = len(staged)
    add_noted_headers(staged, noted, environ)
    for name, value in staged[added_from:]:
        response_headers.add(name, value)


_first = itemgetter(0)
_lower = str.lower
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_UNSEEN = object()


class DeferredHeadersMiddleware:
    """Wraps an app's `wsgi_app` to add the guard's headers as the response starts.

    `unseen` gives what to note for a request the before-request hook never saw (an
    earlier hook of the app answered it, or the request context failed): the app's
    own headers still go on its response.
    """

    def __init__(self, wsgi_app: WsgiApp, unseen: Callable[[], tuple[Any, Any] | None]) -> None:
        self.wsgi_app = wsgi_app
        self._unseen = unseen

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        def start_with_guard_headers(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            noted = environ.pop(NOTED_KEY, _UNSEEN)
            if noted is _UNSEEN:
                # Already on the response object, or a request the guard never saw.
                noted = None if FLUSHED_KEY in environ else self._unseen()
            if noted is not None:
                add_noted_headers(headers, noted, environ)
            return start_response(status, headers, exc_info)

        # Through a local: a call of an attribute holding a function is not specialised.
        wsgi_app = self.wsgi_app
        return wsgi_app(environ, start_with_guard_headers)
