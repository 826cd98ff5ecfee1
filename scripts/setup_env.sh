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
    # a full disk is the usual cause of a failed first install: say so before, and after if it happened
    free_gb=$(df -Pk .venv | awk 'NR == 2 {printf "%.1f", $4 / 1048576}')
    echo "[setup] free disk where .venv lives: ${free_gb} GB"
    if awk -v free="$free_gb" 'BEGIN {exit !(free < 7)}'; then
        echo "[setup] WARNING: under 7 GB free; the install may run out of space (pip's cache is not used)" >&2
    fi
    echo "[setup] pip's own progress follows; its full log goes to .venv/pip-install.log"
    if ! .venv/bin/python -m pip install --disable-pip-version-check --no-cache-dir --progress-bar on \
            --log .venv/pip-install.log -e '.[test,neutone]'; then
        if grep -q "No space left on device" .venv/pip-install.log 2>/dev/null; then
            echo "[setup] pip install failed: the disk is full ($(df -Ph .venv | awk 'NR == 2 {print $4}') free)." \
                 "Free about 7 GB and run this again; full log in .venv/pip-install.log" >&2
        else
            echo "[setup] pip install failed; full log in .venv/pip-install.log" >&2
        fi
        exit 1
    fi
    echo "[setup] done: .venv takes $(du -sh .venv | cut -f1)"
    echo "$want" > "$stamp"
fi
