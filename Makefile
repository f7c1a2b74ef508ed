.PHONY: setup check lint test demo bench
setup: ; scripts/setup
check: ; scripts/check
lint: ; scripts/lint
test: ; scripts/test
demo: ; scripts/demo
bench: ; scripts/setup && .venv/bin/tally bench edge --json
