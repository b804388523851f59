#!/usr/bin/env python3
"""Translate a SAM template to plain CloudFormation, offline.

    python scripts/sam_translate.py TEMPLATE OUTPUT.json [--param Key=Value ...]

Uses aws-sam-translator's own `transform` (what CloudFormation runs for
`Transform: AWS::Serverless-2016-10-31`) so that cfn-lint can check the
resources SAM generates: event source mappings, permissions, roles, routes.
`sam validate` and cfn-lint on the SAM template do not see those, so a
misspelled `FunctionResponseTypes` value or a `!GetAtt` to a missing queue in
an event slips past them.

Offline on purpose:
- AWS_DEFAULT_REGION defaults to us-east-1 (pseudo parameters need a region);
- the managed-policy loader never calls IAM: it returns a fixed map of the
  AWS managed policies a SAM template may name (SAM adds the ARNs of
  AWSLambdaBasicExecutionRole and friends itself);
- local CodeUri/ContentUri/DefinitionUri values become `s3://bucket/key`
  (what `sam package` would upload), because the translator only takes S3.

Exit status: 0 with OUTPUT written; 1 with the translator's message on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_REGION", os.environ["AWS_DEFAULT_REGION"])

from samtranslator.model.exceptions import InvalidDocumentException  # noqa: E402
from samtranslator.translator.transform import transform  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402

DUMMY_S3_URI = "s3://bucket/key"

# Resource type -> properties that may hold a local path.
LOCAL_URI_PROPERTIES = {
    "AWS::Serverless::Function": ("CodeUri",),
    "AWS::Serverless::LayerVersion": ("ContentUri",),
    "AWS::Serverless::Api": ("DefinitionUri",),
    "AWS::Serverless::HttpApi": ("DefinitionUri",),
    "AWS::Serverless::StateMachine": ("DefinitionUri",),
}
GLOBALS_SECTION = {
    "AWS::Serverless::Function": "Function",
    "AWS::Serverless::Api": "Api",
    "AWS::Serverless::HttpApi": "HttpApi",
}

_MANAGED = "arn:aws:iam::aws:policy/"
MANAGED_POLICIES = {
    "AWSLambdaBasicExecutionRole": _MANAGED + "service-role/AWSLambdaBasicExecutionRole",
    "AWSLambdaSQSQueueExecutionRole": _MANAGED + "service-role/AWSLambdaSQSQueueExecutionRole",
    "AWSLambdaVPCAccessExecutionRole": _MANAGED + "service-role/AWSLambdaVPCAccessExecutionRole",
    "AWSXRayDaemonWriteAccess": _MANAGED + "AWSXRayDaemonWriteAccess",
    "CloudWatchLambdaInsightsExecutionRolePolicy": _MANAGED + "CloudWatchLambdaInsightsExecutionRolePolicy",
}


class OfflinePolicyLoader:
    """Stands in for samtranslator's ManagedPolicyLoader (which lists IAM)."""

    def load(self) -> dict[str, str]:
        return dict(MANAGED_POLICIES)


def _is_local(value: object) -> bool:
    # Strings that are not S3 URIs are local paths; dicts ({Bucket, Key}) and
    # intrinsics are left alone.
    return isinstance(value, str) and not value.startswith("s3://")


def replace_local_uris(template: dict) -> list[str]:
    """Points local code/definition paths at a dummy S3 object; returns what changed."""
    changed = []
    globals_ = template.get("Globals") or {}
    for rtype, section in GLOBALS_SECTION.items():
        props = globals_.get(section) or {}
        for prop in LOCAL_URI_PROPERTIES[rtype]:
            if _is_local(props.get(prop)):
                changed.append(f"Globals.{section}.{prop}")
                props[prop] = DUMMY_S3_URI
    for name, resource in (template.get("Resources") or {}).items():
        if not isinstance(resource, dict):
            continue
        props = resource.get("Properties")
        if not isinstance(props, dict):
            continue
        for prop in LOCAL_URI_PROPERTIES.get(resource.get("Type"), ()):
            if _is_local(props.get(prop)):
                changed.append(f"{name}.{prop}")
                props[prop] = DUMMY_S3_URI
    return changed


def translate(template: dict, parameters: dict[str, str]) -> dict:
    replace_local_uris(template)
    return transform(template, parameters, OfflinePolicyLoader())


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("template")
    parser.add_argument("output")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="a parameter value (defaults come from the template)")
    args = parser.parse_args(argv)

    parameters = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--param wants KEY=VALUE, got {item!r}")
        parameters[key] = value

    with open(args.template, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    try:
        output = translate(template, parameters)
    except InvalidDocumentException as e:
        for cause in e.causes:
            print(f"sam_translate: {cause.message}", file=sys.stderr)
        return 1
    except Exception as e:  # the translator raises plain errors too
        print(f"sam_translate: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(output, f, indent=1, sort_keys=False)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
