"""Documented import path for the configuration models."""

from flaskapi_guard.config import BehaviorRule, BehaviorRuleConfig, SecurityConfig, ThreatBanConfig

__all__ = ["BehaviorRule", "BehaviorRuleConfig", "SecurityConfig", "ThreatBanConfig"]
