# Rapport: one virtual environment, made and filled by `make`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint typecheck demo bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check connector adapters enrichment sandbox bench tests
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/rapport demo

bench: $(STAMP)
	$(BIN)/rapport bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache

# Until the first release the schema is one migration, regenerated from the models.
schema: $(STAMP)
	rm -f connector/migrations/versions/0001_initial_schema.py /tmp/rapport-schema.db
	$(BIN)/python -c "from alembic import command; from connector.migrate import alembic_config; command.revision(alembic_config('sqlite:////tmp/rapport-schema.db'), message='initial schema', autogenerate=True, rev_id='0001')"
	rm -f /tmp/rapport-schema.db
