# Helper functions of ingest.smk (kept apart from the rules: snakemake --lint).

def ingest_source(wildcards):
    return config["structures"][wildcards.structure]["sources"][int(wildcards.i)]


def all_ingested_sources():
    return [
        f"{RESULTS}/dataset/sources/{s}/source{i}.extxyz"
        for s in structures()
        for i, _ in enumerate(config["structures"][s]["sources"])
    ]
