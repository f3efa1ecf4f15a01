"""Jinja2 templates → YAML documents → canonical YAML text.

Templates use StrictUndefined: a value they reference that does not exist is an error naming
the template, its line and the variable, never an empty string in a manifest. Their output is
parsed and dumped again, so what is written is well-formed YAML in one canonical style:
same input, same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import yaml

from weavenn_cli.runtime.errors import WeavennError
from weavenn_cli.runtime.resources import templates_dir


class TemplateError(WeavennError):
    """A template could not be rendered: a bug in a template, not in the user's input."""


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    # Jinja's own `namespace` global would silently stand in for a missing `namespace` value.
    del env.globals["namespace"]
    # JSON is YAML: every string a user controls goes through `q`, so quoting is never wrong.
    env.filters["q"] = lambda value: json.dumps(value, ensure_ascii=False)
    return env


def render_text(name: str, context: Mapping[str, Any]) -> str:
    try:
        return environment().get_template(name).render(**context)
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"template {_where(exc, name)}: {exc.message}") from exc
    except jinja2.TemplateError as exc:
        raise TemplateError(f"template {_where(exc, name)}: {exc}") from exc


def render_documents(name: str, context: Mapping[str, Any]) -> list[dict[str, Any]]:
    text = render_text(name, context)
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        raise TemplateError(f"template {name} renders invalid YAML: {exc}") from exc
    for document in documents:
        if not isinstance(document, dict):
            raise TemplateError(f"template {name} renders a document that is not a mapping")
    return documents


def _where(exc: BaseException, name: str) -> str:
    """The innermost template frame of the traceback (Jinja rewrites frames to template lines)."""
    root = str(templates_dir())
    location = name
    trace = exc.__traceback__
    while trace is not None:
        filename = trace.tb_frame.f_code.co_filename
        if filename.startswith(root):
            location = f"{Path(filename).relative_to(root)} line {trace.tb_lineno}"
        trace = trace.tb_next
    lineno = getattr(exc, "lineno", None)
    if location == name and lineno:
        location = f"{name} line {lineno}"
    return location


# libyaml's emitter when PyYAML has it (its wheels do): the same text, ten times faster.
# (an if statement, not a conditional expression: mypy takes only this form as a base class)
if TYPE_CHECKING or not yaml.__with_libyaml__:  # noqa: SIM108
    _SafeDumper = yaml.SafeDumper
else:
    _SafeDumper = yaml.CSafeDumper


class _CanonicalDumper(_SafeDumper):
    """Block style, no anchors, multi-line strings as literal blocks."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_CanonicalDumper.add_representer(str, _represent_str)


def dump(document: Any) -> str:
    return yaml.dump(
        document,
        Dumper=_CanonicalDumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=1000,
    )


def dump_all(documents: Iterable[Any]) -> str:
    return "".join(f"---\n{dump(document)}" for document in documents)
