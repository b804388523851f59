#!/usr/bin/env python3
"""Check that template.yaml and the code agree.

    python scripts/check_template_functions.py [--root DIR] [--template FILE]

- every `[[bin]]` of functions/Cargo.toml has exactly one
  AWS::Serverless::Function (matched by its cargo-lambda metadata
  `Metadata.BuildProperties.Binary`), and every function resource builds one
  of those binaries;
- every function is built the same way: `BuildMethod: rust-cargolambda`,
  `Runtime: provided.al2023`, `Handler: bootstrap` (on the resource or in
  Globals);
- every ROUTES entry of shared/src/http/mod.rs is an HttpApi event with the
  same method and path on the function of the same binary, and every HttpApi
  event in the template is a ROUTES entry;
- the SQS consumer contract: every SQS event reports partial batch failures,
  and the queue it reads has a visibility timeout of at least six times the
  consumer's timeout.

Prints one line per check, `ok   <what>` or `FAIL <what>`, followed on
failure by indented lines saying what is missing. Exit status 1 when any
check failed, 2 when an input cannot be read.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

from samtranslator.yaml_helper import yaml_parse

FUNCTION = "AWS::Serverless::Function"


class InputError(Exception):
    pass


# ---------------------------------------------------------------- inputs --

def cargo_bins(manifest: Path) -> list[str]:
    """Binary names of the functions package, as cargo sees them."""
    try:
        data = tomllib.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise InputError(f"{manifest}: {e}") from e
    names = [b["name"] for b in data.get("bin", []) if "name" in b]
    package = data.get("package", {})
    if package.get("autobins", True):
        # Cargo's auto-discovery adds src/main.rs and src/bin/*.rs (and
        # src/bin/*/main.rs) unless a [[bin]] already claims the file.
        claimed = {b.get("path") for b in data.get("bin", [])}
        src = manifest.parent / "src"
        if (src / "main.rs").is_file() and "src/main.rs" not in claimed:
            names.append(package.get("name", manifest.parent.name))
        for path in sorted((src / "bin").glob("*.rs")):
            if f"src/bin/{path.name}" not in claimed:
                names.append(path.stem)
        for path in sorted((src / "bin").glob("*/main.rs")):
            if f"src/bin/{path.parent.name}/main.rs" not in claimed:
                names.append(path.parent.name)
    return names


ROUTE_RE = re.compile(
    r'route!\s*\(\s*(\w+)\s*,\s*(\w+)\s*,\s*"([^"]*)"\s*,\s*"([^"]*)"\s*,?\s*\)', re.S
)


def routes(mod_rs: Path) -> list[tuple[str, str, str]]:
    """(METHOD, path, function) of every ROUTES entry."""
    try:
        text = mod_rs.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"{mod_rs}: {e}") from e
    m = re.search(r"pub\s+const\s+ROUTES\s*:[^=]*=\s*&\[(.*?)\];", text, re.S)
    if not m:
        raise InputError(f"{mod_rs}: no `pub const ROUTES: &[RouteDef] = &[ ... ];` found")
    block = re.sub(r"//[^\n]*", "", m.group(1))
    found = [(method.upper(), path, function) for _, method, path, function in ROUTE_RE.findall(block)]
    entries = block.count("route!")
    if entries != len(found) or not found:
        raise InputError(
            f"{mod_rs}: ROUTES has {entries} route! entries but {len(found)} parse as "
            "route!(Id, METHOD, \"path\", \"function\"); update this checker"
        )
    return found


def load_template(path: Path) -> dict:
    try:
        template = yaml_parse(path.read_text(encoding="utf-8"))
    except Exception as e:  # yaml errors, OSError
        raise InputError(f"{path}: {e}") from e
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise InputError(f"{path}: no Resources")
    return template


# ---------------------------------------------------------------- checks --

class Report:
    def __init__(self) -> None:
        self.failed = 0
        self.passed = 0

    def check(self, what: str, problems: list[str]) -> None:
        if problems:
            self.failed += 1
            print(f"FAIL {what}")
            for p in problems:
                print(f"       {p}")
        else:
            self.passed += 1
            print(f"ok   {what}")


def functions(template: dict) -> dict[str, dict]:
    return {
        name: r for name, r in template["Resources"].items()
        if isinstance(r, dict) and r.get("Type") == FUNCTION
    }


def binary_of(resource: dict) -> str | None:
    props = (resource.get("Metadata") or {}).get("BuildProperties") or {}
    binary = props.get("Binary")
    return binary if isinstance(binary, str) else None


def http_events(resource: dict) -> list[tuple[str, str, str]]:
    """(event name, METHOD, path) of the HttpApi events of one function."""
    out = []
    for name, event in ((resource.get("Properties") or {}).get("Events") or {}).items():
        if isinstance(event, dict) and event.get("Type") == "HttpApi":
            props = event.get("Properties") or {}
            out.append((name, str(props.get("Method", "")).upper(), str(props.get("Path", ""))))
    return out


def check_binaries(report: Report, fns: dict[str, dict], bins: list[str], manifest: str) -> None:
    by_binary: dict[str, list[str]] = {}
    for name, r in fns.items():
        b = binary_of(r)
        if b is not None:
            by_binary.setdefault(b, []).append(name)

    problems = []
    for b in sorted(set(bins)):
        owners = by_binary.get(b, [])
        if not owners:
            problems.append(f"binary {b!r} has no function resource (Metadata.BuildProperties.Binary: {b})")
        elif len(owners) > 1:
            problems.append(f"binary {b!r} is built by {len(owners)} resources: {', '.join(sorted(owners))}")
    for b in sorted(b for b in set(bins) if bins.count(b) > 1):
        problems.append(f"binary {b!r} is declared {bins.count(b)} times in {manifest}")
    report.check(f"every [[bin]] of {manifest} ({len(set(bins))}) has exactly one function resource", problems)

    problems = []
    for name, r in sorted(fns.items()):
        b = binary_of(r)
        if b is None:
            problems.append(f"{name} has no Metadata.BuildProperties.Binary")
        elif b not in bins:
            problems.append(f"{name} builds {b!r}, which is not a [[bin]] of {manifest}")
    report.check(f"every function resource ({len(fns)}) builds a [[bin]] of {manifest}", problems)


def check_build_settings(report: Report, template: dict, fns: dict[str, dict]) -> None:
    globals_fn = (template.get("Globals") or {}).get("Function") or {}
    want = {"Runtime": "provided.al2023", "Handler": "bootstrap"}
    problems = []
    for name, r in sorted(fns.items()):
        props = r.get("Properties") or {}
        method = (r.get("Metadata") or {}).get("BuildMethod")
        if method != "rust-cargolambda":
            problems.append(f"{name}: Metadata.BuildMethod is {method!r}, want 'rust-cargolambda'")
        for key, value in want.items():
            got = props.get(key, globals_fn.get(key))
            if got != value:
                problems.append(f"{name}: {key} is {got!r}, want {value!r}")
        if props.get("CodeUri", globals_fn.get("CodeUri")) is None:
            problems.append(f"{name}: no CodeUri")
    report.check("every function: rust-cargolambda, provided.al2023, Handler bootstrap, a CodeUri", problems)


def check_routes(report: Report, fns: dict[str, dict], table: list[tuple[str, str, str]], mod_rs: str) -> None:
    by_binary = {}
    for name, r in fns.items():
        b = binary_of(r)
        if b is not None:
            by_binary.setdefault(b, name)

    problems = []
    for method, path, function in table:
        resource = by_binary.get(function)
        if resource is None:
            problems.append(f"{method} {path}: no function resource builds {function!r}")
            continue
        events = http_events(fns[resource])
        if not any(m == method and p == path for _, m, p in events):
            have = ", ".join(f"{m} {p}" for _, m, p in events) or "none"
            problems.append(f"{method} {path}: {resource} ({function}) has no such HttpApi event (has: {have})")
    report.check(f"every ROUTES entry of {mod_rs} ({len(table)}) is an HttpApi event of its function", problems)

    known = set(table)
    problems = []
    seen: dict[tuple[str, str], str] = {}
    for name, r in sorted(fns.items()):
        b = binary_of(r)
        for event, method, path in http_events(r):
            if (method, path) in seen:
                problems.append(f"{name}.{event}: {method} {path} is also on {seen[(method, path)]}")
            seen[(method, path)] = name
            if (method, path, b) not in known:
                where = [f for m, p, f in table if m == method and p == path]
                why = f"ROUTES serves it with {where[0]!r}" if where else "not in ROUTES"
                problems.append(f"{name}.{event}: {method} {path} ({b}): {why}")
    report.check(f"every HttpApi event of the template ({len(seen)}) is a ROUTES entry", problems)


def _resolve_ref(value, template: dict):
    """A parameter Ref's default, a number, or None."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        param = (template.get("Parameters") or {}).get(value["Ref"]) or {}
        return param.get("Default")
    return value


def _visibility_timeouts(queue_props: dict, template: dict, consumer_timeout) -> list[tuple[str, int, int]]:
    """(label, consumer timeout, visibility timeout) for every value the consumer timeout may take."""
    vt = queue_props.get("VisibilityTimeout", 30)
    params = template.get("Parameters") or {}
    # A consumer timeout from a parameter: check every allowed value.
    timeouts = [consumer_timeout]
    if isinstance(consumer_timeout, dict) and "Ref" in consumer_timeout:
        p = params.get(consumer_timeout["Ref"]) or {}
        timeouts = p.get("AllowedValues") or [p.get("Default")]
    out = []
    for t in timeouts:
        v = vt
        if isinstance(vt, dict) and "Fn::FindInMap" in vt:
            mapping, key, attr = vt["Fn::FindInMap"]
            if isinstance(key, dict) and key == consumer_timeout:
                key = str(t)
            v = ((template.get("Mappings") or {}).get(mapping) or {}).get(str(key), {}).get(attr)
        v = _resolve_ref(v, template)
        try:
            out.append((str(t), int(t), int(v)))
        except (TypeError, ValueError):
            out.append((str(t), -1, -1))
    return out


def check_consumer(report: Report, template: dict, fns: dict[str, dict]) -> None:
    globals_fn = (template.get("Globals") or {}).get("Function") or {}
    resources = template["Resources"]
    problems = []
    consumers = 0
    for name, r in sorted(fns.items()):
        props = r.get("Properties") or {}
        for event, spec in (props.get("Events") or {}).items():
            if not isinstance(spec, dict) or spec.get("Type") != "SQS":
                continue
            consumers += 1
            ep = spec.get("Properties") or {}
            if "ReportBatchItemFailures" not in (ep.get("FunctionResponseTypes") or []):
                problems.append(f"{name}.{event}: FunctionResponseTypes lacks ReportBatchItemFailures")
            queue = ep.get("Queue")
            qname = None
            if isinstance(queue, dict) and "Fn::GetAtt" in queue:
                qname = queue["Fn::GetAtt"][0]
            qres = resources.get(qname) if qname else None
            if not isinstance(qres, dict) or qres.get("Type") != "AWS::SQS::Queue":
                problems.append(f"{name}.{event}: Queue is not !GetAtt <an AWS::SQS::Queue of this template>.Arn")
                continue
            timeout = props.get("Timeout", globals_fn.get("Timeout", 3))
            for label, t, v in _visibility_timeouts(qres.get("Properties") or {}, template, timeout):
                if t < 0 or v < 0:
                    problems.append(f"{name}.{event}: cannot work out {qname}'s visibility timeout for timeout {label}")
                elif v < 6 * t:
                    problems.append(f"{name}.{event}: timeout {t}s but {qname} VisibilityTimeout {v}s (< 6x)")
    if consumers == 0:
        problems.append("no function has an SQS event")
    report.check(
        "SQS consumers report batch item failures; queue visibility >= 6x consumer timeout", problems
    )


def main(argv: list[str]) -> int:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=here.parent, help="the repository (default: this script's)")
    parser.add_argument("--template", type=Path, help="default: ROOT/template.yaml")
    args = parser.parse_args(argv)
    root = args.root
    template_path = args.template or root / "template.yaml"
    manifest = root / "functions" / "Cargo.toml"
    mod_rs = root / "shared" / "src" / "http" / "mod.rs"

    try:
        bins = cargo_bins(manifest)
        table = routes(mod_rs)
        template = load_template(template_path)
    except InputError as e:
        print(f"FAIL template/code agreement (cannot read input)\n       {e}")
        return 2

    report = Report()
    fns = functions(template)
    rel = lambda p: str(p.relative_to(root)) if p.is_relative_to(root) else str(p)  # noqa: E731
    check_binaries(report, fns, bins, rel(manifest))
    check_build_settings(report, template, fns)
    check_routes(report, fns, table, rel(mod_rs))
    check_consumer(report, template, fns)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
