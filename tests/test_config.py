"""Config validation: the demo config is valid, defaults are filled, unknown keys are named."""

import pytest
import yaml

from ionflow.config import load_config, validate_config
from ionflow.errors import InputError


def test_demo_config_is_valid_and_defaults_are_filled(repo):
    cfg = load_config(repo / "config" / "config.yaml")
    assert cfg["ingest"]["split"]["seed"] == 1
    assert cfg["ingest"]["dedup_tolerance_A"] == 1e-6
    assert cfg["mobile"]["species"] == "Li"


def test_example_study_config_is_valid(repo):
    load_config(repo / "config" / "example_study.yaml")


def test_unknown_key_is_an_error_naming_the_key(tmp_path):
    cfg = {"structures": {"S1": {"sources": [{"path": "x.out", "temprature": 300}]}}}
    with pytest.raises(InputError) as exc:
        validate_config(cfg, "cfg.yaml")
    msg = str(exc.value)
    assert "cfg.yaml" in msg and "temprature" in msg and "structures/S1/sources/0" in msg


def test_wrong_type_names_the_field(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"structures": {"S1": {"sources": [{"path": "a"}]}},
                                    "ingest": {"split": {"seed": "one"}}}))
    with pytest.raises(InputError, match=r"\[ingest/split/seed\]"):
        load_config(path)
