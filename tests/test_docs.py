"""The generated parts of README.md and docs/ are current, and every command has a reference page."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _load_generator():
    spec = importlib.util.spec_from_file_location("gen_docs", REPO / "tools" / "gen_docs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


gen_docs = _load_generator()


@pytest.fixture(scope="module")
def generated() -> tuple[dict[Path, str], list[str]]:
    return gen_docs.generate(REPO)


@pytest.fixture(scope="module")
def command_names() -> list[str]:
    return [c.name for c in gen_docs.commands()]


def test_generated_regions_are_current(generated):
    changed, problems = generated
    stale = sorted(p.relative_to(REPO).as_posix() for p in changed)
    assert stale == [], f"stale: {stale}; run python tools/gen_docs.py"
    assert problems == []


def test_every_command_has_a_page_and_a_command_map_line(command_names):
    readme = (REPO / "README.md").read_text()
    command_map = dict(gen_docs.regions(readme))["command-map"]
    texts = {p: p.read_text() for p in gen_docs.doc_files(REPO)}
    pages = gen_docs.command_pages(texts)
    assert {"pda-data crop-cosers", "pda-data landmarks import", "pda-train run"} <= set(command_names)
    for name in command_names:
        assert name in pages, name
        assert pages[name].parent == REPO / "docs"
        assert f"| `{name}` |" in command_map, name
        assert f"(docs/{pages[name].name}#{gen_docs._anchor(name)})" in command_map, name


def test_option_table_lists_every_visible_parameter():
    cmd = next(c for c in gen_docs.commands() if c.name == "pda-data crop-cosers")
    table = gen_docs.option_table(cmd)
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    visible = [p for p in cmd.click.params if not getattr(p, "hidden", False)]
    assert len(rows) == len(visible)
    assert table.startswith("`pda-data crop-cosers [OPTIONS] INPUTS...`")
    assert any(row.startswith("| `INPUTS...` |") and "| required |" in row for row in rows)
    detector = next(row for row in rows if row.startswith("| `--detector` |"))
    assert "anime-lbp\\|dlib-hog\\|dlib-cnn" in detector


def test_check_names_a_stale_file(tmp_path):
    for package in ("pda_data", "pda_train"):
        (tmp_path / package).symlink_to(REPO / package)
    shutil.copy(REPO / "README.md", tmp_path / "README.md")
    shutil.copytree(REPO / "docs", tmp_path / "docs")
    page = tmp_path / "docs" / "curation.md"
    text = page.read_text()
    edited = re.sub(r"(\| `--size` \| [^|]+ \| )\d+", r"\g<1>999", text, count=1)
    assert edited != text
    page.write_text(edited)
    changed, problems = gen_docs.generate(tmp_path)
    assert list(changed) == [page]
    assert problems == []
    assert changed[page] == text


def test_columns_read_from_code_keep_hand_written_meanings(tmp_path):
    (tmp_path / "table.py").write_text(
        "import pyarrow as pa\n"
        "SCHEMA = pa.schema([('key', pa.string()), ('points', pa.list_(pa.float64()))])\n"
        "COLUMNS: tuple[str, ...] = tuple(SCHEMA.names)\n"
        "NAMES = ('a', 'b')\n"
    )
    assert gen_docs.columns("table.py:COLUMNS", tmp_path) == [("key", "string"), ("points", "list<float64>")]
    assert gen_docs.columns("table.py:NAMES", tmp_path) == [("a", ""), ("b", "")]
    old = "| `points` | list<float64> | flat (x, y) pairs |\n| `gone` | string | dropped column |\n"
    table = gen_docs.columns_table("table.py:COLUMNS", old, tmp_path)
    assert "| `key` | string |  |" in table
    assert "| `points` | list<float64> | flat (x, y) pairs |" in table
    assert "gone" not in table
    with pytest.raises(ValueError, match="no module-level MISSING"):
        gen_docs.columns("table.py:MISSING", tmp_path)


def test_record_keeps_the_last_json_line(tmp_path):
    stdout = 'warming up\n{"ratio_128": 0.5}\ntimes done\n{"ratio_128": 0.8422, "ratio_256": 0.8213}\n'
    path = gen_docs.record("bench_step", "python tools/bench_step.py", stdout, "test box", ["ratio_128"],
                           tmp_path)
    rec = json.loads(path.read_text())
    assert path == tmp_path / "docs" / "benchmarks" / "bench_step.json"
    assert rec["result"] == {"ratio_128": 0.8422, "ratio_256": 0.8213}
    assert rec["machine"] == "test box" and rec["headline"] == ["ratio_128"]
    table = gen_docs.benchmarks_table(tmp_path)
    assert "`ratio_128` 0.8422" in table
    assert "| `ratio_256` | 0.8213 |" in table
    with pytest.raises(ValueError, match="no JSON line"):
        gen_docs.record("bench_step", "x", "no json here\n", "test box", None, tmp_path)


def test_readme_is_an_entry_point_and_states_no_benchmark_figure():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    assert "make demo" in readme and "make test" in readme
    for rec in gen_docs.benchmark_records(REPO):
        for key, value in rec["result"].items():
            if isinstance(value, float):  # as a number of its own, not a part of a version like 2.13.0
                pattern = rf"(?<![\d.]){re.escape(str(value))}(?![\d]|\.\d)"
                assert not re.search(pattern, readme), f"{rec['name']}.{key} = {value} is in README.md"


def test_every_module_is_listed_in_architecture():
    text = (REPO / "docs" / "architecture.md").read_text()
    for package in ("pda_data", "pda_train"):
        for path in (REPO / package).rglob("*.py"):
            assert f"| `{path.relative_to(REPO).as_posix()}` |" in text, path


def test_options_named_in_prose_exist():
    """A renamed option must not live on in the hand-written text: every ``--name`` there is a real option."""
    known = {"--nproc-per-node", "--head", "--port", "--address"}  # torchrun's and `ray start`'s
    for cmd in gen_docs.commands():
        for param in cmd.click.params:
            known |= {*getattr(param, "opts", ()), *getattr(param, "secondary_opts", ())}
    for tool in (REPO / "tools").glob("*.py"):
        known |= set(re.findall(r"[\"'](--[a-z][a-z0-9-]*)[\"']", tool.read_text()))
    unknown = {}
    for page in gen_docs.doc_files(REPO):
        prose = gen_docs.REGION.sub("", page.read_text())
        for name in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", prose):
            if name not in known:
                unknown.setdefault(name, set()).add(page.name)
    assert unknown == {}


def test_links_between_pages_resolve():
    broken = []
    for page in gen_docs.doc_files(REPO):
        text = page.read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://", target):
                continue
            file, _, anchor = target.partition("#")
            path = (page.parent / file) if file else page
            checks_anchor = bool(anchor) and path.suffix == ".md"
            if not path.exists() or (checks_anchor and anchor not in gen_docs.headings(path.read_text())):
                broken.append(f"{page.name}: {target}")
    assert broken == []
