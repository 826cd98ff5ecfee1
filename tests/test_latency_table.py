"""The latency table (``bench/latency_table.py``): preset discovery, the arithmetic of what a player hears, the
delays read from an export and measured by the host, and the README's table against the committed result."""
import json
import math
import re
from pathlib import Path

import pytest
import torch

from bench import latency_table as table
from bench.latency_table import (MAX, NN_SETTINGS, PD, SC, Setting, declared_delays, host_buffer,
                                 measured_forward, nn_rows, shipped_presets, summary_cells)
from vschaos.cli.train import compose_config
from vschaos.dsp.transforms import SpectralTransform
from vschaos.export import export_model

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "bench" / "results" / "latency_table.json"
README = REPO / "README.md"


def test_discovery_finds_every_top_level_preset_but_base(tmp_path):
    presets = shipped_presets()
    assert {"demo", "dgt_mid", "dgt_harmonic", "dgt_high"} <= set(presets)
    assert "base" not in presets and presets == sorted(presets)
    # a preset added later is found; folders (config groups) and other files are not presets
    (tmp_path / "base.yaml").write_text("a: 1\n")
    (tmp_path / "dgt_live.yaml").write_text("defaults:\n  - base\n")
    (tmp_path / "notes.txt").write_text("not a preset\n")
    (tmp_path / "transform").mkdir()
    (tmp_path / "transform" / "dgt_mid.yaml").write_text("hop: 512\n")
    assert shipped_presets(tmp_path) == ["dgt_live"]


@pytest.mark.parametrize("setting, largest_ratio, buffer", [
    (Setting(PD, 256), 512, 512),  # below the hop: raised to it, as nn~ does
    (Setting(PD, 2048), 512, 2048),
    (Setting(PD, 512), 2048, 2048),
    (Setting(MAX, None), 256, 256),  # the default: the largest ratio
    (Setting(SC, None), 32, 64),  # never below the vector
    (Setting(PD, 300), 64, 512),  # a power of two
])
def test_the_buffer_a_host_runs(setting, largest_ratio, buffer):
    assert host_buffer(setting, largest_ratio) == buffer


def test_what_a_player_hears_is_host_buffering_plus_the_model_delay():
    cfg = compose_config("dgt_mid", [])
    rate, n_fft, hop = int(cfg.transform.sample_rate), int(cfg.transform.n_fft), int(cfg.transform.hop)
    rows = {row["setting"]: row for row in nn_rows(n_fft - hop, hop, rate)}
    assert len(rows) == len(NN_SETTINGS)
    pd_default = rows["Pd (nn~), B = 4096 (default)"]
    assert pd_default["ms"] == pytest.approx((2 * 4096 - 64 + n_fft - hop) / rate * 1000)
    assert pd_default["sync_ms"] == pytest.approx((4096 - 64 + n_fft - hop) / rate * 1000)
    max_default = rows["Max (nn~ 1.6), B = largest ratio (default)"]
    assert max_default["buffer"] == hop and max_default["total_samples"] == 2 * hop - 64 + n_fft - hop
    assert rows["Pd (nn~), B = 256"]["buffer"] == hop  # dgt_mid's hop is 512


def _passthrough_transform() -> SpectralTransform:
    return SpectralTransform(sample_rate=8000, n_fft=256, hop=64)


def test_declared_delays_are_what_the_exported_file_states(tmp_path):
    transform = _passthrough_transform()
    path, _ = export_model(table.PassThrough(transform), tmp_path / "double.ts", buffers=[64, 256], batch_sizes=(1,))
    declared = declared_delays(path)
    module = torch.jit.load(str(path))
    assert declared == {name: int(getattr(module, f"{name}_delay")[0]) for name in declared}
    assert set(declared) == {"forward", "encode", "decode"}
    assert declared["forward"] == 256 - 64 and declared["decode"] == 256 // 2


def test_the_host_measures_the_declared_delay_and_the_table_total():
    measured = measured_forward(_passthrough_transform(), 8000)
    assert measured["declared"] == 256 - 64
    assert measured["verify_passed"] and measured["measured"] == 256 - 64
    # Pd, B = 2048, worker thread: 2B - V + delay, measured on the host's nn~ timeline
    assert measured["rendered_expected"] == 2 * 2048 - 64 + 192
    assert measured["rendered_lag"] == measured["rendered_expected"]
    assert measured["rendered_correlation"] > 0.99


@pytest.mark.slow  # two Neutone exports with their checks
def test_the_neutone_plugin_reports_its_hop_queue_on_top_of_the_delay(tmp_path):
    pytest.importorskip("neutone_sdk")
    transform = SpectralTransform(sample_rate=44100, n_fft=512, hop=256)
    rows, checks = table.neutone_rows(table.PassThrough(transform), "double", tmp_path)
    assert checks["note"] == "" and checks["double_passed"]
    # the export's own checks: at the model's rate and at 48 kHz, the reported delay is the table's
    at_check = {check["daw_rate"]: check for check in checks["double"]}
    assert at_check[0]["buffer"] == 256 and at_check[0]["reported"] == 256
    at = {(row["daw_rate"], row["buffer"]): row for row in rows}
    assert set(at) == {(rate, buffer) for rate in (44100, 48000) for buffer in (128, 256, 512)}
    # at the model's rate: the delay plus the queue of whole hops, hop - gcd(buffer, hop)
    assert at[44100, 128]["total_samples"] == 256 + 256 - 128
    assert at[44100, 512]["total_samples"] == 256
    assert at[44100, 512]["ms"] == pytest.approx(256 / 44.1)
    # resampled: at least the delay, in DAW samples
    assert all(at[48000, b]["total_samples"] >= math.ceil(256 * 48000 / 44100) for b in (128, 256, 512))
    assert at_check[48000]["reported"] == at[48000, 256]["total_samples"]


def test_an_unknown_preset_is_one_line(capsys):
    assert table.main(["--presets", "dgt_nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'dgt_nope'" in err and "dgt_mid" in err


def _result() -> dict:
    return json.loads(RESULT.read_text(encoding="utf-8"))["data"]


def test_the_committed_table_agrees_with_the_presets_it_lists():
    data = _result()
    assert not data["problems"]
    presets = shipped_presets()
    for result in data["presets"]:
        assert result["preset"] in presets, f"{result['preset']}: no longer a preset: rerun the bench"
        cfg = compose_config(result["preset"], [])
        rate, n_fft, hop = int(cfg.transform.sample_rate), int(cfg.transform.n_fft), int(cfg.transform.hop)
        assert (result["sample_rate"], result["n_fft"], result["hop"]) == (rate, n_fft, hop)
        assert result["declared"]["forward"] == n_fft - hop == result["measured"]["measured"]
        for row in result["nn"]:
            host = (2 if row["threaded"] else 1) * row["buffer"] - row["vector"]
            assert row["ms"] == pytest.approx((host + n_fft - hop) / rate * 1000)


def _readme_latency_rows() -> dict:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("**Latency.**"):]
    section = section[:section.index("\n\n", section.index("| preset"))]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    assert lines[0] == table.SUMMARY_HEADER
    rows = {}
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        for name in re.findall(r"`([^`]+)`", cells[0]):
            rows[name] = cells[1:]
    return rows


def test_the_readme_table_quotes_the_committed_result():
    rows = _readme_latency_rows()
    results = {result["preset"]: result for result in _result()["presets"]}
    assert set(rows) == set(results), ("README.md's Latency table and bench/results/latency_table.json list "
                                       f"different presets ({sorted(rows)} against {sorted(results)}): copy the "
                                       "summary table of bench/results/latency_table.md")
    for name, cells in rows.items():
        assert cells == summary_cells(results[name]), name


@pytest.mark.slow
def test_a_preset_end_to_end(tmp_path):
    result = table.preset_result("demo", tmp_path)
    assert result["declared"]["forward"] == 1024 - 256 == result["measured"]["measured"]
    assert result["measured"]["rendered_lag"] == result["measured"]["rendered_expected"]
    assert result["largest_ratio"] == 256
    assert len(result["nn"]) == len(NN_SETTINGS)
