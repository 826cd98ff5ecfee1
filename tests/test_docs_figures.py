"""Every measured figure the README quotes comes from a results file that a benchmark or experiment wrote.

The convention: the README has a section ``## Headline figures`` holding one markdown table; the last cell of
each row links to a results file (``bench/results/NAME.md`` or ``experiments/results/NAME.md``, a dated copy in
``history/`` too), and every number in the row's other cells appears in that file's text, written the same or
equal to the precision the README writes it (``24.3`` for ``24.31``). No other part of the README may state a
measurement: a number followed by ``ms``, ``us``/``µs``, ``dB``, ``x``/``×`` (or preceded by them), ``1/RTF``,
``SC``, ``frames/s`` or ``steps/s``. Configuration is not measurement: kHz, Hz, samples and GB are not units
checked, and numbers in code (fenced blocks and inline code) are left alone.
"""
import re
from pathlib import Path
from typing import List, Optional, Tuple

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
HEADLINE = "## Headline figures"
RESULT_LINK = re.compile(r"\[[^\]]*\]\((?:\./)?((?:bench|experiments)/results/(?:history/)?[A-Za-z0-9_.-]+\.md)\)")
# a number: digits, optional thousands separators and decimals, not inside a word (fp32, dgt2), though a
# leading x or × (x24.3) is a ratio's sign
NUMBER = re.compile(r"(?<![\w.])[x×]?(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?")
MEASURED = re.compile(
    r"(?<![\w.])\d[\d,]*(?:\.\d+)?\s?(?:ms|us|µs|dB|x|×|SC|1/RTF|frames/s|steps/s)(?![\w/])"
    r"|(?<![\w.])[x×]\s?\d[\d,]*(?:\.\d+)?(?![\w-])"  # x24.3, not x86-64
    r"|\b(?:1/RTF|SC)\s?(?:of|=|:|is)?\s?\d")
# configuration a sentence may give with a unit of time: a hop, a fade, a window
CONFIGURATION = re.compile(r"\d[\d.]*\s?ms\s(?:hop|hops|fade|fades|window|windows)\b")


def numbers(text: str) -> List[str]:
    """The numbers written in ``text``, as written (thousands separators kept, a leading x/× dropped)."""
    return [match.group(1) + (match.group(2) or "") for match in NUMBER.finditer(text)]


def appears_in(number: str, text: str) -> bool:
    """``number`` is written in ``text``: the same string, or a number that rounds to it at its precision."""
    value = float(number.replace(",", ""))
    places = len(number.split(".")[1]) if "." in number else 0
    for candidate in numbers(text):
        if candidate.replace(",", "") == number.replace(",", ""):
            return True
        if round(float(candidate.replace(",", "")), places) == round(value, places):
            return True
    return False


def strip_code(line: str) -> str:
    """``line`` without its inline code spans."""
    return re.sub(r"`[^`]*`", "", line)


def readme_lines(text: str) -> List[Tuple[int, str, bool]]:
    """``(line number, line, inside a fenced code block)`` for every line."""
    out, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            out.append((number, line, True))
        else:
            out.append((number, line, fenced))
    return out


def headline_span(text: str) -> Optional[Tuple[int, int]]:
    """First and last line number (1-based, inclusive) of the headline section, None when there is none."""
    start = None
    for number, line, fenced in readme_lines(text):
        if fenced:
            continue
        if start is None and line.strip() == HEADLINE:
            start = number
        elif start is not None and re.match(r"#{1,2} ", line):
            return start, number - 1
    return (start, len(text.splitlines())) if start is not None else None


def table_rows(lines: List[Tuple[int, str]]) -> List[Tuple[int, List[str]]]:
    """``(line number, cells)`` of the body rows of the markdown table in ``lines`` (header and rule left out)."""
    table = [(number, line.strip()) for number, line in lines if line.strip().startswith("|")]
    rows = []
    for index, (number, line) in enumerate(table):
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if index == 0 or all(re.fullmatch(r":?-{3,}:?", cell) for cell in cells):
            continue
        rows.append((number, cells))
    return rows


def headline_problems(text: str, repo: Path) -> List[str]:
    """What is wrong with the headline table: one message per problem, naming the README line."""
    span = headline_span(text)
    if span is None:
        return [f"README.md has no '{HEADLINE}' section"]
    lines = text.splitlines()
    section = [(number, lines[number - 1]) for number in range(span[0] + 1, span[1] + 1)]
    if not any(line.strip().startswith("|") for _, line in section):
        return [f"README.md:{span[0]}: '{HEADLINE}' holds no markdown table"]
    problems = []
    for number, cells in table_rows(section):
        link = RESULT_LINK.fullmatch(cells[-1])
        if link is None:
            problems.append(f"README.md:{number}: the last cell should be a link to bench/results/NAME.md or "
                            f"experiments/results/NAME.md, not {cells[-1]!r}")
            continue
        target = repo / link.group(1)
        if not target.is_file():
            problems.append(f"README.md:{number}: {link.group(1)} does not exist")
            continue
        source = target.read_text(encoding="utf-8")
        for figure in numbers(strip_code(" | ".join(cells[:-1]))):
            if not appears_in(figure, source):
                problems.append(f"README.md:{number}: {figure} is not in {link.group(1)}")
    return problems


def measurement_problems(text: str) -> List[str]:
    """Measured figures outside the headline section (code and configuration aside), naming each line."""
    span = headline_span(text) or (0, -1)
    problems = []
    for number, line, fenced in readme_lines(text):
        if fenced or span[0] <= number <= span[1]:
            continue
        prose = CONFIGURATION.sub("", strip_code(line))
        found = MEASURED.search(prose)
        if found:
            problems.append(f"README.md:{number}: a measured figure ({found.group(0).strip()!r}) outside "
                            f"'{HEADLINE}': quote it in that table, linked to the results file that measured it")
    return problems


def test_readme_headline_figures_come_from_the_linked_results():
    problems = headline_problems(README.read_text(encoding="utf-8"), REPO)
    assert not problems, "\n".join(problems)


def test_readme_states_no_measurement_outside_the_headline_figures():
    problems = measurement_problems(README.read_text(encoding="utf-8"))
    assert not problems, "\n".join(problems)


# canaries: the checkers on small texts


def test_numbers_are_read_as_written():
    assert numbers("x24.3 real time, 4,442 frames/s, 1/RTF 39, fp32 and dgt2, 12.5%, 3x") == \
        ["24.3", "4,442", "1", "39", "12.5", "3"]
    assert numbers("end of a sentence 7.25.") == ["7.25"]


@pytest.mark.parametrize("number, text, found", [
    ("24.3", "| 24.3 |", True), ("24.3", "x24.31 real time", True), ("24.3", "24.36", False),
    ("4,442", "4442.4 frames/s", True), ("4,442", "4,442", True), ("100", "99.6 %", True), ("100", "99.4", False),
    ("0.067", "0.0672", True), ("0.067", "0.0676", False), ("39", "1/RTF 39.2", True), ("1.5", "nothing here", False),
])
def test_a_number_appears_as_written_or_at_its_precision(number, text, found):
    assert appears_in(number, text) is found


def _readme(rows: str, elsewhere: str = "") -> str:
    return (f"# vschaos\n\nIntro, 44.1 kHz, n_fft 2048, 512 samples, about 6 GB.\n{elsewhere}\n{HEADLINE}\n\n"
            f"| what | figure | result |\n|---|---|---|\n{rows}\n## Documentation\n\ntext\n")


def test_headline_rows_must_quote_the_linked_file(tmp_path):
    results = tmp_path / "bench" / "results"
    results.mkdir(parents=True)
    (results / "dsp_speed.md").write_text("# dsp_speed\n\n| reconstruct | 1 | 24.31 | 3.5 |\n")
    good = "| reconstruct, 1 thread | x24.3 real time | [dsp_speed](bench/results/dsp_speed.md) |\n"
    assert headline_problems(_readme(good), tmp_path) == []
    wrong = "| reconstruct, 1 thread | x25.0 real time | [dsp_speed](bench/results/dsp_speed.md) |\n"
    assert headline_problems(_readme(wrong), tmp_path) == ["README.md:9: 25.0 is not in bench/results/dsp_speed.md"]
    missing = "| reconstruct | x24.3 | [gone](bench/results/gone.md) |\n"
    assert headline_problems(_readme(missing), tmp_path) == ["README.md:9: bench/results/gone.md does not exist"]
    unlinked = "| reconstruct | x24.3 | measured on Tuesday |\n"
    assert headline_problems(_readme(unlinked), tmp_path)[0].startswith("README.md:9: the last cell should be a link")
    elsewhere = "| reconstruct | x24.3 | [readme](README.md) |\n"
    assert "the last cell should be a link" in headline_problems(_readme(elsewhere), tmp_path)[0]
    assert headline_problems("# vschaos\n\nno section\n", tmp_path) == ["README.md has no '## Headline figures' section"]
    assert headline_problems(f"# v\n\n{HEADLINE}\n\nprose only\n", tmp_path) == \
        ["README.md:3: '## Headline figures' holds no markdown table"]


@pytest.mark.parametrize("sentence", [
    "A forward call takes 2.1 ms on one thread.", "It runs at x24.3 real time.", "It runs 24x faster.",
    "The plugin reaches 1/RTF 45.", "Mean SC 0.067 on sampled notes.", "A level error of -1.5 dB.",
    "It trains at 4,442 frames/s.", "About 250 us per call.", "It reaches 2.5 steps/s.", "Twice: 2× the speed.",
])
def test_a_measurement_outside_the_headline_section_names_its_line(sentence):
    problems = measurement_problems(_readme("", elsewhere=sentence))
    assert len(problems) == 1 and problems[0].startswith("README.md:4: a measured figure"), problems


@pytest.mark.parametrize("sentence", [
    "Run Pd at 44100 Hz or 22.05 kHz with a buffer of 2048 samples.", "The download is about 6 GB.",
    "Call `bench --seconds 10 -> 2.1 ms`.", "Pitch is tracked every 10 ms hop.", "Octaves 0-11 and MIDI 48-84.",
    "A 3 by 3 grid of the mix2 presets, fp32.", "About 6 GB on Linux x86-64.",
])
def test_configuration_and_code_are_not_measurements(sentence):
    assert measurement_problems(_readme("", elsewhere=sentence)) == []
    fenced = _readme("", elsewhere="```\nforward takes 2.1 ms\n```")
    assert measurement_problems(fenced) == []
