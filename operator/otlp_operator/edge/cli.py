"""The `otlp-operator` command line: subcommands over the operator's pure parts.

`otlp-operator render FILE` prints the objects the operator would create for a pipeline, as a
multi-document YAML stream (like `helm template`), so a pipeline can be reviewed, diffed and tested
without a cluster. An invalid file prints one line per problem on stderr and exits 2.

`otlp-operator run (--namespace NS ... | --all-namespaces)` runs the operator itself (kopf, standalone: a
single replica, no peering objects; see docs/operator.md). kopf is imported only for `run`, so `render`
stays quick.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

import yaml
from otlp_agent.api import loader
from otlp_agent.api.problems import SpecError

from otlp_operator import manifests
from otlp_operator.manifests import image
from otlp_operator.reconcile import pipeline_refs

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
    _add_run(commands)
    return parser


def _add_run(commands: Any) -> None:
    run = commands.add_parser("run", help="run the operator (kopf) against the current cluster")
    scope = run.add_mutually_exclusive_group(required=True)
    scope.add_argument(
        "--namespace", "-n", action="append", help="watch this namespace (repeatable; globs ok)"
    )
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch every namespace")
    run.add_argument(
        "--liveness", metavar="URL", help="serve kopf's liveness probe, e.g. http://0.0.0.0:8080/healthz"
    )
    run.add_argument(
        "--agent-image", default=None, help=f"agent image (default: ${image.ENV}, else this release)"
    )
    run.add_argument("--drift-interval", type=float, default=60.0, help="seconds between drift checks (60)")
    run.add_argument(
        "--retry-delay", type=float, default=5.0, help="seconds before retrying a failed apply (5)"
    )
    hook = run.add_argument_group("validating webhook (off unless --webhook-port is given)")
    hook.add_argument("--webhook-port", type=int, help="serve the validating admission webhook on this port")
    hook.add_argument("--webhook-addr", default="0.0.0.0", help="listen address (0.0.0.0)")
    hook.add_argument("--webhook-cert", help="TLS certificate (PEM); required with --webhook-port")
    hook.add_argument("--webhook-key", help="TLS private key (PEM); required with --webhook-port")
    hook.add_argument("--webhook-ca", help="CA bundle to advertise (PEM) in a managed configuration")
    hook.add_argument("--webhook-host", help="host name the API server reaches the webhook at (managed mode)")
    hook.add_argument(
        "--webhook-managed",
        metavar="NAME",
        help="create and maintain the ValidatingWebhookConfiguration NAME (off: the Helm chart owns it)",
    )
    run.add_argument(
        "--inject-sidecars",
        action="store_true",
        help="serve the pod mutating webhook (sidecar injection, at /inject) and roll stale sidecars",
    )
    run.add_argument("--verbose", action="store_true", help="log kopf's info messages")
    run.add_argument("--debug", action="store_true", help="log everything")
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import kopf

    from otlp_operator.edge import handlers, settings

    webhook = None
    if args.webhook_port is not None:
        if not (args.webhook_cert and args.webhook_key):
            print("error: --webhook-port needs --webhook-cert and --webhook-key", file=sys.stderr)
            return EXIT_INVALID
        webhook = settings.Webhook(
            port=args.webhook_port,
            certfile=args.webhook_cert,
            keyfile=args.webhook_key,
            cafile=args.webhook_ca,
            addr=args.webhook_addr,
            host=args.webhook_host,
            managed=args.webhook_managed,
        )
    config = settings.OperatorConfig(
        agent_image=args.agent_image or image.default(os.environ),
        drift_interval=args.drift_interval,
        retry_delay=args.retry_delay,
        webhook=webhook,
        injection=args.inject_sidecars,
    )
    kopf.configure(verbose=args.verbose, debug=args.debug)
    kopf.run(
        registry=handlers.build_registry(config),
        settings=settings.kopf_settings(config),
        standalone=True,
        clusterwide=args.all_namespaces,
        namespaces=args.namespace or (),
        liveness_endpoint=args.liveness,
    )
    return 0


def _render(args: argparse.Namespace) -> int:
    try:
        pipeline = loader.load_file(args.file)
    except SpecError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_INVALID
    for namespace, name in pipeline_refs.targets(pipeline):
        print(
            f"warning: pipelineRef {namespace}/{name} is resolved by the operator in a cluster; "
            "the rendered config keeps the reference",
            file=sys.stderr,
        )
    agent_image = args.agent_image or image.default(os.environ)
    sys.stdout.write(dump_stream(manifests.build_all(pipeline, agent_image=agent_image)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `otlp-operator` console script."""
    args = build_parser().parse_args(argv)
    handler: Any = args.handler
    return int(handler(args))
