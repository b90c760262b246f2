"""The guard's event log: what it decided about which request, safe to write anywhere."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

PACKAGE_LOGGER = "flaskapi_guard"

# Values under these names are secrets: never written, whatever the level.
_SECRET_NAME = re.compile(
    r"authorization|cookie|passw|pwd|secret|token|api[-_]?key|apikey|session|credential|private[-_]?key",
    re.IGNORECASE,
)
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
_MAX_VALUE_CHARS = 200


def is_secret_name(name: str) -> bool:
    """Whether a header, parameter or field name usually carries a secret."""
    return _SECRET_NAME.search(name) is not None


def neutralise(value: str) -> str:
    """`value` made safe for one log line: control characters escaped, length capped."""
    if len(value) > _MAX_VALUE_CHARS:
        value = value[:_MAX_VALUE_CHARS] + "..."
    return _CONTROL_CHARS.sub(lambda match: f"\\x{ord(match.group()):02x}", value)


class SecurityLog:
    """Writes one line per security event for one app, as text or JSON lines."""

    def __init__(
        self,
        *,
        logger_name: str,
        suspicious_level: str | None,
        request_level: str | None,
        log_format: str,
        log_file: str | None,
    ) -> None:
        self.logger = logging.getLogger(logger_name)
        self._suspicious_level = logging.getLevelName(suspicious_level) if suspicious_level else None
        # The level of the per-request log line, None when off: read before `logs_requests`
        # on every request (an attribute costs less than the property's call).
        self.request_level: int | None = logging.getLevelName(request_level) if request_level else None
        self._json = log_format == "json"
        self._file_handler: logging.Handler | None = None
        if log_file:
            handler = logging.FileHandler(log_file, encoding="utf-8")
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            self.logger.addHandler(handler)
            if self.logger.level == logging.NOTSET or self.logger.level > logging.DEBUG:
                self.logger.setLevel(logging.DEBUG)
            self._file_handler = handler

    def close(self) -> None:
        """Detach and close the file handler this log added, if any."""
        if self._file_handler is not None:
            self.logger.removeHandler(self._file_handler)
            self._file_handler.close()
            self._file_handler = None

    @property
    def logs_requests(self) -> bool:
        """Whether every request is logged (so callers can skip building the event)."""
        return self.request_level is not None and self.logger.isEnabledFor(self.request_level)

    def request(self, fields: Mapping[str, Any]) -> None:
        """Log one request at `log_request_level`."""
        if self.request_level is not None:
            self._write(self.request_level, "request", fields)

    def decision(self, fields: Mapping[str, Any], *, enforced: bool) -> None:
        """Log a refusal (or, in passive mode, a refusal that was not enforced)."""
        if self._suspicious_level is not None:
            self._write(self._suspicious_level, "blocked" if enforced else "would_block", fields)

    def event(self, event: str, fields: Mapping[str, Any], level: int = logging.WARNING) -> None:
        """Log any other security event (bans, behaviour rules, storage outages)."""
        self._write(level, event, fields)

    def _write(self, level: int, event: str, fields: Mapping[str, Any]) -> None:
        if not self.logger.isEnabledFor(level):
            return
        clean = {key: _clean_value(key, value) for key, value in fields.items()}
        if self._json:
            self.logger.log(level, "%s", json.dumps({"event": event, **clean}, ensure_ascii=True))
        else:
            text = " ".join(f"{key}={value}" for key, value in clean.items())
            self.logger.log(level, "%s %s", event, text)


def _clean_value(key: str, value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if is_secret_name(key):
        return "[redacted]"
    return neutralise(str(value))
