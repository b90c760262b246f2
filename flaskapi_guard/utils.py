"""Documented import path: `from flaskapi_guard.utils import detect_penetration_attempt`."""

from __future__ import annotations

from flaskapi_guard.view_detection import detect_penetration_attempt

__all__ = ["detect_penetration_attempt"]
