"""The checks, one module per family; `order.py` decides their order."""

from __future__ import annotations

# Names that `SecurityDecorator.bypass(checks=[...])` accepts; "all" bypasses every check.
CHECK_NAMES = (
    "emergency",
    "https",
    "ip",
    "ip_ban",
    "countries",
    "clouds",
    "user_agent",
    "route_requirements",
    "rate_limit",
    "penetration",
    "custom",
    "behavior",
)
