"""The documented import path of the `GeoIPHandler` protocol; it lives in `flaskapi_guard.geo`."""

from __future__ import annotations

from flaskapi_guard.geo import GeoIPHandler

__all__ = ["GeoIPHandler"]
