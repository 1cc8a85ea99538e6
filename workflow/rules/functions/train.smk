# Helper functions of train.smk (kept apart from the rules: snakemake --lint).

import json


from ionflow.train.settings import learning_curve_members, member_settings


MODELS = f"{RESULTS}/models"


def train_dataset():
    """train.dataset, else the workflow's training set (merged with close-pair frames when enabled)."""
    ds = section("train").get("dataset")
    if ds:
        return ds
    if "training_dataset" in globals():  # defined by closepairs.smk
        return training_dataset()
    return f"{RESULTS}/dataset/dataset.extxyz"


def train_member_names():
    return [m["name"] for m in section("train")["ensemble"]]


def learning_curve_names():
    return [m["name"] for m in learning_curve_members(section("train"))]


def train_targets():
    """What rule all needs from this stage (the learning curve is an optional target)."""
    return [f"{MODELS}/ensemble.json", f"{RESULTS}/validation/training_metrics.md"]


def _member_settings_json(wildcards):
    return json.dumps(member_settings(section("train"), wildcards.member), sort_keys=True)
