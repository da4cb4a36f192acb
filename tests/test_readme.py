"""The README's tour is true of the code: every file and name its "Where things live" table
points at exists, and its plugin section names the real entry point groups and signatures."""

from __future__ import annotations

import ast
import inspect
import re
import tomllib
from pathlib import Path

from bot import plugin_api

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
PATH = re.compile(r"`((?:bot|model|storage|admin|examples|docs|tests)/[^`<>\s]*)`")
PATH_AND_NAME = re.compile(r"`([\w/]+\.py)` `([A-Za-z_][\w.]*)`")


def section(title: str) -> str:
    start = README.index(title)
    end = README.find("\n#", start + len(title))
    return README[start : end if end != -1 else None]


def defined_names(path: Path) -> set[str]:
    """`Class`, `function` and `Class.method` names defined at the top of a module."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            names |= {
                f"{node.name}.{item.name}"
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
            }
    return names


def test_every_file_in_where_things_live_exists() -> None:
    table = section("### Where things live")
    paths = PATH.findall(table)
    assert len(paths) > 20
    missing = [p for p in paths if not (ROOT / p.split("#")[0]).exists()]
    assert not missing, f"the README points at files that are not there: {missing}"


def test_every_name_in_where_things_live_is_defined_where_it_says() -> None:
    pairs = PATH_AND_NAME.findall(section("### Where things live"))
    assert len(pairs) > 10
    wrong = [f"{p} {n}" for p, n in pairs if n not in defined_names(ROOT / p)]
    assert not wrong, f"the README names what these files do not define: {wrong}"


def test_the_plugin_section_names_the_real_groups_and_signatures() -> None:
    text = section("### Plugins")
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    named = set(re.findall(r"`(gpt2bot\.\w+)`", text))
    assert named == set(declared)
    factory = inspect.signature(plugin_api.PlatformFactory.__call__)
    params = ", ".join(p for p in factory.parameters if p != "self")
    assert f"create({params}) -> Platform" in text
    for name in re.findall(r"`@?(\w+)\(", text):
        if name != "create":
            assert name in plugin_api.__all__, f"the README's plugin section names {name}"
    for example in re.findall(r"`([\w-]+)`", text.split("examples in `examples/`")[1]):
        assert (ROOT / "examples" / example / "pyproject.toml").exists(), example
