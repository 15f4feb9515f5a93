"""The quick, import-level checks: registry/quick.py, the home of these checks (list-registry runs them
without importing the kit); the kit runs them first."""

from registry.quick import (  # noqa: F401 (re-exported: the kit's public names)
    CALLBACK_HOOKS,
    MODALITIES,
    QUICK_CHECKS,
    UNKNOWN_KEY,
    ConformanceError,
    check_config_has_description,
    check_config_is_pydantic,
    check_config_refuses_unknown_keys,
    check_has_from_config,
    check_kind_attributes,
    quick_problems,
    require,
)
