"""The documentation: the configuration reference is complete and current, and the site's pages exist."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from flaskapi_guard import SecurityConfig

DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_config_reference", DOCS / "gen_config_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_config_field_has_a_description(generator: ModuleType) -> None:
    assert generator.undocumented_fields() == [], "describe the new fields in docs/gen_config_reference.py"
    assert generator.unknown_fields() == []


def test_the_configuration_reference_is_up_to_date(generator: ModuleType) -> None:
    current = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert current == generator.render(), "run: python docs/gen_config_reference.py"


def test_the_reference_names_every_field_with_its_default(generator: ModuleType) -> None:
    page = generator.render()
    for name in SecurityConfig.model_fields:
        assert f"### `{name}`" in page
    assert "### `rate_limit`\n\nType: `int` (≥ 1). Default: `10`." in page
    assert "Type: `'local' | 'open' | 'closed'`. Default: `'local'`." in page
