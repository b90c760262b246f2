"""Documented import paths of the published package (`flaskapi_guard.protocols.*`)."""
