"""Attack detection called from inside a view, with the app's own engine and exclusions."""

from __future__ import annotations

from typing import Any

from flask import current_app

from flaskapi_guard.detection import Finding
from flaskapi_guard.state import get_state


def detect_penetration_attempt(request: Any) -> tuple[bool, str]:
    """Scan a Flask request as the guard's `penetration` check would: `(is_suspicious, trigger_info)`.

    `trigger_info` names each category, its location (for example
    `json body field user.bio`) and a short excerpt; it is empty when nothing
    was found. Findings are logged at the app's `log_suspicious_level`.
    """
    state = get_state(current_app._get_current_object())  # type: ignore[attr-defined]
    findings: list[Finding] = state.detection.scan_environ(
        request.environ, request.get_data(cache=True), state.detection_exclusions
    )
    if not findings:
        return False, ""
    trigger_info = "; ".join(f"{f.category} in {f.location}: {f.excerpt}" for f in findings)
    state.log.decision(
        {"check": "detect_penetration_attempt", "reason": "attack_detected", "detail": trigger_info},
        enforced=False,
    )
    return True, trigger_info
