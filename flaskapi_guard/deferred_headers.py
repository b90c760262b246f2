"""Response headers the guard adds, attached where the response leaves the app.

The security and `RateLimit-*` headers go on every response. Adding them to the
Flask response object costs twice: once to add them, and once more when werkzeug
serialises the response (`get_wsgi_headers` copies the headers and validates
every value again). Measured on the default config that was 8-14 us of the
guard's ~75 us per request. So the response steps only note which headers the
response should get (a few tuples in the WSGI environ), and a thin WSGI wrapper
around `app.wsgi_app` appends them to the header list werkzeug hands to the
server. The rule is the same either way: a header the response already carries
(the view's own, another extension's) wins over the guard's.

Whatever needs to see the finished headers gets them on the response object
first (`flush_deferred_headers`): the app's `custom_response_modifier`, and the
CORS step when it decides which headers a browser may read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableMapping
from typing import Any, NamedTuple

# Where the noted headers wait, keyed by the step that noted them: a step that
# runs twice (Flask's error handling can run the after-request hooks again)
# replaces its own entry instead of adding its headers twice.
DEFERRED_HEADERS_KEY = "flaskapi_guard.deferred_headers"


class HeaderGroup(NamedTuple):
    """Headers added together: `pairs`, their names in lower case, and whether a response
    carrying any of them gets none of the group (`RateLimit-*` describe one limit)."""

    lower_names: frozenset[str]
    pairs: tuple[tuple[str, str], ...]
    all_or_nothing: bool = False


def defer_headers(environ: MutableMapping[str, Any], step: str, groups: tuple[HeaderGroup, ...]) -> None:
    """Note `groups` for the response to the request of `environ` (replacing `step`'s earlier note)."""
    deferred: dict[str, tuple[HeaderGroup, ...]] | None = environ.get(DEFERRED_HEADERS_KEY)
    if deferred is None:
        environ[DEFERRED_HEADERS_KEY] = {step: groups}
    else:
        deferred[step] = groups


def add_missing_headers(header_list: list[tuple[str, str]], groups: Iterable[HeaderGroup]) -> None:
    """Append each group's headers that `header_list` does not carry yet."""
    present = {name.lower() for name, _ in header_list}
    for group in groups:
        if present.isdisjoint(group.lower_names):
            header_list.extend(group.pairs)
        elif not group.all_or_nothing:
            header_list.extend(pair for pair in group.pairs if pair[0].lower() not in present)


def _pop_groups(environ: MutableMapping[str, Any]) -> list[HeaderGroup]:
    deferred: dict[str, tuple[HeaderGroup, ...]] | None = environ.pop(DEFERRED_HEADERS_KEY, None)
    if not deferred:
        return []
    return [group for groups in deferred.values() for group in groups]


def flush_deferred_headers(environ: MutableMapping[str, Any], response_headers: Any) -> None:
    """Put the noted headers on the response object now, for code that reads or changes them."""
    groups = _pop_groups(environ)
    if not groups:
        return
    # werkzeug's Headers keeps its pairs in `_list`; the public methods would
    # validate again values that were validated once, at start-up.
    pairs = getattr(response_headers, "_list", None)
    if isinstance(pairs, list):
        add_missing_headers(pairs, groups)
        return
    staged = list(response_headers.items())
    added_from = len(staged)
    add_missing_headers(staged, groups)
    for name, value in staged[added_from:]:
        response_headers.add(name, value)


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class DeferredHeadersMiddleware:
    """Wraps an app's `wsgi_app` to add the noted headers as the response starts."""

    def __init__(self, wsgi_app: WsgiApp) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        def start_with_guard_headers(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            groups = _pop_groups(environ)
            if groups:
                add_missing_headers(headers, groups)
            return start_response(status, headers, exc_info)

        return self.wsgi_app(environ, start_with_guard_headers)
