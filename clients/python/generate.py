#!/usr/bin/env python3
"""Generates src/jobline_client/_schema.py from the OpenAPI document.

    python3 clients/python/generate.py            # (re)write _schema.py
    python3 clients/python/generate.py --check    # exit 1 with a diff if stale

Reads shared/src/http/openapi.json (or --spec PATH) and writes one TypedDict
per component schema (an alias for schemas that are not objects: Literal for
enums, str/int/float/bool otherwise), plus OPERATIONS, the operation table
(operationId -> (method, path)). Standard library only; the output depends on
nothing but the document, so the same document always gives the same file.

Mapping from JSON Schema:
  string/integer/number/boolean  -> str/int/float/bool
  enum / const                   -> Literal[...]
  type: [T, "null"], oneOf with null -> Optional[T]
  array                          -> List[items]
  object with properties         -> a TypedDict of its own (inline ones are
                                    named Parent + FieldName in CamelCase)
  object with additionalProperties only -> Dict[str, T]
  $ref                           -> the referenced class or alias
  allOf [$ref, {object}]         -> a TypedDict subclassing the $ref
  no type (any JSON)             -> Any
Required fields go in a total TypedDict, optional ones in a total=False
subclass (Python 3.9 has no NotRequired).
"""

from __future__ import annotations

import argparse
import difflib
import json
import keyword
import sys
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SPEC = HERE.parent.parent / "shared" / "src" / "http" / "openapi.json"
DEFAULT_OUT = HERE / "src" / "jobline_client" / "_schema.py"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
PRIMITIVES = {"string": "str", "integer": "int", "number": "float", "boolean": "bool"}


def camel(name: str) -> str:
    parts = "".join(c if c.isalnum() else " " for c in name).split()
    return "".join(p[:1].upper() + p[1:] for p in parts)


def ref_name(ref: str) -> str:
    prefix = "#/components/schemas/"
    if not ref.startswith(prefix):
        raise SystemExit(f"generate.py: unsupported $ref {ref!r}")
    return camel(ref[len(prefix) :])


def union(types: list[str]) -> str:
    """Union of type expressions, without duplicates, order kept; None last as Optional."""
    seen: list[str] = []
    for t in types:
        if t not in seen:
            seen.append(t)
    nullable = "None" in seen
    rest = [t for t in seen if t != "None"]
    if "Any" in rest:
        return "Any"
    if not rest:
        return "None"
    core = rest[0] if len(rest) == 1 else f"Union[{', '.join(rest)}]"
    return f"Optional[{core}]" if nullable else core


def literal(values: list) -> str:
    return "Literal[" + ", ".join(json.dumps(v) if not isinstance(v, bool) else repr(v) for v in values) + "]"


class Generator:
    def __init__(self, spec: dict):
        self.spec = spec
        self.schemas: dict = spec.get("components", {}).get("schemas", {})
        # name -> ("alias", expr, doc) | ("class", bases, required, optional, doc)
        self.defs: dict[str, tuple] = {}
        self.order: list[str] = []
        self.class_names = {camel(n) for n, s in self.schemas.items() if self.is_class(s)}

    def target(self, ref: str) -> dict:
        try:
            return self.schemas[ref.rsplit("/", 1)[1]]
        except KeyError:
            raise SystemExit(f"generate.py: $ref {ref!r} names no component schema") from None

    def is_class(self, schema: dict) -> bool:
        return bool(schema.get("properties")) or bool(schema.get("allOf"))

    # -- type expressions -------------------------------------------------

    def type_of(self, schema: dict, owner: str, field: str) -> str:
        """The Python type expression of SCHEMA; inline objects become classes named owner+field."""
        if not isinstance(schema, dict) or not schema:
            return "Any"
        if "$ref" in schema:
            name = ref_name(schema["$ref"])
            self.define(name, self.target(schema["$ref"]))  # dependencies first
            # Classes by name in quotes (a forward reference is fine in a TypedDict), aliases as they are.
            return f'"{name}"' if name in self.class_names else name
        if "const" in schema:
            return literal([schema["const"]])
        for key in ("oneOf", "anyOf"):
            if key in schema:
                return union([self.type_of(s, owner, field) for s in schema[key]])
        if "allOf" in schema:
            # An inline allOf: a class of its own.
            name = owner + camel(field)
            self.define(name, schema)
            return f'"{name}"'
        types = schema.get("type")
        if types is None:
            if "enum" in schema:
                return literal(schema["enum"])
            if "properties" in schema:
                types = "object"
            else:
                return "Any"
        if isinstance(types, str):
            types = [types]
        return union([self.single(t, schema, owner, field) for t in types])

    def single(self, t: str, schema: dict, owner: str, field: str) -> str:
        if t == "null":
            return "None"
        if t in PRIMITIVES:
            if "enum" in schema:
                return literal([v for v in schema["enum"] if v is not None])
            return PRIMITIVES[t]
        if t == "array":
            return f"List[{self.type_of(schema.get('items', {}), owner, field)}]"
        if t == "object":
            if schema.get("properties"):
                name = owner + camel(field)
                self.define(name, schema)
                return f'"{name}"'
            extra = schema.get("additionalProperties")
            if isinstance(extra, dict) and extra:
                return f"Dict[str, {self.type_of(extra, owner, field)}]"
            return "Dict[str, Any]"
        raise SystemExit(f"generate.py: unsupported type {t!r} in {owner}.{field}")

    # -- definitions ------------------------------------------------------

    def define(self, name: str, schema: dict) -> None:
        if name in self.defs:
            return
        self.defs[name] = ("pending",)
        doc = schema.get("description", "")
        if not self.is_class(schema):
            self.defs[name] = ("alias", self.type_of(schema, name, ""), doc)
            self.order.append(name)
            return
        bases: list[str] = []
        required: list[tuple[str, str, str]] = []
        optional: list[tuple[str, str, str]] = []
        parts = schema.get("allOf", []) + ([schema] if schema.get("properties") else [])
        for part in parts:
            if "$ref" in part:
                base = ref_name(part["$ref"])
                self.define(base, self.target(part["$ref"]))  # a base comes first
                bases.append(base)
                continue
            req = set(part.get("required", []))
            for field, sub in part.get("properties", {}).items():
                entry = (
                    field,
                    self.type_of(sub, name, field),
                    sub.get("description", "") if isinstance(sub, dict) else "",
                )
                (required if field in req else optional).append(entry)
        self.defs[name] = ("class", bases, required, optional, doc)
        self.order.append(name)

    def run(self) -> str:
        for raw_name, schema in self.schemas.items():
            self.define(camel(raw_name), schema)
        out: list[str] = [
            HEADER.format(
                title=self.spec.get("info", {}).get("title", ""),
                version=self.spec.get("info", {}).get("version", ""),
            )
        ]
        exported: list[str] = []
        for name in self.order:
            d = self.defs[name]
            if d[0] == "alias":
                _, expr, doc = d
                out.extend(["", ""])
                out.extend(comment(doc))
                out.extend(split_long(f"{name} = {expr}"))
                exported.append(name)
            else:
                _, bases, required, optional, doc = d
                out.extend(self.emit_class(name, bases, required, optional, doc))
                exported.append(name)
        out.append("")
        out.append("")
        out.append("# operationId -> (HTTP method, path template)")
        out.append("OPERATIONS: Dict[str, Tuple[str, str]] = {")
        for path, item in self.spec.get("paths", {}).items():
            for method, op in item.items():
                if method in HTTP_METHODS and isinstance(op, dict) and "operationId" in op:
                    out.append(
                        f"    {json.dumps(op['operationId'])}: "
                        f"({json.dumps(method.upper())}, {json.dumps(path)}),"
                    )
        out.append("}")
        out.append("")
        out.append("__all__ = [")
        for name in exported + ["OPERATIONS"]:
            out.append(f"    {json.dumps(name)},")
        out.append("]")
        return "\n".join(out) + "\n"

    def emit_class(self, name, bases, required, optional, doc) -> list[str]:
        lines: list[str] = []
        fields_ok = all(f.isidentifier() and not keyword.iskeyword(f) for f, _, _ in required + optional)
        parent = bases[0] if bases else "TypedDict"
        if len(bases) > 1:
            raise SystemExit(f"generate.py: {name}: allOf of several $refs is not supported")
        if required and optional:
            # Required fields in a total base, the optional ones in the class itself.
            req_name = f"_{name}Required"
            lines.extend(typed_dict(req_name, parent, required, True, "", fields_ok))
            lines.extend(typed_dict(name, req_name, optional, False, doc, fields_ok))
        elif optional:
            lines.extend(typed_dict(name, parent, optional, False, doc, fields_ok))
        else:
            lines.extend(typed_dict(name, parent, required, True, doc, fields_ok))
        return lines


def wrap(text: str, prefix: str, width: int = 79) -> list[str]:
    """TEXT as lines of at most WIDTH (long words kept whole), each starting with PREFIX."""
    lines: list[str] = []
    for para in text.strip().split("\n"):
        chunks = textwrap.wrap(para, width - len(prefix), break_long_words=False, break_on_hyphens=False)
        if chunks:
            lines.extend(prefix + c for c in chunks)
        else:
            lines.append(prefix.rstrip())
    return lines


def split_long(line: str, width: int = 99) -> list[str]:
    """LINE, or when longer than WIDTH and ending in a Literal, that Literal one value a line."""
    head, sep, values = line.partition("Literal[")
    if len(line) <= width or not sep or not values.endswith("]") or "[" in values:
        return [line]
    indent = " " * (len(line) - len(line.lstrip()))
    items = values[:-1].split(", ")
    return [f"{head}Literal["] + [f"{indent}    {v}," for v in items] + [f"{indent}]"]


def comment(doc: str, indent: str = "") -> list[str]:
    return wrap(doc, indent + "# ") if doc else []


def docstring(doc: str, indent: str) -> list[str]:
    text = doc.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    body = wrap(text, indent)
    if len(body) == 1 and len(body[0]) + 6 <= 79:
        return [f'{indent}"""{body[0].strip()}"""']
    return [f'{indent}"""'] + body + [f'{indent}"""']


def typed_dict(name, parent, fields, total, doc, class_syntax) -> list[str]:
    lines = ["", ""]
    total_arg = "" if total else ", total=False"
    if not class_syntax:
        # Field names that are not identifiers: the functional form.
        if parent != "TypedDict":
            raise SystemExit(f"generate.py: {name}: non-identifier fields in a subclass are not supported")
        lines.extend(comment(doc))
        lines.append(f"{name} = TypedDict(")
        lines.append(f"    {json.dumps(name)},")
        lines.append("    {")
        for field, expr, fdoc in fields:
            lines.extend(comment(fdoc, "        "))
            lines.append(f"        {json.dumps(field)}: {expr},")
        lines.append("    },")
        if not total:
            lines.append("    total=False,")
        lines.append(")")
        return lines
    lines.append(f"class {name}({parent}{total_arg}):")
    if doc:
        lines.extend(docstring(doc, "    "))
    if not fields and not doc:
        lines.append("    pass")
    for field, expr, fdoc in fields:
        lines.extend(comment(fdoc, "    "))
        lines.extend(split_long(f"    {field}: {expr}"))
    return lines


HEADER = '''\
# Generated by clients/python/generate.py from shared/src/http/openapi.json
# ({title} {version}). Do not edit: change the document and run
#   python3 clients/python/generate.py
# CI runs it with --check and fails when this file is stale.
"""Types of the jobline API, generated from its OpenAPI document."""

from typing import Any, Dict, List, Literal, Optional, Tuple, TypedDict, Union'''


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=DEFAULT_SPEC, help="the OpenAPI document")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the module to write")
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 with a diff when OUT is stale"
    )
    args = parser.parse_args(argv)
    spec = json.loads(args.spec.read_text(encoding="utf-8"))
    text = Generator(spec).run()
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current == text:
            print(f"generate.py: {args.out.name} is up to date")
            return 0
        sys.stdout.writelines(
            difflib.unified_diff(
                current.splitlines(True),
                text.splitlines(True),
                f"{args.out.name} (committed)",
                f"{args.out.name} (generated from {args.spec.name})",
            )
        )
        print(f"generate.py: {args.out} is stale: run python3 clients/python/generate.py", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not args.out.exists() or args.out.read_text(encoding="utf-8") != text:
        args.out.write_text(text, encoding="utf-8")
        print(f"generate.py: wrote {args.out}")
    else:
        print(f"generate.py: {args.out.name} unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
