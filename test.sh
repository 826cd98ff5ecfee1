#!/usr/bin/env bash
# Quick start, command 2: set up .venv and run the whole test suite (slow tests included).
# Extra arguments go to pytest, e.g. `bash test.sh -m "not slow"`.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup_env.sh
exec .venv/bin/python -m pytest "$@"
