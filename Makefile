# The two commands a newcomer needs: `make run` and `make test`.
# Both set themselves up on a fresh machine (Python env, Kafka broker jars) and are fast later.
.DEFAULT_GOAL := help
PY := .venv/bin/python
# make run DB=postgres REPLICAS=2: the production shape (docs/development.md)
DB := sqlite
REPLICAS := 1

.PHONY: help setup run test fuzz reliability production-shape lint schemas broker-start broker-stop clean

help:
	@echo "make run     start broker + referrals/routing/audit services with demo data (Ctrl-C stops all)"
	@echo "             make run DB=postgres REPLICAS=2: every service on PostgreSQL, 2 processes per role"
	@echo "make test    run every test against a real Kafka broker"
	@echo "make fuzz    the long form of the API fuzz tests (500 generated cases per operation)"
	@echo "make reliability  the long form of the fault tests (more load, 3 rounds, 20 s broker outage)"
	@echo "make production-shape  the e2e and fault tests on PostgreSQL, 2 processes per role"
	@echo "make lint    ruff + mypy"
	@echo "make schemas regenerate contracts/schemas from the Pydantic models"

setup:
	@scripts/bootstrap

run: setup
	@$(PY) -m devstack.run --db $(DB) --replicas $(REPLICAS)

test: setup
	@$(PY) -m pytest -n auto --maxprocesses 4 --dist loadgroup $(ARGS)

fuzz: setup
	@RX_FUZZ_EXAMPLES=$${RX_FUZZ_EXAMPLES:-500} RX_FUZZ_RANDOM=1 $(PY) -m pytest tests/fuzz --timeout 3600 $(ARGS)

reliability: setup
	@RX_RELIABILITY=full $(PY) -m pytest tests/reliability -s $(ARGS)

production-shape: setup
	@$(PY) -m pytest --stack-db postgres --stack-replicas 2 tests/e2e tests/reliability $(ARGS)

lint: setup
	@.venv/bin/ruff format --check . && .venv/bin/ruff check . && .venv/bin/mypy contracts/src libs/*/src services/*/src tools/devstack/src tools/issuer/src

schemas: setup
	@$(PY) -m rx_contracts.schemas write

broker-start: setup
	@$(PY) -m devstack.broker start

broker-stop: setup
	@$(PY) -m devstack.broker stop

clean:
	rm -rf .run .venv
