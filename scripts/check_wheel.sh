#!/usr/bin/env bash
# CI: the package works as a wheel, not only as the editable checkout. Builds a wheel, installs it into a
# fresh venv outside the checkout and runs the console scripts from another directory: compose the demo
# preset (+check=1, configs come from the installed package), train it for one epoch on a small demo
# dataset, export it, and describe the export with vschaos-host.
# The fresh venv reuses the dependencies already installed in .venv (a .pth line) instead of downloading
# torch again; vschaos itself comes only from the wheel (checked below).
set -euo pipefail
cd "$(dirname "$0")/.."
# the project venv (scripts/setup_env.sh made it; .ci/run runs test.sh first); VENV=... to use another
PY=$(cd "${VENV:-.venv}" && pwd)/bin/python
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "[wheel] building the wheel from a copy of the sources"
mkdir -p "$work/src"
cp -r pyproject.toml README.md vschaos "$work/src/"
find "$work/src" -name __pycache__ -prune -exec rm -rf {} +
"$PY" -m pip wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation -w "$work/dist" "$work/src"

echo "[wheel] installing $(basename "$work"/dist/*.whl) into a fresh venv"
"$PY" -m venv --without-pip "$work/venv"
VPY=$work/venv/bin/python
deps=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
"$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' | {
    read -r site; echo "$deps" > "$site/_vschaos_ci_dependencies.pth"; }
"$PY" -m pip --python "$VPY" install --quiet --disable-pip-version-check --no-deps --no-index "$work"/dist/*.whl

mkdir "$work/elsewhere"
cd "$work/elsewhere"
export PATH="$work/venv/bin:$PATH" OMP_NUM_THREADS=1
"$VPY" - "$work/venv" <<'PY'
import sys
import vschaos, vschaos.configs
assert vschaos.__file__.startswith(sys.argv[1]), f"vschaos imported from {vschaos.__file__}, not the wheel"
assert (vschaos.configs.CONFIG_DIR / "demo.yaml").is_file(), "the wheel lacks the configs"
print(f"[wheel] vschaos from {vschaos.__file__}")
PY
"$VPY" -c 'import sys; from vschaos.cli.dataset_tools import make_demo_dataset_main; sys.exit(make_demo_dataset_main(sys.argv[1:]))' \
    data --minutes 0.5 --files-per-instrument 2
vschaos-train --config-name demo data.dataset.root=data +check=1
vschaos-train --config-name demo name=wheel rundir=runs data.dataset.root=data trainer.max_epochs=1
vschaos-script runs/wheel -o exports
vschaos-host describe exports/wheel.ts
echo "[wheel] ok: the installed wheel trains, exports and hosts from $PWD"
