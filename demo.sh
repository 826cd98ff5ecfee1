#!/usr/bin/env bash
# Quick start, command 1: set up .venv, synthesise the demo dataset, train the demo model,
# export it for nn~ (verified by our streaming host), and write reconstructions and latent
# trajectories. A few minutes on 2 CPU cores. Outputs: demo_data/, runs/demo/, exports/, generations/.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup_env.sh
PY=.venv/bin/python

echo "== 1/5 demo dataset -> demo_data/"
if [ ! -f demo_data/metadata/instrument/metadata.txt ]; then
    $PY data_tools/make_demo_dataset.py demo_data
fi
$PY data_tools/check_dataset.py demo_data --transform demo   # the front end the demo preset trains with

echo "== 2/5 training the demo model -> runs/demo/"
$PY train_model.py --config-name demo name=demo rundir=runs data.dataset.root=demo_data

echo "== 3/5 exporting for nn~ -> exports/demo.ts (verified by vschaos.host)"
$PY script.py runs/demo -o exports
echo "   and for the Neutone plugin -> exports/demo.nm (verified and benchmarked by the Neutone SDK)"
$PY script.py runs/demo -o exports --format neutone

echo "== 4/5 reconstructions (two instruments) -> generations/reconstructions/"
$PY generate.py reconstruct runs/demo --files demo_data/data/flute demo_data/data/bell --out generations

echo "== 5/5 latent trajectories -> generations/trajectories/"
$PY generate.py trajectories runs/demo --trajectories sin random line circle -b 2 -s 256 --out generations
$PY generate.py trajectories runs/demo --trajectories interpolate -s 512 --out generations \
    --files demo_data/data/flute/flute_00.wav demo_data/data/bell/bell_00.wav

echo
echo "Done in ${SECONDS} s. Listen to generations/reconstructions/ and generations/trajectories/ (with .png plots),"
echo "load exports/demo.ts in nn~ / nn.ar (exports/demo.nm in the Neutone plugin), and see training curves with:"
echo "  .venv/bin/tensorboard --logdir runs/demo"
