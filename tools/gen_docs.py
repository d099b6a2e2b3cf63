"""Regenerate the generated regions of README.md and docs/*.md from the code, so the docs cannot drift.

A region is the text between ``<!-- BEGIN GENERATED: KEY -->`` and ``<!-- END GENERATED -->``; everything
outside the markers is hand-written and left alone. KEY is one of:

* ``options pda-data crop-cosers``: usage, help and option table of a command, from the Typer apps;
* ``command-map``: every registered command, one line each, linked to the page holding its option table;
* ``columns pda_data/curation/table.py:PORTRAIT_SCHEMA``: a table's column list, read with ``ast``
  (a tuple of names, a ``pyarrow`` schema, or ``tuple(SCHEMA.names)``); the ``meaning`` cells are kept;
* ``modules pda_data``: one line per module, from the first line of its docstring (read with ``ast``);
* ``benchmarks``: the figures of ``docs/benchmarks/*.json``, each a benchmark's last JSON line.

    python tools/gen_docs.py            # rewrite the stale regions
    python tools/gen_docs.py --check    # exit 1 naming the stale files (and commands without a page)
    python tools/bench_warp.py | python tools/gen_docs.py --record bench_warp \
        --command "python tools/bench_warp.py"        # keep a benchmark's last JSON line
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
APPS = {"pda-data": "pda_data.cli", "pda-train": "pda_train.cli"}
REGION = re.compile(r"(<!-- BEGIN GENERATED: (?P<key>[^>]+?) -->\n)(?P<body>.*?)(<!-- END GENERATED -->)",
                    re.S)


@dataclass(frozen=True)
class Command:
    """One leaf command of a Typer app: ``path`` is e.g. ``("pda-data", "landmarks", "import")``."""

    path: tuple[str, ...]
    click: Any

    @property
    def name(self) -> str:
        return " ".join(self.path)

    @property
    def summary(self) -> str:
        return _first_paragraph(self.click.help or "")


def doc_files(root: Path = ROOT) -> list[Path]:
    """The files that may hold generated regions: README.md and every Markdown page under docs/."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def commands() -> list[Command]:
    """Every leaf command of ``pda-data`` and ``pda-train``, in registration order."""
    import importlib

    import typer

    found: list[Command] = []

    def walk(cmd: Any, path: tuple[str, ...]) -> None:
        subcommands = getattr(cmd, "commands", None)
        if subcommands is None:
            found.append(Command(path, cmd))
            return
        for name, sub in subcommands.items():
            walk(sub, (*path, name))

    for prog, module in APPS.items():
        walk(typer.main.get_command(importlib.import_module(module).app), (prog,))
    return found


# --- option tables -----------------------------------------------------------------------------------------


def _first_paragraph(text: str) -> str:
    return " ".join(text.strip().split("\n\n")[0].split())


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _default(param: Any, ctx: Any) -> str:
    if getattr(param, "required", False):
        return "required"
    if isinstance(param.show_default, str):
        return param.show_default
    if param.show_default is False:
        return ""
    if getattr(param, "is_bool_flag", False):
        if param.secondary_opts:
            return param.opts[0] if param.default else param.secondary_opts[0]
        return "off" if not param.default else "on"
    value = param.get_default(ctx, call=False)
    if callable(value):
        return "(dynamic)"
    if value is None or value == [] or value == ():
        return ""
    values = value if isinstance(value, list | tuple) else [value]
    return ", ".join(str(v.value if isinstance(v, Enum) else v) for v in values)


def _type(param: Any, ctx: Any) -> str:
    if getattr(param, "is_flag", False):
        return "flag"
    label = param.display_type(ctx).strip("<>")
    limits = ((">=", param.min), ("<=", param.max))
    bounds = [f"{sign} {value}" for sign, value in limits if value is not None]
    return ", ".join([label, *bounds])


def _argument_name(param: Any) -> str:
    return (param.metavar or param.name.upper()) + ("..." if param.nargs != 1 else "")


def _usage(cmd: Command) -> str:
    args = [_argument_name(p) for p in cmd.click.params if p.param_type_name == "argument"]
    return " ".join([cmd.name, "[OPTIONS]", *args])


def option_table(cmd: Command) -> str:
    """Usage line, help and a table of the command's arguments and options (name, type, default, help)."""
    import typer

    ctx = typer.Context(cmd.click, info_name=cmd.path[-1])
    lines = [f"`{_usage(cmd)}`", "", _first_paragraph(cmd.click.help or ""), "",
             "| option | type | default | meaning |", "|---|---|---|---|"]
    for param in cmd.click.params:
        if getattr(param, "hidden", False):
            continue
        if param.param_type_name == "argument":
            name = _argument_name(param)
        else:
            name = " / ".join(", ".join(opts) for opts in (param.opts, param.secondary_opts) if opts)
        help_text = _first_paragraph(getattr(param, "help", None) or "")
        lines.append(f"| `{_cell(name)}` | {_cell(_type(param, ctx))} | {_cell(_default(param, ctx))} | "
                     f"{_cell(help_text)} |")
    return "\n".join(lines) + "\n"


def command_pages(texts: dict[Path, str]) -> dict[str, Path]:
    """Command name -> the page whose ``options`` region documents it."""
    pages: dict[str, Path] = {}
    for path, text in texts.items():
        for match in REGION.finditer(text):
            key = match["key"]
            if key.startswith("options "):
                pages.setdefault(key.removeprefix("options "), path)
    return pages


def _anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9 _-]", "", title.lower()).replace(" ", "-")


def headings(text: str) -> set[str]:
    """The anchors of a page's Markdown headings (outside code blocks)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return {_anchor(m[1].strip()) for m in re.finditer(r"^#+ (.+)$", text, flags=re.M)}


def command_map(cmds: list[Command], pages: dict[str, Path], here: Path) -> str:
    """One line per command: name, summary, link to its reference page (relative to ``here``)."""
    lines = ["| command | what it does | reference |", "|---|---|---|"]
    for cmd in cmds:
        page = pages.get(cmd.name)
        link = f"[{page.name}]({os.path.relpath(page, here.parent)}#{_anchor(cmd.name)})" if page else "none"
        lines.append(f"| `{cmd.name}` | {_cell(cmd.summary)} | {link} |")
    return "\n".join(lines) + "\n"


# --- columns and modules, read with ast --------------------------------------------------------------------


def _assignments(tree: ast.Module) -> dict[str, ast.expr]:
    found: dict[str, ast.expr] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            found[node.target.id] = node.value
    return found


def _arrow_type(node: ast.expr) -> str:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name):
        name = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
        if name == "list_" and node.args:
            return f"list<{_arrow_type(node.args[0])}>"
        return name
    return ast.unparse(node)


def _columns_of(node: ast.expr, names: dict[str, ast.expr], where: str) -> list[tuple[str, str]]:
    if isinstance(node, ast.Tuple | ast.List):
        out = []
        for item in node.elts:
            if isinstance(item, ast.Constant) and isinstance(item.value, str):
                out.append((item.value, ""))
            elif isinstance(item, ast.Tuple) and isinstance(item.elts[0], ast.Constant):
                out.append((item.elts[0].value, _arrow_type(item.elts[1])))
            elif isinstance(item, ast.Call) and item.args and isinstance(item.args[0], ast.Constant):
                out.append((item.args[0].value, _arrow_type(item.args[1]) if len(item.args) > 1 else ""))
            else:
                raise ValueError(f"{where}: cannot read column {ast.unparse(item)!r}")
        return out
    if isinstance(node, ast.Call) and node.args:
        inner = node.args[0]
        if isinstance(inner, ast.Attribute) and inner.attr == "names" and isinstance(inner.value, ast.Name):
            inner = ast.Name(inner.value.id)
        if isinstance(inner, ast.Name):
            if inner.id not in names:
                raise ValueError(f"{where}: {inner.id} is not assigned at module level")
            return _columns_of(names[inner.id], names, where)
        return _columns_of(inner, names, where)
    raise ValueError(f"{where}: not a column list: {ast.unparse(node)!r}")


def columns(spec: str, root: Path = ROOT) -> list[tuple[str, str]]:
    """``"pda_data/x.py:COLUMNS"`` -> [(column, arrow type or "")], without importing the module."""
    file, _, name = spec.partition(":")
    tree = ast.parse((root / file).read_text())
    names = _assignments(tree)
    if name not in names:
        raise ValueError(f"{file}: no module-level {name}")
    return _columns_of(names[name], names, f"{file}:{name}")


def columns_table(spec: str, old_body: str, root: Path = ROOT) -> str:
    """The column table of ``spec``; the hand-written ``meaning`` of a column that still exists is kept."""
    meanings = {}
    for line in old_body.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) >= 2 and cells[0].startswith("`"):
            meanings[cells[0].strip("`")] = cells[-1]
    found = columns(spec, root)
    typed = any(kind for _, kind in found)
    lines = [f"Columns of `{spec}`, in order:", "",
             "| column | type | meaning |" if typed else "| column | meaning |",
             "|---|---|---|" if typed else "|---|---|"]
    for name, kind in found:
        cells = [f"`{name}`", *([kind] if typed else []), meanings.get(name, "")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def modules(package: str, root: Path = ROOT) -> str:
    """One line per module of ``package``: its path and the first line of its docstring."""
    lines = ["| module | what it holds |", "|---|---|"]
    for path in sorted((root / package).rglob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        first = doc.strip().splitlines()[0] if doc.strip() else ""
        lines.append(f"| `{path.relative_to(root).as_posix()}` | {_cell(first.replace('``', '`'))} |")
    return "\n".join(lines) + "\n"


# --- benchmarks -------------------------------------------------------------------------------------------


def benchmark_records(root: Path = ROOT) -> list[dict[str, Any]]:
    """Every ``docs/benchmarks/<bench>.json`` record, by file name."""
    paths = sorted((root / "docs/benchmarks").glob("*.json"))
    return [json.loads(p.read_text()) | {"name": p.stem} for p in paths]


def _value(value: Any) -> str:
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def benchmarks_table(root: Path = ROOT) -> str:
    """A headline table over every benchmark record, then each record's full JSON line as a key table."""
    records = benchmark_records(root)
    lines = ["| benchmark | headline figures | machine | measured | command |", "|---|---|---|---|---|"]
    for rec in records:
        head = ", ".join(f"`{k}` {_value(rec['result'][k])}" for k in rec["headline"] if k in rec["result"])
        link = f"[{rec['name']}](#{_anchor(rec['name'])})"
        lines.append(f"| {link} | {_cell(head)} | {_cell(rec['machine'])} | {rec['measured']} | "
                     f"`{_cell(rec['command'])}` |")
    for rec in records:
        lines += ["", f"### {rec['name']}", ""]
        if rec.get("note"):
            lines += [rec["note"], ""]
        lines += ["| key | value |", "|---|---|"]
        lines += [f"| `{k}` | {_cell(_value(v))} |" for k, v in rec["result"].items()]
    return "\n".join(lines) + "\n"


def machine() -> str:
    """A one-line description of this machine: CPU model, cores, memory."""
    cpu = platform.processor() or platform.machine()
    info = Path("/proc/cpuinfo")
    if info.exists():
        names = [line.split(":", 1)[1].strip() for line in info.read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    mem = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(meminfo.read_text().split()[1])
        mem = f", {kib / 2**20:.0f} GiB"
    return f"{cpu}, {os.cpu_count()} cores{mem}"


def record(name: str, command: str, stdout: str, machine_text: str, headline: list[str] | None,
           root: Path = ROOT) -> Path:
    """Store the last JSON line of a benchmark's stdout as ``docs/benchmarks/<name>.json``."""
    lines = [line for line in stdout.splitlines() if line.strip().startswith("{")]
    if not lines:
        raise ValueError(f"{name}: no JSON line in the benchmark output")
    path = root / "docs/benchmarks" / f"{name}.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    rec = {"command": command, "machine": machine_text, "measured": date.today().isoformat(),
           "headline": headline or old.get("headline", []), "result": json.loads(lines[-1])}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec, indent=2) + "\n")
    return path


# --- regions ---------------------------------------------------------------------------------------------


def regions(text: str) -> Iterator[tuple[str, str]]:
    for match in REGION.finditer(text):
        yield match["key"], match["body"]


def render(key: str, old_body: str, path: Path, ctx: dict[str, Any]) -> str:
    """The body of region ``key`` of the file at ``path``."""
    kind, _, arg = key.partition(" ")
    if kind == "options":
        if arg not in ctx["commands"]:
            raise ValueError(f"{path.name}: no registered command {arg!r}")
        return option_table(ctx["commands"][arg])
    if kind == "command-map":
        return command_map(list(ctx["commands"].values()), ctx["pages"], path)
    if kind == "columns":
        return columns_table(arg, old_body, ctx["root"])
    if kind == "modules":
        return modules(arg, ctx["root"])
    if kind == "benchmarks":
        return benchmarks_table(ctx["root"])
    raise ValueError(f"{path.name}: unknown generated region {key!r}")


def generate(root: Path = ROOT) -> tuple[dict[Path, str], list[str]]:
    """(file -> regenerated text for every file whose text changes, problems found)."""
    texts = {p: p.read_text() for p in doc_files(root) if p.exists()}
    cmds = {c.name: c for c in commands()}
    pages = command_pages(texts)
    ctx = {"commands": cmds, "pages": pages, "root": root}
    problems = [f"{name}: no docs page has an options region for it" for name in cmds if name not in pages]
    for name, page in pages.items():
        if _anchor(f"`{name}`") not in headings(texts[page]):
            problems.append(f"{page.name}: no heading `{name}` for the command map to link to")
    readme = root / "README.md"
    if "command-map" not in dict(regions(texts.get(readme, ""))):
        problems.append("README.md: no command-map region")
    changed: dict[Path, str] = {}
    for path, text in texts.items():
        def replace(match: re.Match[str], path: Path = path) -> str:
            try:
                body = render(match["key"], match["body"], path, ctx)
            except (OSError, SyntaxError, ValueError) as exc:
                problems.append(f"{path.name}: region {match['key']!r}: {exc}")
                return match[0]
            return f"{match[1]}{body}{match[4]}"

        new = REGION.sub(replace, text)
        if new != text:
            changed[path] = new
    return changed, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 naming the stale files; write nothing")
    parser.add_argument("--record", metavar="BENCH",
                        help="store the last JSON line of stdin as docs/benchmarks/BENCH.json")
    parser.add_argument("--command", help="with --record: the command that produced stdin")
    parser.add_argument("--machine", help="with --record: the machine (default: CPU model, cores, memory)")
    parser.add_argument("--headline", nargs="*", help="with --record: the keys shown in the summary table")
    args = parser.parse_args(argv)
    if args.record:
        if not args.command:
            parser.error("--record needs --command")
        path = record(args.record, args.command, sys.stdin.read(), args.machine or machine(), args.headline)
        print(f"wrote {path.relative_to(ROOT)}")
    changed, problems = generate()
    for problem in problems:
        print(problem, file=sys.stderr)
    if args.check:
        for path in changed:
            print(f"stale: {path.relative_to(ROOT)}", file=sys.stderr)
        return 1 if changed or problems else 0
    for path, text in changed.items():
        path.write_text(text)
        print(f"updated {path.relative_to(ROOT)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
