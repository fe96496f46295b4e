# mst_distill: every target is idempotent and sets up what it needs.
#   make run    the main job: student and MST-Distill, both targets, on the offline avmnist-lite (quick profile)
#   make tables the core of the lite reproduction (MST-Distill, KD with both teachers, 3 seeds), then its tables
#   make tables-relational  RKD and CRD with both teachers (3 seeds), into the same run store
#   make tables-full  every method of the lite reproduction (hours on 2 cores), into the same run store
#   make tables-ablation  the paper's analyses on the lite data (stage ablation, teacher pool, routing, k, ...), same store
#   make test   notebooks and library in sync, nbdev_test, pytest (make test-slow adds the minutes-long checks);
#               installs a one-node Slurm (Debian packages) for the --executor slurm test where it can
#   make lab    JupyterLab on this project
#   make outputs NBS="nbs/07_trainer.ipynb ..."  re-run notebooks in place so their stored outputs are current
#   make setup  the virtual environment from the pinned requirements, system packages, editable install, kernel
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup sysdeps sysdeps-slurm run tables outputs tables-relational tables-full tables-rest tables-ablation test test-slow sync-check lab readme clean

setup: $(STAMP) sysdeps

$(STAMP): requirements.txt constraints.txt setup.py settings.ini
	@$(PY) -c "import sys; assert sys.version_info >= (3, 11, 5), 'Python >= 3.11.5 needed (pyenv python3), got ' + sys.version"
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -qq -r requirements.txt -c constraints.txt
	$(BIN)/pip install -qq -e . --no-deps
	$(BIN)/pip check
	$(BIN)/python -m ipykernel install --sys-prefix --name mst_distill --display-name "Python (mst_distill)" >/dev/null
	touch $(STAMP)

# espeak-ng and flite synthesise the spoken digits of avmnist-lite (Debian packages)
sysdeps:
	@if command -v espeak-ng >/dev/null && command -v flite >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng flite >/dev/null; \
	elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then \
	  sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng flite >/dev/null; \
	else echo "warning: espeak-ng and flite are missing and cannot be installed here; avmnist-lite generation will fail"; fi

# a one-node Slurm for tests/test_slurm.py (the test starts and stops its daemons; without them it is skipped)
SLURM_BINS := munged slurmctld slurmd sbatch squeue scancel sinfo
sysdeps-slurm:
	@if PATH="$$PATH:/usr/sbin:/sbin" sh -c 'for b in $(SLURM_BINS); do command -v $$b >/dev/null || exit 1; done'; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null; \
	elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then \
	  sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null; \
	else echo "note: Slurm (slurmctld slurmd slurm-client munge) is not installed and cannot be installed here; tests/test_slurm.py will be skipped"; fi

run: setup
	$(BIN)/mst-distill main --profile quick --out runs/main

# a lite manifest as papermill runs into runs/lite (completed runs are skipped, so it resumes), then the tables;
# the tables are written even when some run failed, and the exit status then says so
WORKERS ?= 2
define lite_batch
	@start=$$(date +%s); $(BIN)/mst-distill batch $(1) --workers $(WORKERS) --out runs/lite; status=$$?; \
	$(BIN)/mst-distill tables runs/lite || exit 1; \
	echo "make $@: $$(( ($$(date +%s) - start) / 60 )) min on $$(nproc) cores"; exit $$status
endef
tables: setup
	$(call lite_batch,manifests/lite-core.yaml)
tables-relational: setup
	$(call lite_batch,manifests/lite-relational.yaml)
tables-full: setup
	$(call lite_batch,manifests/lite.yaml)
tables-rest: setup
	$(call lite_batch,manifests/lite-rest.yaml)
tables-ablation: setup
	$(call lite_batch,manifests/ablation-lite.yaml)

# the notebooks are the source: cleaning and exporting them must not change anything
sync-check: $(STAMP)
	@before=$$(git status --porcelain; git diff); \
	$(BIN)/nbdev_clean && $(BIN)/nbdev_export && $(BIN)/python tools/make_readme.py nbs/index.ipynb README.md; \
	after=$$(git status --porcelain; git diff); \
	if [ "$$before" != "$$after" ]; then git status --short; echo "error: nbdev_clean/nbdev_export/make readme changed files: run them and commit"; exit 1; fi

# pytest: two processes (pytest-xdist); tests sharing a costly fixture are one xdist_group, so it is built once
test: setup sysdeps-slurm sync-check
	$(BIN)/nbdev_test --n_workers 2 --timing
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup --durations 15 tests

# the slow checks too: the acceptance run of MST-Distill with the quick profile, and slow notebook cells
test-slow: setup sysdeps-slurm sync-check
	$(BIN)/nbdev_test --n_workers 2 --flags slow
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup tests --slow

# stored outputs: re-run in place, stderr (log lines, warnings) dropped, refused if an output names a machine path
NBS ?= $(filter-out nbs/index.ipynb,$(wildcard nbs/[0-9]*.ipynb))
outputs: setup
	$(BIN)/python tools/run_notebook.py $(NBS)
	$(BIN)/nbdev_clean

lab: setup
	$(BIN)/jupyter lab --no-browser --ip=127.0.0.1 --ServerApp.root_dir=$(CURDIR)

# README.md from nbs/index.ipynb without quarto (and without executing anything)
readme: $(STAMP)
	$(BIN)/python tools/make_readme.py nbs/index.ipynb README.md

clean:
	rm -rf _proc _docs build *.egg-info
