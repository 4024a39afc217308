"""The configuration reference, generated from the typed config so that it cannot drift from it.

Reads only the pydantic model classes of ``pipelines.core.config`` (their fields' types, defaults,
constraints and descriptions, and the classes' docstrings) and renders Markdown: the top-level keys,
then one section per nested model, each with a table (key, type, default, description).
``tests/unit/test_config_docs.py`` fails when the committed ``docs/configuration.md`` differs from it.

    python -m pipelines.reporting.config_docs            # print the Markdown
    python -m pipelines.reporting.config_docs --write    # rewrite docs/configuration.md
    python -m pipelines.reporting.config_docs --check    # exit 1 if docs/configuration.md is out of date
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from pipelines.core import config as config_module
from pipelines.core.config import PROJECT_ROOT, Config

DOC_PATH = PROJECT_ROOT / "docs" / "configuration.md"
REGENERATE = "python -m pipelines.reporting.config_docs --write"
PURPOSE = "Print the configuration reference generated from pipelines/core/config.py, or write or check the file."
_LIST_ITEM = "[]"  # suffix of a section whose model is an item of a list
_MAP_VALUE = ".<name>"  # suffix of a section whose model is a value of a mapping


@dataclass(frozen=True)
class Section:
    """One model of the config tree and the dotted key it sits under (``""`` for the top level)."""

    key: str
    model: type[BaseModel]

    @property
    def title(self) -> str:
        """The section's heading text."""
        return self.key or "Top level"

    @property
    def label(self) -> str:
        """The heading as Markdown: the dotted key in a code span (``<name>`` must not read as HTML)."""
        return f"`{self.key}`" if self.key else self.title

    @property
    def anchor(self) -> str:
        """The heading's anchor as GitHub spells it (lower case, punctuation dropped, spaces to dashes)."""
        return re.sub(r"[^a-z0-9 _-]", "", self.title.lower()).replace(" ", "-")


def field_key(name: str, field: FieldInfo) -> str:
    """The key a YAML file uses for a field: its alias when it has one (``schema`` for ``data_schema``)."""
    return field.alias or name


def _strip_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [a for a in get_args(annotation) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def _is_model(annotation: Any) -> bool:
    return inspect.isclass(annotation) and issubclass(annotation, BaseModel)


def nested(annotation: Any) -> tuple[type[BaseModel], str] | None:
    """The model a field holds, and how (directly, as list items or as mapping values); None for plain values."""
    annotation = _strip_optional(annotation)
    if _is_model(annotation):
        return annotation, ""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is list and args and _is_model(args[0]):
        return args[0], _LIST_ITEM
    if origin is dict and len(args) == 2 and _is_model(args[1]):
        return args[1], _MAP_VALUE
    return None


def sections(model: type[BaseModel] = Config, key: str = "") -> list[Section]:
    """Every section of the config tree, depth first in field order, starting with ``model`` itself."""
    found = [Section(key, model)]
    for name, field in model.model_fields.items():
        inner = nested(field.annotation)
        if inner is not None:
            child = f"{key}.{field_key(name, field)}" if key else field_key(name, field)
            found.extend(sections(inner[0], child + inner[1]))
    return found


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def constraints(metadata: list[Any], unit: str = "item") -> str:
    """The bounds and lengths in a field's metadata, e.g. ``0 ≤ x ≤ 1``, ``x > 0``, ``at least 1 item``."""
    lower = upper = None
    others = []
    for item in metadata:
        if isinstance(item, annotated_types.Ge):
            lower = ("≤", item.ge)
        elif isinstance(item, annotated_types.Gt):
            lower = ("<", item.gt)
        elif isinstance(item, annotated_types.Le):
            upper = ("≤", item.le)
        elif isinstance(item, annotated_types.Lt):
            upper = ("<", item.lt)
        elif isinstance(item, annotated_types.MinLen):
            others.append(f"at least {item.min_length} {unit}{'s' if item.min_length != 1 else ''}")
        elif isinstance(item, annotated_types.MaxLen):
            others.append(f"at most {item.max_length} {unit}{'s' if item.max_length != 1 else ''}")
        elif getattr(item, "pattern", None):  # pydantic's Field(pattern=...)
            others.append(f"matches {item.pattern}")
    if lower and upper:
        bound = f"{_number(lower[1])} {lower[0]} x {upper[0]} {_number(upper[1])}"
    elif lower:
        bound = f"x {'≥' if lower[0] == '≤' else '>'} {_number(lower[1])}"
    elif upper:
        bound = f"x {upper[0]} {_number(upper[1])}"
    else:
        bound = ""
    return ", ".join([bound, *others] if bound else others)


def type_name(annotation: Any, inner: list[str] | None = None) -> str:
    """A YAML-minded spelling of a type: ``float | null``, ``list[str]``, ``holm | bh | none``, ``path``.

    Constraints found inside (``dict[str, Annotated[float, Field(ge=0)]]``) are appended to ``inner``.
    """
    origin, args = get_origin(annotation), get_args(annotation)
    if annotation is type(None):
        return "null"
    if origin is Annotated:
        if inner is not None:
            bound = constraints([m for a in args[1:] for m in getattr(a, "metadata", [a])])
            if bound:
                inner.append(f"values: {bound}")
        return type_name(args[0], inner)
    if origin is Literal:
        return " | ".join(str(a) for a in args)
    if origin in (Union, types.UnionType):
        parts = sorted(args, key=lambda a: a is type(None))  # null last
        return " | ".join(type_name(a, inner) for a in parts)
    if origin in (list, dict, tuple, set):
        return f"{origin.__name__}[{', '.join(type_name(a, inner) for a in args)}]"
    if annotation is Path:
        return "path"
    return getattr(annotation, "__name__", str(annotation))


def flow(value: Any) -> str:
    """A value as YAML flow style: ``null``, ``true``, ``[a, b]``, ``{window: 0.001}``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, BaseModel):
        return flow(value.model_dump(mode="json", by_alias=True))
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    return str(value)


def default_text(field: FieldInfo) -> str:
    """The default as a YAML value, *required* when there is none, or a pointer to the section's own defaults."""
    if field.is_required():
        return "*required*"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        try:
            if type(value)() == value:
                return "the section's defaults"
        except ValueError:  # the section has required keys of its own
            pass
    return f"`{flow(value)}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _type_cell(field: FieldInfo, by_key: dict[str, Section], key: str) -> str:
    inner = nested(field.annotation)
    optional = _strip_optional(field.annotation) is not field.annotation
    if inner is not None:
        how = inner[1]
        target = by_key[key + how]
        link = f"[{target.label}](#{target.anchor})"
        text = {"": f"section {link}", _LIST_ITEM: f"list of {link}", _MAP_VALUE: f"map of name to {link}"}[how]
        return text + (" or `null`" if optional else "")
    found: list[str] = []
    text = f"`{type_name(field.annotation, found)}`"
    unit = "character" if field.annotation is str else "item"
    bounds = [b for b in [constraints(field.metadata, unit), *found] if b]
    return text + (f" ({'; '.join(bounds)})" if bounds else "")


def description(field: FieldInfo) -> str:
    """The field's description; for an undescribed section, the first paragraph of its model's docstring."""
    if field.description:
        return field.description
    inner = nested(field.annotation)
    return _doc(inner[0]).split("\n\n")[0] if inner else ""


def _doc(obj: Any) -> str:
    """An object's own docstring (not an inherited one), paragraphs kept, lines joined."""
    text = inspect.cleandoc(obj.__dict__.get("__doc__") or "")
    return "\n\n".join(" ".join(p.split()) for p in text.split("\n\n") if p.strip())


def render_section(section: Section, all_sections: list[Section]) -> Iterator[str]:
    """The Markdown of one section: heading, the model's docstring, the table, derived values."""
    by_key = {s.key: s for s in all_sections}
    yield f"## {section.label}"
    yield ""
    where = f"`{section.model.__name__}`"
    if section.key.endswith(_LIST_ITEM):
        where += "; each item of the list"
    elif section.key.endswith(_MAP_VALUE):
        where += "; each value of the mapping, keyed by name"
    yield f"Model {where}."
    doc = _doc(section.model)
    if doc:
        yield ""
        yield doc
    yield ""
    yield "| key | type | default | description |"
    yield "| --- | --- | --- | --- |"
    prefix = f"{section.key}." if section.key else ""
    for name, field in section.model.model_fields.items():
        key = field_key(name, field)
        cells = [f"`{key}`", _type_cell(field, by_key, prefix + key), default_text(field), description(field)]
        yield "| " + " | ".join(_cell(c) for c in cells) + " |"
    computed = section.model.model_computed_fields
    if computed:
        yield ""
        yield "Derived from the keys above (not set in the YAML; `python -m pipelines config --get <key>` prints them):"
        yield ""
        for name, info in computed.items():
            yield f"- `{name}` (`{type_name(info.return_type)}`): {_cell(info.description or '')}"
    yield ""


def render(model: type[BaseModel] = Config) -> str:
    """The whole reference for ``model`` (the ``Config`` by default) as Markdown."""
    found = sections(model)
    lines = [
        f"<!-- Generated from {config_module.__name__} by `{REGENERATE}`; do not edit by hand. -->",
        "",
        "# Configuration",
        "",
        _doc(config_module) if model is Config else _doc(model),
        "",
        "A worked example of every section is `configs/adult.yaml`. Only the keys marked *required* must be",
        "written (the name, `data.root`, `data.window_days`, the schema and `artifact_root`); every other key",
        "has the default shown. A key the schema does not know is an error (with the known key it is closest",
        "to), and so is a value outside its type or bounds; the message names the dotted key.",
        "",
        "Sections:",
        "",
        *(f"- [{s.label}](#{s.anchor})" for s in found),
        "",
    ]
    for section in found:
        lines.extend(render_section(section, found))
    return "\n".join(lines).rstrip("\n") + "\n"


def undocumented(model: type[BaseModel] = Config) -> list[str]:
    """The dotted keys of fields the reference has no description for (no ``Field(description=...)``)."""
    return [
        f"{s.key}.{field_key(n, f)}" if s.key else field_key(n, f)
        for s in sections(model)
        for n, f in s.model.model_fields.items()
        if not description(f)
    ]


def main(argv: list[str] | None = None) -> int:
    """Print, write or check the configuration reference; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m pipelines.reporting.config_docs", description=PURPOSE)
    action = parser.add_mutually_exclusive_group()
    path = {"nargs": "?", "const": DOC_PATH, "type": Path, "metavar": "PATH"}
    action.add_argument("--write", **path, help="write it (default: docs/configuration.md)")
    action.add_argument("--check", **path, help="exit 1 if it is out of date (default: docs/configuration.md)")
    action.add_argument("--undocumented", action="store_true", help="list the keys that have no description")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        args.write.write_text(text)
        print(f"wrote {args.write}", file=sys.stderr)
    elif args.check:
        current = args.check.read_text() if args.check.exists() else None
        if current != text:
            print(f"{args.check} is out of date with pipelines/core/config.py: run `{REGENERATE}`", file=sys.stderr)
            return 1
    elif args.undocumented:
        print("\n".join(undocumented()))
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
