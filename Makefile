# Two commands do everything: `make demo` and `make test` (see README).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= out

.PHONY: demo test lint lab samples bench docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,spark]'
	touch $(STAMP)

demo: $(STAMP)
	@mkdir -p $(OUT)
	$(BIN)/kforensics load data/samples/native --case $(OUT)/demo.duckdb --replace
	$(BIN)/kforensics sql --case $(OUT)/demo.duckdb \
	  "SELECT username, count(*) AS requests, count(*) FILTER (code >= 400) AS denied \
	   FROM requests GROUP BY 1 ORDER BY 2 DESC LIMIT 8"
	$(BIN)/kforensics detect --case $(OUT)/demo.duckdb --min-level medium \
	  --exceptions data/samples/known_false_positives.yaml \
	  --sensitive data/samples/sensitive.yaml --baseline-until 2026-03-14T10:00:00Z
	@rm -rf $(OUT)/containment
	$(BIN)/kforensics remediate --case $(OUT)/demo.duckdb --out $(OUT)/containment
	$(BIN)/kforensics report 01_triage --case $(OUT)/demo.duckdb --out $(OUT)/reports \
	  -p remediation_out $(abspath $(OUT))/reports/containment
	@top="$$($(BIN)/python -m kforensics.reporting.story $(OUT)/demo.duckdb)" && \
	  if [ -z "$$top" ]; then echo "no suspect: no identity report"; else \
	  echo "top suspect: $$top" && \
	  $(BIN)/kforensics report 02_identity --case $(OUT)/demo.duckdb --out $(OUT)/reports \
	    -p identity "$$top" -p remediation_out $(abspath $(OUT))/reports/containment-identity; fi
	@echo
	@echo "case:     $(OUT)/demo.duckdb  (query it: $(BIN)/kforensics sql --case $(OUT)/demo.duckdb \"SELECT ...\")"
	@echo "findings: table findings in the case; as JSON lines: $(BIN)/kforensics detect --case $(OUT)/demo.duckdb --format jsonl"
	@echo "containment: $(OUT)/containment/ (read $(OUT)/containment/REPORT.md, then sh $(OUT)/containment/apply.sh); recorded in the case, watched by later detect runs"
	@echo "fences:   $(OUT)/containment/fences/ (NetworkPolicies around the sensitive workloads of data/samples/sensitive.yaml; read FENCES.md)"
	@echo "report:   $(OUT)/reports/01_triage.html (offline HTML; executed notebook beside it)"
	@echo "suspect:  $(OUT)/reports/02_identity.html (the top suspect's requests in order, from 02_identity)"

test: $(STAMP)
	$(BIN)/ruff check kforensics tests bench notebooks
	$(BIN)/ruff format --check kforensics tests bench notebooks
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check --fix kforensics tests bench notebooks
	$(BIN)/ruff format kforensics tests bench notebooks

samples: $(STAMP)
	$(BIN)/kforensics sample data/samples

bench: $(STAMP)
	$(BIN)/python bench/ingest.py

docs: $(STAMP)
	$(BIN)/python -m kforensics.docs

# The notebooks are jupytext percent sources (.py): jupytext's viewer opens them as notebooks.
# The override lives in the venv's JupyterLab settings, not in the user's home.
LAB_SETTINGS := $(VENV)/share/jupyter/lab/settings
LAB_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)
LAB_ARGS ?=

lab: $(STAMP)
	@[ -f $(OUT)/demo.duckdb ] || $(MAKE) demo
	@mkdir -p $(LAB_SETTINGS)
	@echo '{"@jupyterlab/docmanager-extension:plugin": {"defaultViewers": {"python": "Jupytext Notebook"}}}' \
	  > $(LAB_SETTINGS)/overrides.json
	$(BIN)/jupyter lab $(LAB_ROOT) $(LAB_ARGS) notebooks/

clean:
	rm -rf $(VENV) $(OUT)
