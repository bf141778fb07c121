"""docs/configuration.md lists every setting of the config tree with its default, and no other.

The tree is walked from its root as the app validates it (`serve.config.EngramConfig`), so a
setting added, renamed or given a new default anywhere below it fails here until the page
says so. Only the root is imported: the sections' modules may move without touching this test.
No store, server or Ray is involved.
"""
from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from serve.config import EngramConfig

PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
# Where the settings' tables end: the variables after it are not part of the tree.
SETTINGS_END = "## Environment and make variables"
ROW = re.compile(r"^\|\s*`(?P<path>[a-z_][a-z0-9_.]*)`\s*\|\s*`(?P<default>[^`]*)`\s*\|")
TOP_LEVEL = "Top level"


def render(value: Any) -> str:
    """A default as the page writes it: JSON (what YAML accepts as it is), paths as strings.
    Anything else is refused, so that a new kind of default gets a rendering chosen for it."""
    def plain(obj: Any) -> str:
        if isinstance(obj, PurePath):
            return str(obj)
        raise TypeError(f"no rendering for a default of type {type(obj).__name__}")
    if value is PydanticUndefined:
        return "required"
    return json.dumps(value, default=plain)


def models_in(annotation: Any) -> list[type[BaseModel]]:
    """The config models an annotation holds: itself, or the members of a union (X | None)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in models_in(arg)]
    return []


def settings(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(dotted path, rendered default) of every setting below `model`. A section that is
    always there (its default a model) is only walked into; one that may be unset
    (`X | None`) is a setting of its own, with its default, and walked into as well."""
    for name, field in model.model_fields.items():
        path = prefix + name
        default = field.get_default(call_default_factory=True)
        if not isinstance(default, BaseModel):
            yield path, render(default)
        for sub in models_in(field.annotation):
            yield from settings(sub, path + ".")


def page_rows() -> list[tuple[str, str, str]]:
    """(section heading, path, default) of each settings row on the page."""
    text = PAGE.read_text(encoding="utf-8")
    assert SETTINGS_END in text, f"{PAGE.name} lost its heading {SETTINGS_END!r}"
    rows, heading = [], ""
    for line in text.split(SETTINGS_END)[0].splitlines():
        if line.startswith("## "):
            heading = line[3:].strip()
        elif line.startswith("| `"):
            match = ROW.match(line)
            assert match, f"a settings row the test cannot read: {line}"
            rows.append((heading, match["path"], match["default"]))
    return rows


def test_the_walk_reaches_optional_sections() -> None:
    # Guards the walker itself: a tree whose optional sections were skipped would pass below
    # with half the settings unchecked.
    found = dict(settings(EngramConfig))
    assert any(path.count(".") >= 2 for path in found), "no setting two sections deep was found"


def test_every_setting_is_on_the_page_with_its_default() -> None:
    documented = {path: default for _, path, default in page_rows()}
    missing = [path for path, _ in settings(EngramConfig) if path not in documented]
    assert not missing, f"settings missing from {PAGE.name}: {missing}"
    wrong = [f"{path}: page {documented[path]}, tree {default}"
             for path, default in settings(EngramConfig) if documented[path] != default]
    assert not wrong, f"defaults that differ from the tree: {wrong}"


def test_the_page_names_no_setting_the_tree_lacks() -> None:
    tree = dict(settings(EngramConfig))
    paths = [path for _, path, _ in page_rows()]
    unknown = [path for path in paths if path not in tree]
    assert not unknown, f"rows for settings the tree does not have: {unknown}"
    twice = sorted({path for path in paths if paths.count(path) > 1})
    assert not twice, f"settings with two rows: {twice}"


def test_each_row_sits_in_its_sections_table() -> None:
    misplaced = [f"{path} under '{heading}'" for heading, path, _ in page_rows()
                 if heading != (path.rpartition(".")[0] or TOP_LEVEL)]
    assert not misplaced, f"rows outside their section's table: {misplaced}"
