"""Every name ``corrsteer_core`` exports resolves, and each concept is exported from the one module it lives in."""

from __future__ import annotations

import importlib

import corrsteer_core


def test_every_exported_name_resolves_to_its_home_module():
    for name in corrsteer_core.__all__:
        value = getattr(corrsteer_core, name)
        home = getattr(value, "__module__", "")
        assert home.startswith("corrsteer_core"), (name, home)


def test_configs_live_in_config_only():
    config = importlib.import_module("corrsteer_core.config")
    for name in ("SelectConfig", "OptimizeConfig", "GenerateConfig", "CollectConfig"):
        assert getattr(corrsteer_core, name) is getattr(config, name)
        assert getattr(config, name).__module__ == "corrsteer_core.config"
