# ionflow workflow: DFT MD data -> dataset -> close-pair frames -> Allegro ensemble -> LAMMPS MD
# -> tracer/full conductivity -> Arrhenius; plus the PES screening branch.
# Run: `snakemake --cores 2` (demo config), `snakemake --profile profiles/slurm` (cluster).
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/closepairs.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/md.smk"
include: "workflow/rules/validate.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/teacher_student.smk"
include: "workflow/rules/screening.smk"
include: "workflow/rules/figures.smk"


rule all:
    default_target: True
    input:
        all_targets(),
