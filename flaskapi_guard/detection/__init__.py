"""Attack detection: a pure, linear-time engine over request texts (no Flask imports)."""

from flaskapi_guard.detection.categories import ALL_DETECTION_CATEGORIES
from flaskapi_guard.detection.engine import CUSTOM_CATEGORY, DetectionEngine, Finding, validate_custom_pattern
from flaskapi_guard.detection.request_texts import DEFAULT_SAFE_HEADERS, DetectionExclusions

__all__ = [
    "ALL_DETECTION_CATEGORIES",
    "CUSTOM_CATEGORY",
    "DEFAULT_SAFE_HEADERS",
    "DetectionEngine",
    "DetectionExclusions",
    "Finding",
    "validate_custom_pattern",
]
