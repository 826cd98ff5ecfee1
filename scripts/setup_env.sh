#!/usr/bin/env bash
# Creates (or refreshes) the project's virtual environment in .venv with the package installed
# in editable mode, with the test tools and the optional Neutone SDK (so its tests run).
# Re-running is cheap: the install is skipped while pyproject.toml is unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.vschaos-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "[setup] installing vschaos and its dependencies into .venv (first time: a few minutes)"
    # The full log goes to a file: pip's notices about local package mirrors are noise here.
    if ! .venv/bin/python -m pip install --disable-pip-version-check -e '.[test,neutone]' > .venv/pip-install.log 2>&1; then
        tail -n 40 .venv/pip-install.log
        echo "[setup] pip install failed; full log in .venv/pip-install.log" >&2
        exit 1
    fi
    echo "$want" > "$stamp"
fi
