#!/usr/bin/env python3
"""Check that template.yaml and the code agree.

    python scripts/check_template_functions.py [--root DIR] [--template FILE]
    python scripts/check_template_functions.py --self-test

Template vs code:

- every `[[bin]]` of functions/Cargo.toml has exactly one
  AWS::Serverless::Function (matched by its cargo-lambda metadata
  `Metadata.BuildProperties.Binary`), and every function resource builds one
  of those binaries;
- every function is built the same way: `BuildMethod: rust-cargolambda`,
  `Runtime: provided.al2023`, `Handler: bootstrap` (on the resource or in
  Globals);
- every ROUTES entry of shared/src/http/mod.rs is an HttpApi event with the
  same method and path on the function of the same binary, and every HttpApi
  event in the template is a ROUTES entry; a row of method `ANY` (a site of
  pages: the dashboard) is two events, `ANY path` and `ANY path/{proxy+}`;
- the SQS consumer contract: every SQS event reports partial batch failures,
  and the queue it reads has a visibility timeout of at least six times the
  consumer's timeout;
- secrets by ARN only: no variable of `SECRET_VARS` (functions/src/secrets.rs)
  is set in a function's environment (Globals included); each
  `<NAME>_SECRET_ARN` set is one of them, and a managed policy of the
  function (or of its role) allows `secretsmanager:GetSecretValue` on that
  ARN plus its random suffix (`-??????`).

Code vs code (no template needed):

- every ROUTES row `route!(Variant, METHOD, "path", "function")` has a
  `[[bin]]` named `function` in functions/Cargo.toml, built from the file
  functions/src/bin/<function>.rs, and that file calls `serve_route` and names
  exactly one RouteId variant, the row's (`RouteId::(\\w+)` in the file with
  `//` and `/* */` comments removed);
- every binary file under functions/src/bin/ (`*.rs`, `*/main.rs`) that calls
  `serve_route` is the file of a ROUTES function (no orphan route binaries);
- scripts/test-lambda exercises every route function: each ROUTES function
  is a word of its `FUNCTIONS=( ... )` array (all `FUNCTIONS=`/`FUNCTIONS+=`
  assignments; `#` comments ignored) AND is the function argument of at
  least one call there: `req METHOD <function> ...`, `invoke <function> ...`
  or `cargo lambda invoke ... <function>`. Calls are read as shell words
  (quotes removed, `\\`-continued lines joined, comments and heredoc bodies
  skipped). A `$var`/`${var}` inside the argument stands for any word of an
  enclosing `for VAR in WORD...` loop, a word split at `:` included (so
  `for pair in pause:paused ...; do req POST "$action-worker" ...` counts for
  pause-worker); outside such a loop a variable matches nothing (the
  helpers' own `cargo lambda invoke "$fn"` counts for no function). Every
  word of FUNCTIONS must also be a `[[bin]]`.

Prints one line per check, `ok   <what>` or `FAIL <what>`, followed on
failure by indented lines saying what is missing. Exit status 1 when any
check failed, 2 when an input cannot be read.

`--self-test` builds small trees in a temporary directory and runs the code
checks on them (a consistent tree passes; a missing bin file or [[bin]], a
wrong RouteId, an orphan route binary, a function missing from test-lambda's
FUNCTIONS or calls each fail); with samtranslator importable it also runs the
whole check, template included, on the consistent tree. Prints one line per
case and `N passed, M failed`; exit status 1 when a case failed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
import sys
import tempfile
import tomllib
from pathlib import Path

# samtranslator (aws-sam-translator) is imported by load_template only: the
# code checks and --self-test run without it.

FUNCTION = "AWS::Serverless::Function"


class InputError(Exception):
    pass


# ---------------------------------------------------------------- inputs --

def cargo_bin_files(manifest: Path) -> list[tuple[str, str]]:
    """(name, source path relative to the package) of every binary of the
    functions package, as cargo sees them (duplicates kept)."""
    try:
        data = tomllib.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise InputError(f"{manifest}: {e}") from e
    package = data.get("package", {})
    out = []
    for b in data.get("bin", []):
        if "name" not in b:
            continue
        path = b.get("path")
        if path is None:
            # cargo's default for a [[bin]] without a path
            name = b["name"]
            candidates = [f"src/bin/{name}.rs", f"src/bin/{name}/main.rs"]
            if name == package.get("name"):
                candidates.insert(0, "src/main.rs")
            path = next((c for c in candidates if (manifest.parent / c).is_file()), candidates[0])
        out.append((b["name"], str(path).removeprefix("./")))
    if package.get("autobins", True):
        # Cargo's auto-discovery adds src/main.rs and src/bin/*.rs (and
        # src/bin/*/main.rs) unless a [[bin]] already claims the file.
        claimed = {b.get("path") for b in data.get("bin", [])}
        src = manifest.parent / "src"
        if (src / "main.rs").is_file() and "src/main.rs" not in claimed:
            out.append((package.get("name", manifest.parent.name), "src/main.rs"))
        for path in sorted((src / "bin").glob("*.rs")):
            if f"src/bin/{path.name}" not in claimed:
                out.append((path.stem, f"src/bin/{path.name}"))
        for path in sorted((src / "bin").glob("*/main.rs")):
            if f"src/bin/{path.parent.name}/main.rs" not in claimed:
                out.append((path.parent.name, f"src/bin/{path.parent.name}/main.rs"))
    return out


def cargo_bins(manifest: Path) -> list[str]:
    """Binary names of the functions package, as cargo sees them."""
    return [name for name, _ in cargo_bin_files(manifest)]


ROUTE_RE = re.compile(
    r'route!\s*\(\s*(\w+)\s*,\s*(\w+)\s*,\s*"([^"]*)"\s*,\s*"([^"]*)"\s*,?\s*\)', re.S
)


def route_rows(mod_rs: Path) -> list[tuple[str, str, str, str]]:
    """(RouteId variant, METHOD, path, function) of every ROUTES entry."""
    try:
        text = mod_rs.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"{mod_rs}: {e}") from e
    m = re.search(r"pub\s+const\s+ROUTES\s*:[^=]*=\s*&\[(.*?)\];", text, re.S)
    if not m:
        raise InputError(f"{mod_rs}: no `pub const ROUTES: &[RouteDef] = &[ ... ];` found")
    block = re.sub(r"//[^\n]*", "", m.group(1))
    found = [(variant, method.upper(), path, function) for variant, method, path, function in ROUTE_RE.findall(block)]
    entries = block.count("route!")
    if entries != len(found) or not found:
        raise InputError(
            f"{mod_rs}: ROUTES has {entries} route! entries but {len(found)} parse as "
            "route!(Id, METHOD, \"path\", \"function\"); update this checker"
        )
    return found


def routes(mod_rs: Path) -> list[tuple[str, str, str]]:
    """(METHOD, path, function) of every ROUTES entry. A row of method `ANY`
    is a site of pages (the dashboard): the path and everything under it,
    so two HttpApi events, `ANY path` and `ANY path/{proxy+}`."""
    out = []
    for _, method, path, function in route_rows(mod_rs):
        out.append((method, path, function))
        if method == "ANY":
            out.append((method, path.rstrip("/") + "/{proxy+}", function))
    return out


def rust_code(path: Path) -> str:
    """A Rust file without its comments."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"{path}: {e}") from e
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


ROUTE_ID_RE = re.compile(r"\bRouteId\s*::\s*(\w+)")
SERVE_ROUTE_RE = re.compile(r"\bserve_route\s*\(")


# scripts/test-lambda ------------------------------------------------------

def _strip_shell_comment(line: str) -> str:
    """The line up to an unquoted `#` that starts a word."""
    quote = None
    i = 0
    while i < len(line):
        c = line[i]
        if quote == "'":
            if c == "'":
                quote = None
        elif c == "\\":
            i += 1
        elif quote == '"':
            if c == '"':
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1] in " \t;&|()"):
            return line[:i]
        i += 1
    return line


_HEREDOC_RE = re.compile(r"(?<!<)<<-?(?!<)\s*(['\"]?)(\w+)\1")


def _shell_lines(text: str) -> list[str]:
    """Logical lines: comments removed, `\\`-continuations joined, heredoc
    bodies left out."""
    out: list[str] = []
    buf = ""
    heredoc = None
    for raw in text.split("\n"):
        if heredoc is not None:
            if raw.strip() == heredoc:
                heredoc = None
            continue
        line = buf + raw
        code = _strip_shell_comment(line)
        # A backslash at the end of a comment continues nothing.
        if code == line and line.endswith("\\") and not line.endswith("\\\\"):
            buf = line[:-1] + " "
            continue
        buf = ""
        line = code
        out.append(line)
        m = _HEREDOC_RE.search(line)
        if m:
            heredoc = m.group(2)
    return out


def _shell_words(line: str) -> list[str] | None:
    lex = shlex.shlex(line, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    lex.commenters = ""
    try:
        return list(lex)
    except ValueError:
        return None


_SEPARATOR = set(";&|()")
_KEYWORDS = {"do", "then", "else", "elif", "if", "!", "{", "time"}
_LITERAL_WORD = re.compile(r"^[\w.:/+-]+$")


def _commands(line: str) -> list[list[str]]:
    """The simple commands of a logical line (words, leading keywords and
    redirections dropped)."""
    words = _shell_words(line)
    if words is None:
        return []
    out: list[list[str]] = []
    cur: list[str] = []
    skip_next = False
    for w in words:
        if w and set(w) <= _SEPARATOR:
            out.append(cur)
            cur = []
        elif skip_next:
            skip_next = False
        elif w and set(w) <= set("<>"):
            skip_next = True  # its target
            if cur and cur[-1].isdigit():
                cur.pop()  # the 2 of 2>file
        else:
            cur.append(w)
    out.append(cur)
    result = []
    for c in out:
        while c and c[0] in _KEYWORDS:
            c = c[1:]
        if c:
            result.append(c)
    return result


_VAR_RE = re.compile(r"\$\{[^}]*\}|\$\w+|\$[@*#?$!0-9-]")


def _arg_pattern(arg: str, loop_words: set[str]) -> re.Pattern:
    """A regex for the values ARG may take: each variable stands for a word
    of the enclosing for-loops."""
    parts = []
    pos = 0
    alt = "|".join(re.escape(w) for w in sorted(loop_words, key=len, reverse=True)) or "(?!)"
    for m in _VAR_RE.finditer(arg):
        parts.append(re.escape(arg[pos:m.start()]))
        parts.append(f"(?:{alt})")
        pos = m.end()
    parts.append(re.escape(arg[pos:]))
    return re.compile("".join(parts))


class LambdaTests:
    """What scripts/test-lambda declares and calls."""

    def __init__(self, functions: list[str], calls: list[tuple[str, re.Pattern]]) -> None:
        self.functions = functions
        self.calls = calls  # (argument as written, pattern of its values)

    def exercises(self, function: str) -> bool:
        return any(p.fullmatch(function) for _, p in self.calls)


def lambda_tests(script: Path) -> LambdaTests:
    try:
        text = script.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"{script}: {e}") from e

    functions: list[str] = []
    arrays = re.findall(
        r"^[ \t]*(?:(?:declare|typeset|local|readonly)\s+-?\w*\s*)?FUNCTIONS\+?=\(([^)]*)\)", text, re.M
    )
    if not arrays:
        raise InputError(f"{script}: no `FUNCTIONS=( ... )` array found; update this checker")
    for body in arrays:
        for line in body.split("\n"):
            words = _shell_words(_strip_shell_comment(line))
            if words is None:
                raise InputError(f"{script}: cannot read the FUNCTIONS line {line.strip()!r}")
            functions.extend(words)

    calls: list[tuple[str, re.Pattern]] = []
    loops: list[set[str]] = []  # words of the enclosing loops (empty for while/until)
    for line in _shell_lines(text):
        for cmd in _commands(line):
            head = cmd[0]
            if head == "for":
                loop_words: set[str] = set()
                if "in" in cmd:
                    for w in cmd[cmd.index("in") + 1:]:
                        if _LITERAL_WORD.match(w):
                            loop_words.add(w)
                            loop_words.update(x for x in w.split(":") if x)
                loops.append(loop_words)
                continue
            if head in ("while", "until", "select"):
                loops.append(set())
                continue
            if head == "done":
                if loops:
                    loops.pop()
                continue
            args: list[str] = []
            if head == "req" and len(cmd) >= 3:
                args = [cmd[2]]
            elif head == "invoke" and len(cmd) >= 2:
                args = [cmd[1]]
            for i in range(len(cmd) - 2):
                if cmd[i:i + 3] == ["cargo", "lambda", "invoke"]:
                    args += [w for w in cmd[i + 3:] if not w.startswith("-")]
            if args:
                in_scope = set().union(*loops) if loops else set()
                calls.extend((a, _arg_pattern(a, in_scope)) for a in args)
    return LambdaTests(functions, calls)


def load_template(path: Path) -> dict:
    try:
        from samtranslator.yaml_helper import yaml_parse
    except ImportError as e:
        raise InputError(
            f"cannot import samtranslator ({e}); scripts/lint-template installs aws-sam-cli "
            "(which brings it) into <repo>/.venv"
        ) from e
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
        self.results: list[tuple[str, list[str]]] = []

    def check(self, what: str, problems: list[str]) -> None:
        self.results.append((what, list(problems)))
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


# ---------------------------------------------------------------- secrets --

def secret_vars(secrets_rs: Path) -> list[str]:
    """The names of `SECRET_VARS` in functions/src/secrets.rs: the variables
    the functions read from Secrets Manager (`<NAME>_SECRET_ARN`)."""
    m = re.search(r"SECRET_VARS\s*:\s*&\[&str\]\s*=\s*&\[(.*?)\];", rust_code(secrets_rs), re.S)
    if not m:
        raise InputError(f"{secrets_rs}: no `pub const SECRET_VARS: &[&str] = &[...];`")
    return re.findall(r'"([A-Z0-9_]+)"', m.group(1))


def _is_novalue(v) -> bool:
    return v == {"Ref": "AWS::NoValue"}


def _env_of(template: dict, resource: dict) -> dict:
    globals_env = ((template.get("Globals") or {}).get("Function") or {}).get("Environment") or {}
    env = dict(globals_env.get("Variables") or {})
    env.update(((resource.get("Properties") or {}).get("Environment") or {}).get("Variables") or {})
    return {k: v for k, v in env.items() if not _is_novalue(v)}


def _arn_templates(value) -> list[str]:
    """The `!Sub` strings a value can be (both branches of a `!If`)."""
    if isinstance(value, dict) and "Fn::If" in value:
        return [t for branch in value["Fn::If"][1:] for t in _arn_templates(branch)]
    if isinstance(value, dict) and "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
        return [value["Fn::Sub"]]
    if isinstance(value, str):
        return [value]
    return []


def _policy_refs(value) -> list[str]:
    """Names of the resources a Policies / ManagedPolicyArns list refers to."""
    if isinstance(value, list):
        return [n for item in value for n in _policy_refs(item)]
    if isinstance(value, dict) and "Fn::If" in value:
        return [n for branch in value["Fn::If"][1:] for n in _policy_refs(branch)]
    if isinstance(value, dict) and isinstance(value.get("Ref"), str):
        return [value["Ref"]]
    return []


def _granted_secrets(template: dict, resource: dict) -> set[str]:
    """The resources (as `!Sub` strings) on which the function's managed
    policies, or its role's, allow secretsmanager:GetSecretValue."""
    resources = template["Resources"]
    props = resource.get("Properties") or {}
    names = _policy_refs(props.get("Policies") or [])
    role = props.get("Role")
    if isinstance(role, dict) and "Fn::GetAtt" in role:
        role_props = (resources.get(role["Fn::GetAtt"][0]) or {}).get("Properties") or {}
        names += _policy_refs(role_props.get("ManagedPolicyArns") or [])
    granted = set()
    for name in names:
        policy = resources.get(name) or {}
        if policy.get("Type") != "AWS::IAM::ManagedPolicy":
            continue
        for st in ((policy.get("Properties") or {}).get("PolicyDocument") or {}).get("Statement") or []:
            actions = st.get("Action")
            actions = actions if isinstance(actions, list) else [actions]
            if st.get("Effect") != "Allow" or "secretsmanager:GetSecretValue" not in actions:
                continue
            res = st.get("Resource")
            for r in res if isinstance(res, list) else [res]:
                granted.update(_arn_templates(r))
    return granted


def check_secrets(report: Report, template: dict, fns: dict[str, dict], names: list[str], source: str) -> None:
    """No secret value in a function's environment (it is readable with
    lambda:GetFunctionConfiguration): each secret variable is set only as
    `<NAME>_SECRET_ARN`, and the function may read that secret (a managed
    policy allowing GetSecretValue on the ARN plus its random suffix)."""
    problems = []
    for fname, r in sorted(fns.items()):
        env = _env_of(template, r)
        granted = _granted_secrets(template, r)
        for name in names:
            if name in env:
                problems.append(f"{fname}: {name} is set in the environment; set {name}_SECRET_ARN instead")
            arn = env.get(f"{name}_SECRET_ARN")
            if arn is None:
                continue
            for t in _arn_templates(arn):
                if f"{t}-??????" not in granted and t not in granted:
                    problems.append(f"{fname}: reads {name}_SECRET_ARN ({t}) but no policy allows GetSecretValue on it")
        for var in env:
            if var.endswith("_SECRET_ARN") and var[: -len("_SECRET_ARN")] not in names:
                problems.append(f"{fname}: {var} is not a secret the code reads (SECRET_VARS in {source})")
    report.check(
        f"secrets ({len(names)} in {source}) reach the functions by ARN only, each readable by its function", problems
    )


# ----------------------------------------------------------- code checks --
# Route table vs bin files vs [[bin]]s vs scripts/test-lambda; no template.

def check_route_bins(
    report: Report, rows: list[tuple[str, str, str, str]], bin_files: list[tuple[str, str]],
    package: Path, rel, routes_label: str,
) -> None:
    declared: dict[str, str] = {}
    for name, path in bin_files:
        declared.setdefault(name, path)
    manifest = rel(package / "Cargo.toml")
    problems = []
    for variant, method, path, function in rows:
        want_path = f"src/bin/{function}.rs"
        file = package / want_path
        label = f"{function} ({method} {path}, RouteId::{variant})"
        if function not in declared:
            problems.append(f"{label}: no [[bin]] named {function!r} in {manifest}")
        elif declared[function] != want_path:
            problems.append(f"{label}: [[bin]] {function!r} of {manifest} builds {declared[function]}, not {want_path}")
        if not file.is_file():
            problems.append(f"{label}: no file {rel(file)}")
            continue
        code = rust_code(file)
        if not SERVE_ROUTE_RE.search(code):
            problems.append(f"{label}: {rel(file)} does not call serve_route")
        ids = sorted(set(ROUTE_ID_RE.findall(code)))
        if ids != [variant]:
            have = ", ".join(f"RouteId::{i}" for i in ids) or "no RouteId"
            problems.append(f"{label}: {rel(file)} names {have}, want RouteId::{variant} only")
    report.check(
        f"every ROUTES function of {routes_label} ({len(rows)}) has a [[bin]] of {manifest} "
        f"and a {rel(package / 'src' / 'bin')}/<function>.rs serving its RouteId",
        problems,
    )


def check_orphan_route_bins(
    report: Report, rows: list[tuple[str, str, str, str]], bin_files: list[tuple[str, str]],
    package: Path, rel, routes_label: str,
) -> None:
    route_functions = {function for *_, function in rows}
    names_of: dict[str, list[str]] = {}
    for name, path in bin_files:
        names_of.setdefault(path, []).append(name)
    bin_dir = package / "src" / "bin"
    files = set(bin_dir.glob("*.rs")) | set(bin_dir.glob("*/main.rs"))
    files |= {package / path for path in names_of if (package / path).is_file()}
    problems = []
    serving = 0
    for file in sorted(files):
        code = rust_code(file)
        if not SERVE_ROUTE_RE.search(code):
            continue
        serving += 1
        default = file.parent.name if file.name == "main.rs" and file.parent != bin_dir else file.stem
        names = names_of.get(file.relative_to(package).as_posix()) or [default]
        if not any(n in route_functions for n in names):
            ids = ", ".join(f"RouteId::{i}" for i in sorted(set(ROUTE_ID_RE.findall(code)))) or "no RouteId"
            which = " / ".join(repr(n) for n in names)
            problems.append(
                f"{rel(file)} calls serve_route ({ids}) but {which} is not a function of ROUTES in {routes_label}"
            )
    report.check(f"every bin of {rel(bin_dir)} that calls serve_route ({serving}) is a ROUTES function", problems)


def check_test_lambda(
    report: Report, rows: list[tuple[str, str, str, str]], bins: list[str], tests: LambdaTests,
    script_label: str, manifest_label: str,
) -> None:
    route_functions = list(dict.fromkeys(function for *_, function in rows))
    others = [b for b in dict.fromkeys(bins) if b not in set(route_functions)]
    declared = set(tests.functions)

    def problems_for(names: list[str]) -> list[str]:
        out = []
        for name in names:
            missing = []
            if name not in declared:
                missing.append("not in FUNCTIONS")
            if not tests.exercises(name):
                missing.append("no `req METHOD <fn>`, `invoke <fn>` or `cargo lambda invoke <fn>` call names it")
            if missing:
                out.append(f"{name}: {'; '.join(missing)}")
        return out

    report.check(
        f"every ROUTES function ({len(route_functions)}) is in FUNCTIONS of {script_label} and called by a check there",
        problems_for(route_functions),
    )
    # The other binaries (sqs-consumer, sweeper) are tested by
    # functions/tests/lambda/, not through test-lambda.
    del others
    stale = [
        f"{name!r} is in FUNCTIONS but is not a [[bin]] of {manifest_label}"
        for name in dict.fromkeys(tests.functions) if name not in bins
    ]
    report.check(f"every FUNCTIONS entry of {script_label} ({len(declared)}) is a [[bin]] of {manifest_label}", stale)


def run_code_checks(report: Report, root: Path) -> None:
    """The checks that need no template (InputError when an input is unreadable)."""
    package = root / "functions"
    mod_rs = root / "shared" / "src" / "http" / "mod.rs"
    script = root / "scripts" / "test-lambda"
    rel = lambda p: str(p.relative_to(root)) if p.is_relative_to(root) else str(p)  # noqa: E731
    bin_files = cargo_bin_files(package / "Cargo.toml")
    rows = route_rows(mod_rs)
    tests = lambda_tests(script)
    check_route_bins(report, rows, bin_files, package, rel, rel(mod_rs))
    check_orphan_route_bins(report, rows, bin_files, package, rel, rel(mod_rs))
    check_test_lambda(report, rows, [n for n, _ in bin_files], tests, rel(script), rel(package / "Cargo.toml"))


# ------------------------------------------------------------- self-test --

_ROUTE_BIN = """//! Lambda function `{name}`: one route of the jobline API.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {{
    jobline_functions::serve_route(jobline::http::RouteId::{variant}).await
}}
"""

# (variant, method, path, function)
_FIXTURE_ROUTES = [
    ("Health", "GET", "/health", "health"),
    ("GetJob", "GET", "/v1/jobs/{id}", "get-job"),
    ("PauseWorker", "POST", "/v1/workers/{id}/pause", "pause-worker"),
    ("ResumeWorker", "POST", "/v1/workers/{id}/resume", "resume-worker"),
    ("Dashboard", "ANY", "/dashboard", "dashboard"),
]


def _fixture() -> dict[str, str]:
    """A small consistent tree: four routes, one SQS consumer."""
    files: dict[str, str] = {}
    files["shared/src/http/mod.rs"] = """pub const ROUTES: &[RouteDef] = &[
    route!(Health, GET, "/health", "health"),
    // a row over several lines, as rustfmt writes long ones
    route!(
        GetJob,
        GET,
        "/v1/jobs/{id}",
        "get-job"
    ),
    route!(PauseWorker, POST, "/v1/workers/{id}/pause", "pause-worker"),
    route!(ResumeWorker, POST, "/v1/workers/{id}/resume", "resume-worker"),
    route!(Dashboard, ANY, "/dashboard", "dashboard"),
];
"""
    toml = ['[package]\nname = "jobline-functions"\nversion = "0.1.0"\nautobins = false\n']
    for variant, _, _, function in _FIXTURE_ROUTES:
        files[f"functions/src/bin/{function}.rs"] = _ROUTE_BIN.format(name=function, variant=variant)
        toml.append(f'[[bin]]\nname = "{function}"\npath = "src/bin/{function}.rs"\n')
    files["functions/src/bin/sqs-consumer.rs"] = (
        "//! not a route (mentions RouteId::Health and serve_route only in comments)\n"
        "#[tokio::main]\nasync fn main() -> Result<(), lambda_runtime::Error> {\n"
        "    jobline_functions::consumer::run().await\n}\n"
    )
    toml.append('[[bin]]\nname = "sqs-consumer"\npath = "src/bin/sqs-consumer.rs"\n')
    files["functions/Cargo.toml"] = "\n".join(toml)
    files["functions/src/secrets.rs"] = 'pub const SECRET_VARS: &[&str] = &["DATABASE_URL"];\n'
    files["scripts/test-lambda"] = """#!/usr/bin/env bash
set -euo pipefail
FUNCTIONS=(health get-job # the job routes
  pause-worker resume-worker dashboard sqs-consumer)
cat >"$TMP/t.py" <<'PY'
invoke get-job not-a-call.json
PY
req() {
  local method=$1 fn=$2 path=$3
  curl -sS -X "$method" "$BASE/lambda-url/$fn$path"
}
invoke() {
  local fn=$1 ev=$2
  timeout 10 cargo lambda invoke "$fn" --data-file "$ev" >"$TMP/out" 2>"$TMP/err"
}
for fn in "${FUNCTIONS[@]}"; do
  echo "watch serves $fn"
done
req GET health /health "" none
expect "health: GET /health" 200
req GET get-job "/v1/jobs/$JOB_ID" \\
  "" none
expect "get-job: no key -> 401" 401
for pair in pause:paused resume:running; do
  action=${pair%%:*} want=${pair##*:}
  req POST "$action-worker" "/v1/workers/w/$action"
  expect "$action-worker: POST" 200 "j[\\"desired_state\\"] == \\"$want\\""
done
req GET dashboard /dashboard/login "" none
expect "dashboard: GET /dashboard/login" 200
invoke sqs-consumer sqs-event.json
expect "invoke sqs-consumer" 200
"""
    return files


def _fixture_template() -> str:
    out = [
        'AWSTemplateFormatVersion: "2010-09-09"',
        "Transform: AWS::Serverless-2016-10-31",
        "Globals:",
        "  Function:",
        "    Runtime: provided.al2023",
        "    Handler: bootstrap",
        "    CodeUri: .",
        "    Timeout: 10",
        "Resources:",
        "  Queue:",
        "    Type: AWS::SQS::Queue",
        "    Properties:",
        "      VisibilityTimeout: 60",
    ]

    def function(resource: str, binary: str, events: list[str]) -> None:
        out.extend([
            f"  {resource}:",
            "    Type: AWS::Serverless::Function",
            "    Metadata:",
            "      BuildMethod: rust-cargolambda",
            "      BuildProperties:",
            f"        Binary: {binary}",
            "    Properties:",
            "      Events:",
            *events,
        ])

    for variant, method, path, binary in _FIXTURE_ROUTES:
        events = [
            "        Http:", "          Type: HttpApi", "          Properties:",
            f"            Method: {method}", f"            Path: {path}",
        ]
        if method == "ANY":
            events += [
                "        Below:", "          Type: HttpApi", "          Properties:",
                f"            Method: {method}", f"            Path: {path}/{{proxy+}}",
            ]
        function(f"{variant}Function", binary, events)
    function("SqsConsumerFunction", "sqs-consumer", [
        "        Jobs:", "          Type: SQS", "          Properties:",
        "            Queue: !GetAtt Queue.Arn",
        "            FunctionResponseTypes: [ReportBatchItemFailures]",
    ])
    return "\n".join(out) + "\n"


def _edit(path: str, old: str, new: str):
    def mutate(files: dict[str, str]) -> None:
        assert old in files[path], f"self-test fixture: {old!r} not in {path}"
        files[path] = files[path].replace(old, new)
    return mutate


def _drop(path: str):
    def mutate(files: dict[str, str]) -> None:
        del files[path]
    return mutate


def _add(path: str, text: str):
    def mutate(files: dict[str, str]) -> None:
        files[path] = text
    return mutate


def _then(*mutations):
    def mutate(files: dict[str, str]) -> None:
        for m in mutations:
            m(files)
    return mutate


def _write_tree(root: Path, files: dict[str, str]) -> None:
    for rel_path, text in files.items():
        path = root / rel_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def self_test() -> int:
    # (case, mutation of the consistent tree, failing code checks, substrings
    # of the FAIL details)
    cases = [
        ("consistent tree: every code check passes", None, 0, []),
        ("missing bin file fails", _drop("functions/src/bin/get-job.rs"), 1,
         ["get-job (GET /v1/jobs/{id}, RouteId::GetJob): no file functions/src/bin/get-job.rs"]),
        ("missing [[bin]] fails (and FUNCTIONS then names a non-binary)",
         _edit("functions/Cargo.toml", '[[bin]]\nname = "get-job"\npath = "src/bin/get-job.rs"\n', ""), 2,
         ["get-job (GET /v1/jobs/{id}, RouteId::GetJob): no [[bin]] named 'get-job' in functions/Cargo.toml",
          "'get-job' is in FUNCTIONS but is not a [[bin]] of functions/Cargo.toml"]),
        ("[[bin]] built from another file fails",
         _edit("functions/Cargo.toml", 'path = "src/bin/get-job.rs"', 'path = "src/bin/health.rs"'), 1,
         ["[[bin]] 'get-job' of functions/Cargo.toml builds src/bin/health.rs, not src/bin/get-job.rs"]),
        ("wrong RouteId in bin file fails",
         _edit("functions/src/bin/get-job.rs", "RouteId::GetJob", "RouteId::Health"), 1,
         ["functions/src/bin/get-job.rs names RouteId::Health, want RouteId::GetJob only"]),
        ("bin file without serve_route fails",
         _add("functions/src/bin/get-job.rs", "fn main() { let _ = jobline::http::RouteId::GetJob; }\n"), 1,
         ["functions/src/bin/get-job.rs does not call serve_route"]),
        ("orphan route bin fails",
         _add("functions/src/bin/list-jobs.rs", _ROUTE_BIN.format(name="list-jobs", variant="ListJobs")), 1,
         ["functions/src/bin/list-jobs.rs calls serve_route (RouteId::ListJobs) but 'list-jobs' is not a "
          "function of ROUTES in shared/src/http/mod.rs"]),
        ("route function missing from FUNCTIONS fails",
         _edit("scripts/test-lambda", "FUNCTIONS=(health get-job #", "FUNCTIONS=(health #"), 1,
         ["get-job: not in FUNCTIONS"]),
        ("route function never called fails (commented-out call, heredoc text do not count)",
         _edit("scripts/test-lambda", 'req GET get-job "/v1/jobs/$JOB_ID"', '# req GET get-job "/v1/jobs/$JOB_ID"'), 1,
         ["get-job: no `req METHOD <fn>`"]),
        ("route function called only through a loop word that is gone fails",
         _edit("scripts/test-lambda", "pause:paused resume:running", "pause:paused"), 1,
         ["resume-worker: no `req METHOD <fn>`"]),
    ]
    passed = failed = 0

    def outcome(name: str, problems: list[str], output: str) -> None:
        nonlocal passed, failed
        if problems:
            failed += 1
            print(f"FAIL self-test: {name}")
            for line in problems + ["output:"] + output.rstrip("\n").split("\n"):
                print(f"       {line}")
        else:
            passed += 1
            print(f"ok   self-test: {name}")

    with tempfile.TemporaryDirectory(prefix="check-template-functions.") as tmp:
        for i, (name, mutate, want_failed, want_text) in enumerate(cases):
            files = _fixture()
            root = Path(tmp) / f"case{i}"
            problems: list[str] = []
            out = io.StringIO()
            try:
                if mutate:
                    mutate(files)
                _write_tree(root, files)
                report = Report()
                with contextlib.redirect_stdout(out):
                    run_code_checks(report, root)
            except (InputError, AssertionError) as e:
                outcome(name, [f"error: {e}"], out.getvalue())
                continue
            if report.failed != want_failed:
                problems.append(f"{report.failed} code check(s) failed, want {want_failed}")
            details = "\n".join(p for _, ps in report.results for p in ps)
            problems += [f"no FAIL detail contains {t!r}" for t in want_text if t not in details]
            outcome(name, problems, out.getvalue())

        # The whole check, template included, needs samtranslator.
        try:
            import samtranslator  # noqa: F401
        except ImportError:
            print("skip self-test: whole check on a fixture tree (samtranslator not importable)")
        else:
            env = "    CodeUri: .\n    Environment:\n      Variables:\n"
            arn = '        DATABASE_URL_SECRET_ARN: !Sub "arn:${AWS::Partition}:secretsmanager:us-east-1:123456789012:secret:db"\n'
            for i, (name, mutate, want_rc) in enumerate([
                ("whole check on the consistent tree (template included) exits 0", None, 0),
                ("whole check with a missing bin file exits 1", _drop("functions/src/bin/get-job.rs"), 1),
                ("whole check with a site row lacking its {proxy+} event exits 1",
                 _edit("template.yaml", "Path: /dashboard/{proxy+}", "Path: /dashboard/x"), 1),
                ("whole check with a secret's value in the environment exits 1",
                 _edit("template.yaml", "    CodeUri: .\n", env + "        DATABASE_URL: postgres://u:p@db/x\n"), 1),
                ("whole check with a secret's ARN no policy lets a function read exits 1",
                 _edit("template.yaml", "    CodeUri: .\n", env + arn), 1),
            ]):
                files = _fixture()
                files["template.yaml"] = _fixture_template()
                if mutate:
                    mutate(files)
                root = Path(tmp) / f"whole{i}"
                _write_tree(root, files)
                out = io.StringIO()
                with contextlib.redirect_stdout(out):
                    rc = main(["--root", str(root)])
                outcome(name, [] if rc == want_rc else [f"exit {rc}, want {want_rc}"], out.getvalue())

    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=here.parent, help="the repository (default: this script's)")
    parser.add_argument("--template", type=Path, help="default: ROOT/template.yaml")
    parser.add_argument("--self-test", action="store_true", help="run the checks on small fixture trees and exit")
    args = parser.parse_args(argv)
    if args.self_test:
        return self_test()
    root = args.root
    template_path = args.template or root / "template.yaml"
    manifest = root / "functions" / "Cargo.toml"
    mod_rs = root / "shared" / "src" / "http" / "mod.rs"

    try:
        bins = cargo_bins(manifest)
        table = routes(mod_rs)
        lambda_tests(root / "scripts" / "test-lambda")
        template = load_template(template_path)
        secrets_rs = root / "functions" / "src" / "secrets.rs"
        names = secret_vars(secrets_rs)
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
    check_secrets(report, template, fns, names, rel(secrets_rs))
    try:
        run_code_checks(report, root)
    except InputError as e:
        print(f"FAIL bins/ROUTES/test-lambda agreement (cannot read input)\n       {e}")
        return 2
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
