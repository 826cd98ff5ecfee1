"""The README cannot drift from the code: every command line in its ``sh`` blocks is checked against the command
it names (its ``--help`` lists every option the line uses; a Hydra line composes with the preset and overrides it
writes), and every relative link in the README and docs/ points to a file that exists."""
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
SH_BLOCK = re.compile(r"```sh\n(.*?)```", re.S)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CONSOLE_SCRIPTS = {  # pyproject's [project.scripts], as the module each one runs
    "vschaos-train": "train_model.py", "vschaos-generate": "generate.py", "vschaos-script": "script.py",
    "vschaos-extract-pitch": "extract_pitch.py", "vschaos-host": "-m vschaos.host",
}
SUBCOMMANDS = {"generate.py": 1, "-m vschaos.host": 1}  # commands whose first argument picks a subcommand


def command_lines(markdown: str) -> List[str]:
    """Every command of the ``sh`` blocks of ``markdown``: comments dropped, continued lines joined,
    optional parts' brackets and alternatives (``[--a X|Y]``) flattened to their tokens."""
    lines = []
    for block in SH_BLOCK.findall(markdown):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                lines.append(re.sub(r"[\[\]]", " ", line))
    return lines


def parse_command(line: str) -> Tuple[str, List[str]]:
    """``(program, arguments)`` of a README line: ``python X.py a b`` -> ``("X.py", [a, b])``,
    ``python -m vschaos.host verify m.ts`` / ``vschaos-host verify m.ts`` -> ``("-m vschaos.host", [...])``."""
    words = shlex.split(line)
    if words[0] in CONSOLE_SCRIPTS:
        return CONSOLE_SCRIPTS[words[0]], words[1:]
    if words[0] == "bash":
        return "bash", words[1:]
    assert words[0] == "python", f"README command does not start with python, bash or a console script: {line}"
    if words[1] == "-m":
        return f"-m {words[2]}", words[3:]
    return words[1], words[2:]


def options_used(arguments: List[str]) -> List[str]:
    """The option names (``--out``, ``-b``) among ``arguments``."""
    return sorted({a.split("=", 1)[0] for a in arguments if re.match(r"^--?[A-Za-z][\w-]*", a)})


def test_the_parsers_read_a_readme_line_as_written():
    md = "x\n```sh\npython generate.py reconstruct RUN --files a.wav [--sr 44100] \\\n   --out OUT  # note\n```\n"
    (line,) = command_lines(md)
    program, arguments = parse_command(line)
    assert (program, arguments[0]) == ("generate.py", "reconstruct")
    assert options_used(arguments) == ["--files", "--out", "--sr"]
    assert parse_command("vschaos-host verify m.ts --buffers 512")[0] == "-m vschaos.host"


_HELP_CACHE: Dict[Tuple[str, ...], str] = {}


def help_text(program: str, arguments: List[str]) -> str:
    """``--help`` of ``program`` (and its subcommand, where it has them), from a subprocess run as a user would."""
    sub = arguments[:SUBCOMMANDS.get(program, 0)]
    key = (program, *sub)
    if key not in _HELP_CACHE:
        argv = [sys.executable, *program.split(), *sub, "--help"]
        done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{' '.join(argv[1:])} failed: {done.stderr[-500:]}"
        _HELP_CACHE[key] = done.stdout
    return _HELP_CACHE[key]


README_LINES = command_lines(README.read_text(encoding="utf-8"))


def test_the_readme_documents_the_quick_start_first():
    assert README_LINES[:2] == ["bash demo.sh", "bash test.sh"]
    assert len(README_LINES) >= 12


@pytest.mark.parametrize("line", [line for line in README_LINES if "train_model.py" not in line])
def test_every_readme_command_takes_the_options_it_shows(line):
    program, arguments = parse_command(line)
    if program == "bash":
        assert (REPO / arguments[0]).is_file(), line
        return
    if not program.startswith("-m"):
        assert (REPO / program).is_file(), f"{program} does not exist: {line}"
    text = help_text(program, arguments)
    missing = [o for o in options_used(arguments) if not re.search(rf"(^|[\s,\[]){re.escape(o)}\b", text)]
    assert not missing, f"README line {line!r} uses {missing}, which `{program} --help` does not list"


@pytest.mark.parametrize("line", [line for line in README_LINES if "train_model.py" in line])
def test_every_readme_training_line_composes(line):
    from vschaos.cli.train import compose_config

    _, arguments = parse_command(line)
    if arguments[0] == "prior":  # prior RUN key=value: options of the prior, not of a training config
        from vschaos.training.prior import PRIOR_DEFAULTS

        unknown = [a for a in arguments[2:] if "=" in a and a.split("=", 1)[0] not in PRIOR_DEFAULTS]
        assert not unknown, f"{line}: {unknown} are not options of the prior ({sorted(PRIOR_DEFAULTS)})"
        return
    if arguments[0] == "resume":  # resume RUN key=value: the keys must exist in a run's config (any preset's)
        overrides, preset = [a for a in arguments[2:] if "=" in a], "dgt_mid"
    else:
        preset = arguments[arguments.index("--config-name") + 1]
        overrides = [a for a in arguments if "=" in a]
    cfg = compose_config(preset, overrides)  # raises on an unknown preset or key
    for override in overrides:
        key, value = override.lstrip("+").split("=", 1)
        node = cfg
        for part in key.split("."):
            node = node[part]
        assert str(node) == value, f"{override} did not set {key} (got {node!r})"


def test_relative_links_of_the_readme_and_docs_point_to_files():
    broken = []
    for page in [README, *DOCS]:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            path = (page.parent / target.split("#", 1)[0]).resolve()
            if not path.exists():
                broken.append(f"{page.relative_to(REPO)} -> {target}")
    assert not broken, broken
