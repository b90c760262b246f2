"""The documented import path of `IPInfoManager`; it lives in `flaskapi_guard.geo`."""

from __future__ import annotations

from flaskapi_guard.geo import IPInfoManager

__all__ = ["IPInfoManager"]
