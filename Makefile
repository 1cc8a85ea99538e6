# ionflow: the two commands of the README.
#   make demo   set everything up and run the built-in demo end to end
#   make test   set everything up and run the test suite
# Both create .venv if missing and install system packages (Quantum ESPRESSO, SLURM) when run as root.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.ionflow-installed
export OMP_NUM_THREADS ?= 1
export LD_LIBRARY_PATH := $(CURDIR)/$(VENV)/lib:$(LD_LIBRARY_PATH)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export VIRTUAL_ENV := $(CURDIR)/$(VENV)
CORES ?= 2

.PHONY: demo test venv system lint clean-results help slurm-profile

help:
	@echo "make demo   # set up and run the built-in demo end to end"
	@echo "make test   # set up and run the test suite"

venv: $(STAMP)

# torch first (CPU build), pinned by the constraints so nothing pulls a CUDA torch
$(STAMP): envs/requirements.txt envs/constraints.txt pyproject.toml
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -c envs/constraints.txt torch $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(VPY) -m pip install -q -c envs/constraints.txt -r envs/requirements.txt
	$(VPY) -m pip install -q --no-deps -e .
	$(VPY) -m pip check
	touch $(STAMP)

system:
	bash scripts/install_system_packages.sh

demo: system venv
	bash scripts/run_demo.sh $(CORES)

test: system venv
	$(VPY) -m pytest -q tests

lint: venv
	$(VENV)/bin/snakemake --lint

# make `snakemake --profile slurm` find this repository's profile
slurm-profile:
	mkdir -p $(HOME)/.config/snakemake
	ln -sfn $(CURDIR)/profiles/slurm $(HOME)/.config/snakemake/slurm
	@echo "linked $(HOME)/.config/snakemake/slurm -> $(CURDIR)/profiles/slurm"

clean-results:
	rm -rf results logs .snakemake benchmarks/snakemake
