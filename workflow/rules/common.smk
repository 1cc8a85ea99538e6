# Shared helpers: config validation, result paths, wildcard domains.
import hashlib
import json
import os

from snakemake.utils import validate


validate(config, schema="../schemas/config.schema.yaml")

RESULTS = config["results_dir"]
#: every job sees the config hash (recorded in each result's provenance) and one thread per job
CONFIG_HASH = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]
os.environ.update(IONFLOW_CONFIG_HASH=CONFIG_HASH)
os.environ.setdefault("OMP_NUM_THREADS", "1")
# (LAMMPS's libmpi from the mpich wheel is preloaded by ionflow.md.engine itself)



def structures():
    return list(config["structures"])


def section(name):
    """Config section ``name`` (defaults already filled in by the schema)."""
    return config.get(name, {})


def seed_list(seeds):
    """A config `seeds` value as a list: an int n means seeds 0..n-1."""
    return list(range(seeds)) if isinstance(seeds, int) else list(seeds)


#: per-stage target functions, defined by the included rule files, in data-flow order
STAGE_TARGETS = (
    "closepairs_targets",
    "train_targets",
    "validation_targets",
    "md_targets",
    "analysis_targets",
    "screening_targets",
    "figures_targets",
)


def all_targets():
    """What `snakemake` (rule all) builds for the current config."""
    targets = [f"{RESULTS}/dataset/summary/summary.json"]
    for name in STAGE_TARGETS:
        if name in globals():
            targets += globals()[name]()
    return targets
