"""The `otlp-operator` command line: subcommands over the operator's pure parts.

`otlp-operator render FILE` prints the objects the operator would create for a pipeline, as a
multi-document YAML stream (like `helm template`), so a pipeline can be reviewed, diffed and tested
without a cluster. An invalid file prints one line per problem on stderr and exits 2. Other subcommands
(`run`) register themselves on the same parser.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

import yaml
from otlp_agent import config
from otlp_agent.spec_rules import SpecError

from otlp_operator import manifests
from otlp_operator.manifests import image

EXIT_INVALID = 2


class _Dumper(yaml.SafeDumper):
    """Safe YAML with multi-line strings (the agent config in the ConfigMap) as readable literal blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def dump_stream(objects: Sequence[dict[str, Any]]) -> str:
    """Objects as a `---`-separated YAML stream, keys in the builders' order."""
    return yaml.dump_all(objects, Dumper=_Dumper, sort_keys=False, explicit_start=True)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, one subparser per command."""
    parser = argparse.ArgumentParser(prog="otlp-operator", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    render = commands.add_parser("render", help="print the objects the operator would create for a pipeline")
    render.add_argument("file", metavar="FILE", help="an OTLPPipeline manifest")
    render.add_argument(
        "--agent-image",
        default=None,
        help=f"agent image when the spec sets none (default: ${image.ENV}, else this operator's release)",
    )
    render.set_defaults(handler=_render)
    return parser


def _render(args: argparse.Namespace) -> int:
    try:
        pipeline = config.load_file(args.file)
    except SpecError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_INVALID
    agent_image = args.agent_image or image.default(os.environ)
    sys.stdout.write(dump_stream(manifests.build_all(pipeline, agent_image=agent_image)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `otlp-operator` console script."""
    args = build_parser().parse_args(argv)
    handler: Any = args.handler
    return int(handler(args))
