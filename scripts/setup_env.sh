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
    # the size first: on Linux x86-64 PyPI's torch brings NVIDIA's CUDA libraries even for CPU use
    echo "[setup] installing vschaos and its dependencies into .venv: about 6 GB on disk on Linux x86-64"
    echo "[setup] (torch 1.2 GB + its CUDA libraries 3.2 GB; ~3.3 GB of wheels to download the first time)."
    echo "[setup] pip's own progress follows; its full log goes to .venv/pip-install.log"
    if ! .venv/bin/python -m pip install --disable-pip-version-check --progress-bar on \
            --log .venv/pip-install.log -e '.[test,neutone]'; then
        echo "[setup] pip install failed; full log in .venv/pip-install.log" >&2
        exit 1
    fi
    echo "[setup] done: .venv takes $(du -sh .venv | cut -f1)"
    echo "$want" > "$stamp"
fi
