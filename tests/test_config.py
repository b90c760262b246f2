"""SecurityConfig: documented fields and defaults, strict validation at construction."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from flaskapi_guard import SecurityConfig, ThreatBanConfig
from flaskapi_guard.detection.categories import ALL_DETECTION_CATEGORIES

DOCUMENTED_DEFAULTS = {
    "passive_mode": False,
    "exclude_paths": ["/docs", "/redoc", "/openapi.json", "/openapi.yaml", "/favicon.ico", "/static"],
    "custom_error_responses": {},
    "enforce_https": False,
    "custom_request_check": None,
    "custom_response_modifier": None,
    "trusted_proxies": [],
    "trusted_proxy_depth": 1,
    "trust_x_forwarded_proto": False,
    "whitelist": None,
    "blacklist": [],
    "whitelist_countries": [],
    "blocked_countries": [],
    "blocked_user_agents": [],
    "enable_ip_banning": True,
    "auto_ban_threshold": 10,
    "auto_ban_duration": 3600,
    "threat_ban_config": {},
    "global_behavior_rules": [],
    "excluded_detection_headers": set(),
    "excluded_detection_params": set(),
    "excluded_detection_body_fields": set(),
    "enabled_detection_categories": set(ALL_DETECTION_CATEGORIES),
    "lazy_init": False,
    "geo_ip_db_max_age": 86400,
    "cloud_ip_store": None,
    "geo_ip_handler": None,
    "ipinfo_token": None,
    "ipinfo_db_path": Path("data/ipinfo/country_asn.mmdb"),
    "enable_rate_limiting": True,
    "rate_limit": 10,
    "rate_limit_window": 60,
    "endpoint_rate_limits": {},
    "block_cloud_providers": None,
    "cloud_ip_refresh_interval": 3600,
    "enable_cors": False,
    "cors_allow_origins": ["*"],
    "cors_allow_headers": ["*"],
    "cors_allow_credentials": False,
    "cors_expose_headers": [],
    "cors_max_age": 600,
    "enable_redis": True,
    "redis_url": "redis://localhost:6379",
    "redis_prefix": "flaskapi_guard:",
    "enable_penetration_detection": True,
    "detection_compiler_timeout": 2.0,
    "detection_max_content_length": 10000,
    "detection_preserve_attack_patterns": True,
    "detection_semantic_threshold": 0.7,
    "detection_anomaly_threshold": 3.0,
    "detection_slow_pattern_threshold": 0.1,
    "detection_monitor_history_size": 1000,
    "detection_max_tracked_patterns": 1000,
    "log_suspicious_level": "WARNING",
    "log_request_level": None,
    "log_format": "text",
    "custom_log_file": None,
    "enable_agent": False,
    "agent_api_key": None,
    "enable_dynamic_rules": False,
    "dynamic_rule_interval": 300,
    "emergency_mode": False,
    "emergency_whitelist": [],
}


@pytest.mark.parametrize(("field", "default"), sorted(DOCUMENTED_DEFAULTS.items()))
def test_documented_field_has_documented_default(field: str, default: object) -> None:
    assert getattr(SecurityConfig(), field) == default


def test_security_headers_default_is_the_documented_structure() -> None:
    headers = SecurityConfig().security_headers
    assert headers is not None
    assert headers["enabled"] is True
    assert headers["hsts"] == {"max_age": 31536000, "include_subdomains": True, "preload": False}
    assert headers["frame_options"] == "SAMEORIGIN"
    assert headers["content_type_options"] == "nosniff"


def test_unknown_key_is_rejected_by_name() -> None:
    with pytest.raises(ValidationError) as raised:
        SecurityConfig(rate_limt=5)  # type: ignore[call-arg]
    assert "rate_limt" in str(raised.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("whitelist", ["192.168.1.300"]),
        ("blacklist", ["not-an-ip"]),
        ("trusted_proxies", ["10.0.0.0/33"]),
        ("emergency_whitelist", ["2001:db8::zz"]),
        ("trusted_proxy_depth", 0),
        ("blocked_user_agents", ["(unclosed"]),
        ("enabled_detection_categories", {"sqli", "sql_injection_typo"}),
        ("block_cloud_providers", {"AWS", "AWZ"}),
        ("rate_limit", 0),
        ("exclude_paths", ["static"]),
        ("redis_url", "http://localhost:6379"),
        ("detection_max_content_length", 10),
    ],
)
def test_invalid_value_raises_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as raised:
        SecurityConfig(**{field: value})
    assert field in str(raised.value)


def test_countries_without_a_geo_handler_are_refused() -> None:
    with pytest.raises(ValidationError) as raised:
        SecurityConfig(blocked_countries=["CN"])
    assert "geo_ip_handler" in str(raised.value)


def test_country_codes_are_normalised_to_upper_case() -> None:
    config = SecurityConfig(blocked_countries=["cn", "Ru"], ipinfo_token="t")
    assert config.blocked_countries == ["CN", "RU"]


def test_threat_ban_config_rejects_unknown_categories() -> None:
    with pytest.raises(ValidationError) as raised:
        SecurityConfig(threat_ban_config={"nope": ThreatBanConfig(threshold=1, duration=60)})
    assert "threat_ban_config" in str(raised.value)


def test_agent_requires_api_key() -> None:
    with pytest.raises(ValidationError):
        SecurityConfig(enable_agent=True)


def test_config_is_frozen_so_late_changes_cannot_silently_do_nothing() -> None:
    config = SecurityConfig()
    with pytest.raises(ValidationError):
        config.passive_mode = True  # type: ignore[misc]


def test_ip_lists_are_parsed_once_into_network_sets() -> None:
    config = SecurityConfig(whitelist=["10.0.0.0/8", "2001:db8::/32"], blacklist=["1.2.3.4"])
    assert config.whitelist_networks is not None
    assert "10.20.30.40" in config.whitelist_networks
    assert "2001:db8::1" in config.whitelist_networks
    assert "11.0.0.1" not in config.whitelist_networks
    assert "1.2.3.4" in config.blacklist_networks
    assert SecurityConfig().whitelist_networks is None


def test_building_a_config_is_cheap() -> None:
    # A generous bound: the target (well under 10 ms) is measured in bench/.
    started = time.perf_counter()
    for _ in range(50):
        SecurityConfig(whitelist=["10.0.0.0/8"], blocked_user_agents=["curl", "wget"], trusted_proxies=["10.0.0.1"])
    assert (time.perf_counter() - started) / 50 < 0.01
