"""Results written by the benchmarks themselves (``bench.common.write_results``) and the page built from them
(``python -m bench.report`` -> ``docs/BENCHMARKS.md``, never edited by hand)."""
import ast
import datetime
import importlib
import importlib.util
import json
import shlex
import sys
from pathlib import Path

import pytest

from bench import report
from bench.common import REPO, Run, command_line, demote_headings, meta_line, start_run, write_results

SCRIPT_FOLDERS = ("bench", "experiments")
META_KEYS = {"source", "command", "started_utc", "finished_utc", "machine", "commit", "dirty", "load_average",
             "competing_process"}


def _run(source: str = "bench/dsp_speed.py") -> Run:
    return Run(source=source, started=datetime.datetime(2026, 12, 7, 9, 30, 5, tzinfo=datetime.timezone.utc),
               load_start=(1.5, 1.0, 0.5), competing="no", command="python -m bench.dsp_speed --seconds 2")


def test_write_results_records_the_run_in_the_latest_and_a_dated_copy(tmp_path):
    data = {"rows": [{"what": "analysis", "ms": 1.25}], "nested": {"a": [1, 2]}}
    out = write_results("speed", data, "## Table\n\n| a |\n|---|\n| 1.25 |", tmp_path, run=_run())
    assert out == tmp_path
    written = json.loads((tmp_path / "speed.json").read_text())
    assert written["data"] == data  # exact round trip
    meta = written["meta"]
    assert set(meta) == META_KEYS
    assert meta["source"] == "bench/dsp_speed.py"
    assert meta["started_utc"] == "2026-12-07T09:30:05Z"
    assert meta["command"] == "python -m bench.dsp_speed --seconds 2"
    assert meta["load_average"]["start"] == [1.5, 1.0, 0.5] and len(meta["load_average"]["end"]) == 3
    assert set(meta["machine"]) == {"cpu", "cores", "os", "python", "torch"} and meta["machine"]["cores"] >= 1
    assert meta["commit"] is None or len(meta["commit"]) == 40
    assert meta["competing_process"] == "no"
    markdown = (tmp_path / "speed.md").read_text()
    assert markdown == f"# speed\n\n{meta_line(meta)}\n\n### Table\n\n| a |\n|---|\n| 1.25 |\n"
    assert (tmp_path / "history" / "speed-20261207-093005.json").read_text() == (tmp_path / "speed.json").read_text()
    assert (tmp_path / "history" / "speed-20261207-093005.md").read_text() == markdown


def test_write_results_defaults_to_the_results_folder_beside_the_script(tmp_path, monkeypatch):
    monkeypatch.setattr("bench.common.REPO", tmp_path)
    out = write_results("study", {}, "text", run=_run("experiments/study.py"))
    assert out == tmp_path / "experiments" / "results" and (out / "study.md").is_file()


@pytest.mark.parametrize("name", ["", "../escape", "a/b", "with space", ".hidden"])
def test_write_results_refuses_a_name_that_is_not_a_plain_file_name(tmp_path, name):
    with pytest.raises(ValueError, match="results name"):
        write_results(name, {}, "text", tmp_path, run=_run())
    assert list(tmp_path.iterdir()) == []


def test_meta_line_says_when_where_on_which_code_under_which_load_and_how():
    meta = {"source": "bench/x.py", "command": "python -m bench.x --busy", "started_utc": "2026-12-07T09:30:05Z",
            "finished_utc": "2026-12-07T09:41:00Z",
            "machine": {"cpu": "AMD EPYC", "cores": 2, "os": "Linux", "python": "3.11.7", "torch": "2.14.1"},
            "commit": "0123456789abcdef0123456789abcdef01234567", "dirty": ["bench/x.py"],
            "load_average": {"start": [1.5, 1, 0.5], "end": [2.25, 1, 0.5]}, "competing_process": "yes"}
    line = meta_line(meta)
    assert line == ("Measured 2026-12-07 09:30 to 09:41 UTC on AMD EPYC (2 cores), Linux, Python 3.11.7, torch 2.14.1; "
                    "commit 0123456789 with uncommitted changes to bench/x.py; load average (1 min) 1.50 at start, "
                    "2.25 at end; competing process: yes; command: `python -m bench.x --busy`.")
    assert "commit 0123456789;" in meta_line({**meta, "dirty": []})
    assert "4 code files" in meta_line({**meta, "dirty": ["a", "b", "c", "d"]})
    assert "commit unknown" in meta_line({**meta, "commit": None, "dirty": None})


def test_start_run_records_the_competing_process_and_the_command(monkeypatch):
    monkeypatch.setattr(sys, "orig_argv", [str(REPO / ".venv" / "bin" / "python"), "-m", "bench.x", "--name", "a b"])
    run = start_run(REPO / "bench" / "x.py", competing=True)
    assert run.source == "bench/x.py"
    assert run.command == ".venv/bin/python -m bench.x --name 'a b'"
    assert shlex.split(run.command)[-1] == "a b"
    assert run.competing.startswith("yes, one CPU-bound process")
    assert start_run(REPO / "bench" / "x.py").competing == "no"
    assert start_run(REPO / "bench" / "x.py", competing="during the busy rows").competing == "during the busy rows"
    assert run.started.tzinfo is datetime.timezone.utc
    assert command_line(["/usr/bin/python3", "-c", "pass"]) == "/usr/bin/python3 -c pass"  # outside the repo: as is


def test_demote_headings_leaves_code_alone():
    text = "# A\n\nx\n\n```\n# not a heading\n```\n## B\n#hashtag"
    assert demote_headings(text) == "## A\n\nx\n\n```\n# not a heading\n```\n### B\n#hashtag"


def _fake_repo(tmp_path: Path) -> Path:
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "speed.py").write_text('"""Speed of the thing,\nin two lines.\n\nDetails."""\n')
    write_results("speed", {"x": 1}, "| a |\n|---|\n| 3.5 |", tmp_path / "bench" / "results",
                  run=_run("bench/speed.py"))
    return tmp_path


def test_report_has_a_section_per_latest_result(tmp_path):
    repo = _fake_repo(tmp_path)
    text = report.build(repo)
    assert text.startswith("# Benchmark and experiment results\n\n<!-- generated by `python -m bench.report`")
    assert text.count("## speed\n") == 1  # the dated copy in history/ is not a section
    result_md = (repo / "bench" / "results" / "speed.md").read_text()
    assert ("## speed\n\nSpeed of the thing, in two lines.\n\nScript: [`bench/speed.py`](../bench/speed.py); "
            "result: [`bench/results/speed.md`](../bench/results/speed.md).\n\n"
            + result_md.partition("\n")[2].strip() + "\n") in text
    assert "# Experiments (`experiments/`)\n\nNo results yet." in text


def test_report_names_the_file_it_cannot_use(tmp_path):
    repo = _fake_repo(tmp_path)
    results = repo / "bench" / "results"
    (results / "speed.md").write_text("# other\n")
    with pytest.raises(report.ReportError, match=r"bench/results/speed.md: first line should be '# speed'"):
        report.build(repo)
    (results / "speed.md").unlink()
    with pytest.raises(report.ReportError, match=r"bench/results/speed.json: its markdown speed.md cannot be read"):
        report.build(repo)
    (results / "speed.json").write_text('{"rows": []}')
    with pytest.raises(report.ReportError, match=r"bench/results/speed.json: not a result written by"):
        report.build(repo)


def test_benchmarks_page_is_what_the_committed_results_give():
    expected = report.build(REPO)
    page = REPO / report.OUTPUT
    current = page.read_text(encoding="utf-8") if page.exists() else ""
    assert current == expected, f"{report.OUTPUT} is stale or was edited by hand: run `python -m bench.report`"


def test_every_result_on_the_page_names_an_existing_script():
    for path in report.result_files(REPO):
        source = json.loads(path.read_text())["meta"]["source"]
        assert (REPO / source).is_file(), f"{path.relative_to(REPO)}: its script {source} does not exist"


@pytest.mark.parametrize("path", sorted(p for folder in SCRIPT_FOLDERS for p in (REPO / folder).glob("*.py")),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_scripts_import_the_shared_helpers_as_a_package_without_sys_path_edits(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    assert ast.get_docstring(tree), f"{path.name}: the report takes what it measures from its docstring"
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            assert node.module not in ("common", "neutone_speed"), \
                f"{path.name}:{node.lineno}: import from bench.{node.module} (run as python -m)"
        if isinstance(node, ast.Attribute) and node.attr == "path" and getattr(node.value, "id", None) == "sys":
            pytest.fail(f"{path.name}:{node.lineno}: sys.path edited; run the script as python -m from the root")


@pytest.mark.parametrize("path", sorted(p for folder in SCRIPT_FOLDERS for p in (REPO / folder).glob("*.py")),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_script_imports_as_a_module(path):
    """What ``python -m bench.NAME`` does first: a renamed vschaos function fails here, not after a long run."""
    if path.stem.startswith("neutone") and importlib.util.find_spec("neutone_sdk") is None:
        pytest.skip("the Neutone SDK is not installed (the neutone extra)")
    importlib.import_module(f"{path.parent.name}.{path.stem}")


def test_phase_quality_sounds_shorter_than_the_last_pluck(capsys):
    from experiments.phase_quality import main, test_sounds

    sounds = test_sounds(8000, 0.5)  # the plucks at 0.7 s and 1.3 s fall after the end
    assert len(sounds) == 6 and all(sound.shape == (4000,) for sound in sounds.values())
    with pytest.raises(SystemExit) as stopped:
        main(["--seconds", "0"])
    assert stopped.value.code == 2
    assert "--seconds 0: the test sounds need more than 0.05 s" in capsys.readouterr().err


def test_dirty_lists_changed_code_but_not_documents_or_earlier_results(tmp_path, monkeypatch):
    import subprocess

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                       check=True, capture_output=True)

    files = ["vschaos/a.py", "bench/results/x.json", "README.md", "train.py", "docs/page.md"]
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("one\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "start")
    monkeypatch.setattr("bench.common.REPO", tmp_path)
    from bench.common import run_metadata

    assert run_metadata(_run())["dirty"] == []
    for name in files:
        (tmp_path / name).write_text("two\n")
    meta = run_metadata(_run())
    assert meta["dirty"] == ["train.py", "vschaos/a.py"]
    assert len(meta["commit"]) == 40
