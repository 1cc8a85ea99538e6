"""Load and validate an ionflow config with the same JSON schema the workflow uses.

Defaults from the schema are filled in; unknown keys are errors naming the key.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import InputError


def schema_path() -> Path:
    """The config schema (workflow/schemas/config.schema.yaml, shipped as package data)."""
    return Path(str(resources.files("ionflow") / "data" / "config.schema.yaml"))


def _load_yaml(path: Path) -> Any:
    import yaml

    try:
        with open(path) as fh:
            return yaml.safe_load(fh)
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except yaml.YAMLError as exc:
        raise InputError(path, f"not valid YAML: {exc}".splitlines()[0]) from None


def _validator_with_defaults(schema: dict):
    """A jsonschema validator that fills in ``default`` values while validating."""
    import jsonschema

    base = jsonschema.validators.validator_for(schema)
    validate_props = base.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_props(validator, properties, instance, schema)

    return jsonschema.validators.extend(base, {"properties": set_defaults})(schema)


def validate_config(config: dict, source: str | Path = "<config>") -> dict:
    """Validate ``config`` in place (filling defaults); raise InputError naming the bad key."""
    schema = _load_yaml(schema_path())
    validator = _validator_with_defaults(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        field = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        raise InputError(source, err.message, field=field)
    return config


def load_config(path: str | Path) -> dict:
    path = Path(path)
    config = _load_yaml(path)
    if not isinstance(config, dict):
        raise InputError(path, "config must be a YAML mapping")
    return validate_config(config, path)
