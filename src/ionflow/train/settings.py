"""Train settings: the ``train`` config section, presets and ensemble members.

A member's hyper-parameters are resolved as

    built-in preset (schema default of ``train.presets``)
      <- the user's block of the same name in ``train.presets`` (key by key; a new name needs ``base``)
      <- ``train.overrides`` (all members)  <- the member's own ``overrides``

so a user can change one number of one preset without restating the others. Every number has
its documented default in workflow/schemas/config.schema.yaml (section ``train``).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

from ..errors import InputError

MEMBER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
LEARNING_CURVE_DIR = "learning_curve"


def _schema() -> dict:
    from ..config import _load_yaml, schema_path

    return _load_yaml(schema_path())


def train_schema() -> dict:
    return _schema()["properties"]["train"]


def builtin_presets() -> dict[str, dict]:
    """tiny/small/medium as defined by the schema default of ``train.presets``."""
    return copy.deepcopy(train_schema()["properties"]["presets"]["default"])


def validate_section(section: dict | None, source: str | Path = "<train settings>") -> dict:
    """Validate the ``train`` section alone (defaults filled in, unknown keys are errors)."""
    import jsonschema

    from ..config import _validator_with_defaults

    schema = _schema()
    sub = dict(schema["properties"]["train"])
    # keep JSON-pointer $refs ("#/properties/train/$defs/...") resolvable inside the full document
    full = {**schema, "properties": {"train": sub}, "required": [], "additionalProperties": True}
    instance = {"train": copy.deepcopy(section) if section is not None else {}}
    validator = _validator_with_defaults(full)
    try:
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    except jsonschema.exceptions.RefResolutionError as exc:  # pragma: no cover - schema bug
        raise RuntimeError(f"config schema: {exc}") from exc
    if errors:
        err = errors[0]
        field = "/".join(str(p) for p in err.absolute_path) or "train"
        raise InputError(source, err.message, field=field)
    return instance["train"]


def load_section(config_path: str | Path | None = None, settings_json: str | None = None) -> tuple[dict, dict]:
    """(train section, whole config) from a config file or from a JSON string of the section."""
    if settings_json is not None:
        try:
            section = json.loads(settings_json)
        except json.JSONDecodeError as exc:
            raise InputError("--settings", f"not valid JSON: {exc}") from None
        if not isinstance(section, dict):
            raise InputError("--settings", "must be a JSON object (the train config section)")
        return validate_section(section, "--settings"), {"train": section}
    if config_path is None:
        raise InputError("command line", "give --config FILE or --settings JSON", field="--config")
    from ..config import load_config

    config = load_config(config_path)
    return config["train"], config


def resolve_presets(section: dict) -> dict[str, dict]:
    """All presets (built-in merged with the user's, in the order given), fully specified."""
    presets = builtin_presets()
    for name, block in (section.get("presets") or {}).items():
        block = dict(block)
        base = block.pop("base", name if name in presets else None)
        if base is None:
            raise InputError("config", f"new preset {name!r} needs 'base' (one of {sorted(presets)})",
                             field=f"train/presets/{name}")
        if base not in presets:
            raise InputError("config", f"preset {name!r}: unknown base {base!r} (one of {sorted(presets)})",
                             field=f"train/presets/{name}/base")
        presets[name] = _merge(presets[base], block)
    return presets


def _merge(base: dict, over: dict | None) -> dict:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if k == "model_extra" and isinstance(v, dict):
            out[k] = {**out.get(k, {}), **v}
        else:
            out[k] = copy.deepcopy(v)
    return out


def members(section: dict) -> list[dict]:
    """The ensemble members with names checked."""
    out = section.get("ensemble") or []
    seen = set()
    for k, m in enumerate(out):
        name = m["name"]
        if not MEMBER_NAME.match(name) or name == LEARNING_CURVE_DIR or name.startswith("lc-f"):
            raise InputError("config", f"member name {name!r} must match {MEMBER_NAME.pattern}, not be "
                             f"{LEARNING_CURVE_DIR!r} and not start with 'lc-f' (learning-curve members)",
                             field=f"train/ensemble/{k}/name")
        if name in seen:
            raise InputError("config", f"duplicate member name {name!r}", field=f"train/ensemble/{k}/name")
        seen.add(name)
    return out


def learning_curve_members(section: dict) -> list[dict]:
    """One member per training fraction: same preset/seed/subset, nested training subsets."""
    lc = section["learning_curve"]
    out = []
    for f in sorted(set(float(x) for x in lc["fractions"])):
        out.append({"name": f"lc-f{f:g}", "preset": lc["preset"], "seed": lc["seed"], "subset": lc["subset"],
                    "overrides": lc.get("overrides", {}), "train_fraction": f})
    return out


def member_settings(section: dict, name: str) -> dict:
    """The smallest train section that resolves to the same member (what the workflow passes).

    Only what this member depends on is kept, so editing another member or preset does not
    rerun it.
    """
    spec_src = {m["name"]: ("ensemble", m) for m in members(section)}
    spec_src.update({m["name"]: ("learning_curve", m) for m in learning_curve_members(section)})
    if name not in spec_src:
        raise InputError("config", f"no ensemble member {name!r}", field="train/ensemble")
    kind, m = spec_src[name]
    out = {k: copy.deepcopy(section[k]) for k in ("type_names", "overrides", "loss", "score_weights",
                                                   "compile_targets", "device", "threads") if k in section}
    user_presets = section.get("presets") or {}
    if m["preset"] in user_presets:
        out["presets"] = {m["preset"]: copy.deepcopy(user_presets[m["preset"]])}
        base = user_presets[m["preset"]].get("base")
        if base and base in user_presets and base != m["preset"]:
            out["presets"][base] = copy.deepcopy(user_presets[base])
    if kind == "ensemble":
        out["ensemble"] = [copy.deepcopy(m)]
    else:
        lc = section["learning_curve"]
        out["learning_curve"] = {**copy.deepcopy(lc), "fractions": [m["train_fraction"]]}
    return out


def member_spec(section: dict, name: str) -> dict:
    """Fully resolved settings of one member (ensemble or learning-curve member)."""
    candidates = {m["name"]: m for m in members(section)}
    candidates.update({m["name"]: m for m in learning_curve_members(section)})
    if name not in candidates:
        raise InputError("config", f"no ensemble member {name!r} (members: {', '.join(candidates) or 'none'})",
                         field="train/ensemble")
    m = candidates[name]
    presets = resolve_presets(section)
    if m["preset"] not in presets:
        raise InputError("config", f"member {name!r}: unknown preset {m['preset']!r} "
                         f"(presets: {', '.join(sorted(presets))})", field="train/ensemble/preset")
    hp = _merge(_merge(presets[m["preset"]], section.get("overrides")), m.get("overrides"))
    subset = m.get("subset", "all")
    return {
        "member": name,
        "preset": m["preset"],
        "seed": int(m["seed"]),
        "subset": subset if subset == "all" else list(subset),
        "train_fraction": float(m.get("train_fraction", 1.0)),
        "subsample_seed": int(section["learning_curve"]["subsample_seed"]),
        "hparams": hp,
        "type_names": section.get("type_names"),
        "loss": dict(section["loss"]),
        "score_weights": dict(section["score_weights"]),
        "compile_targets": list(section["compile_targets"]),
        "device": section["device"],
        "threads": int(section["threads"]),
        "learning_curve": "train_fraction" in m,
    }
