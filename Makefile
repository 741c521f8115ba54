# Thin wrappers over cargo, the tars binary and scripts/, for contributors and operators.
# `make` (or `make help`) lists the targets; each one's line comes from its `## ` comment.
# The README's commands stay the primary ones: `cargo test --workspace` (make test) and
# `cargo run --release -- serve` (make serve).
#
# Variables: ARGS (extra arguments for serve and fleet), BENCH (cargo bench's selection),
# IMAGE (docker's tag), CARGO, DEPLOY_VENV.

CARGO ?= cargo
ARGS ?=
BENCH ?= --workspace
IMAGE ?= tars:local
# The venv in which scripts/check_deploy.sh installs its pinned helm (and the other deploy tools).
DEPLOY_VENV ?= target/deploy-venv
HELM := $(DEPLOY_VENV)/bin/helm
CHART := deploy/helm/tars
# The placeholders scripts/check_deploy.sh lints the chart's defaults with (the chart refuses to
# render without a database URL and a JWT secret).
HELM_PLACEHOLDERS := --set secrets.databaseUrl=postgres://tars:placeholder@postgres:5432/tars \
	--set secrets.jwtSecret=0123456789abcdef0123456789abcdef

.DEFAULT_GOAL := help
.PHONY: help build release test lint fmt ci bench serve fleet openapi alerts-test \
	dashboards-check deploy-check fuzz python-client diagrams-check docker helm-lint db-shell \
	redis-shell clean-venvs

help: ## List the targets (this text)
	@echo "usage: make TARGET [ARGS='…'] (variables: ARGS, BENCH, IMAGE, CARGO)"
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-17s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## Debug build of the whole workspace
	$(CARGO) build --workspace

release: ## Release build of the tars binary: target/release/tars
	$(CARGO) build --release --locked -p tars-cli --bin tars

test: ## The README's test command: cargo test --workspace
	$(CARGO) test --workspace

lint: ## What .ci/run checks before the tests: cargo fmt --check, clippy -D warnings
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the workspace (cargo fmt --all)
	$(CARGO) fmt --all

ci: ## Everything CI runs: .ci/run (installs missing tools with apt-get, so it needs root)
	./.ci/run

bench: ## Criterion micro-benchmarks: cargo bench BENCH (default --workspace; e.g. BENCH='-p tars-envs')
	$(CARGO) bench $(BENCH)

serve: ## The HTTP service (embedded mode unless configured): cargo run --release -- serve ARGS
	$(CARGO) run --release -- serve $(ARGS)

fleet: ## Local fleet on this machine's PostgreSQL, NATS, Redis: tars dev fleet ARGS (2 + 2 by default)
	$(CARGO) run --release -- dev fleet $(ARGS)

openapi: ## Regenerate docs/api/openapi.json from the code
	TARS_UPDATE_OPENAPI=1 $(CARGO) test -p tars-server --test api openapi

alerts-test: ## Alert rules: promtool check + test rules, amtool check-config, runbook links
	scripts/check_alerts.sh

dashboards-check: ## Grafana dashboards: structure, every query through promtool, every metric known
	scripts/check_dashboards.sh

deploy-check: ## Dockerfile, Compose fleet and Helm chart, offline (pinned tools in target/deploy-venv)
	scripts/check_deploy.sh

fuzz: ## API fuzz campaign against a fresh server (FUZZ_MAX_EXAMPLES=10 for a short run)
	scripts/api_fuzz.sh

python-client: ## Generate the Python client from docs/api/openapi.json, run it against a fresh server
	scripts/check_python_client.sh

diagrams-check: ## Every Mermaid diagram in docs/, README.md, ARCHITECTURE.md through Mermaid's parser
	scripts/check_diagrams.sh

docker: ## Build the image: docker build -f deploy/docker/Dockerfile -t IMAGE (default tars:local) .
	docker build -f deploy/docker/Dockerfile -t $(IMAGE) .

# helm comes from scripts/check_deploy.sh's venv; the first use runs that check to install it.
$(HELM):
	scripts/check_deploy.sh

helm-lint: $(HELM) ## helm lint --strict deploy/helm/tars: defaults and each ci/*-values.yaml
	@export HELM_CACHE_HOME=$(CURDIR)/target/helm/cache HELM_CONFIG_HOME=$(CURDIR)/target/helm/config \
		HELM_DATA_HOME=$(CURDIR)/target/helm/data; \
	set -e; \
	echo "$(HELM) lint --strict $(CHART) (defaults)"; \
	$(HELM) lint --strict $(CHART) $(HELM_PLACEHOLDERS); \
	for values in $(CHART)/ci/*-values.yaml; do \
		echo "$(HELM) lint --strict $(CHART) -f $$values"; \
		$(HELM) lint --strict $(CHART) -f "$$values"; \
	done

db-shell: ## psql on the configured postgres:// database_url, else sqlite3 on <data_dir>/tars.db
	@url=$$(python3 scripts/config_value.py database_url) || exit 1; \
	case "$$url" in \
		postgres://*|postgresql://*) exec psql "$$url" ;; \
		sqlite:*) file=$${url#sqlite:}; file=$${file#//}; file=$${file%%\?*}; \
			echo "sqlite3 $$file"; exec sqlite3 "$$file" ;; \
		*) echo "make db-shell: database_url '$$url' is neither postgres:// nor sqlite:" >&2; exit 1 ;; \
	esac

redis-shell: ## redis-cli on the configured redis_url (unset: redis://127.0.0.1:6379, as tars dev fleet)
	@url=$$(python3 scripts/config_value.py redis_url) || exit 1; \
	if [ -z "$$url" ]; then \
		url=redis://127.0.0.1:6379; \
		echo "redis_url is not set (TARS_REDIS_URL, tars.toml): using $$url" >&2; \
	fi; \
	echo "redis-cli -u $$url (keys under $$(python3 scripts/config_value.py redis_prefix):)" >&2; \
	exec redis-cli -u "$$url"

clean-venvs: ## Remove the check scripts' tool installs under target/ (reinstalled on next use)
	rm -rf target/deploy-venv target/fuzz-venv target/pyclient-venv target/diagrams-node target/helm
