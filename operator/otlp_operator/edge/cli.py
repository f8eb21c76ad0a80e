"""The `otlp-operator` command line: subcommands over the operator's pure parts.

`otlp-operator render FILE` prints the objects the operator would create for the pipelines of FILE (one
manifest, or several in a multi-document file), as a multi-document YAML stream (like `helm template`), so
pipelines can be reviewed, diffed and tested without a cluster. An invalid file prints one line per problem
on stderr and exits 2. A `pipelineRef` is resolved against the other pipelines of the file exactly as the
operator resolves it in a cluster (`reconcile.pipeline_refs`); one that does not resolve is named on
stderr with the reason, that pipeline's objects are not printed (the operator would deploy nothing for
it), and the exit status is 2. A pipeline the webhook would admit with a warning (`memory_fit`) gets a
`warning: namespace/name: ...` line on stderr and is rendered; the warning alone leaves the status 0.

`otlp-operator run (--namespace NS ... | --all-namespaces)` runs the operator itself (kopf; standalone, or
one of several replicas with `--peering NAME`; see docs/operator.md). Options that cannot work together
are refused before anything starts, naming the option or file. kopf is imported only for `run`, so
`render` stays quick.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

import yaml
from otlp_agent.api import loader, memory_fit, spec
from otlp_agent.api.problems import SpecError

from otlp_operator import manifests, naming
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
    parser.add_argument("--version", action="version", version=f"%(prog)s {image.release()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    render = commands.add_parser("render", help="print the objects the operator would create for a pipeline")
    render.add_argument("file", metavar="FILE", help="OTLPPipeline manifests (one or several documents)")
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
        "--health-port",
        type=int,
        help="serve /healthz (liveness) and /readyz (readiness: webhooks can answer) on this port (0: any)",
    )
    run.add_argument("--health-addr", default="0.0.0.0", help="listen address of the probes (0.0.0.0)")
    peers = run.add_argument_group("high availability (off: this is the only replica)")
    peers.add_argument(
        "--peering",
        metavar="NAME",
        help="kopf peering object shared by the replicas; one reconciles at a time",
    )
    peers.add_argument(
        "--priority", type=int, default=None, help="peering priority (default: the oldest replica wins)"
    )
    peers.add_argument(
        "--peering-lifetime",
        type=int,
        default=30,
        help="seconds before a silent replica is presumed dead (30)",
    )
    run.add_argument(
        "--agent-image", default=None, help=f"agent image (default: ${image.ENV}, else this release)"
    )
    run.add_argument("--drift-interval", type=float, default=60.0, help="seconds between drift checks (60)")
    run.add_argument(
        "--retry-delay", type=float, default=5.0, help="seconds before retrying a failed apply (5)"
    )
    run.add_argument(
        "--no-pod-refresh",
        action="store_true",
        help="do not annotate agent pods after a config change (their kubelet then refreshes the file at "
        "its sync period instead of within seconds; see docs/operations.md, Scaling)",
    )
    run.add_argument(
        "--kubelet-sync-period",
        type=float,
        default=60.0,
        help="the kubelets' syncFrequency in seconds, for when a config is expected everywhere (60)",
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
    own = run.add_argument_group(
        "webhook certificate issued by the operator (the files above are then written, not read)"
    )
    own.add_argument(
        "--webhook-tls-secret",
        metavar="NAMESPACE/NAME",
        help="issue, rotate and share the webhook certificate through this Secret",
    )
    own.add_argument(
        "--webhook-tls-san",
        action="append",
        default=[],
        metavar="NAME",
        help="a DNS name or IP it covers (repeatable)",
    )
    own.add_argument(
        "--webhook-tls-configuration",
        action="append",
        default=[],
        metavar="validating/NAME|mutating/NAME",
        help="a webhook configuration whose caBundle the operator keeps current (repeatable)",
    )
    run.add_argument(
        "--inject-sidecars",
        action="store_true",
        help="serve the pod mutating webhook (sidecar injection, at /inject) and roll stale sidecars",
    )
    run.add_argument(
        "--log-format", choices=("json", "text"), default="json", help="log lines as JSON (default) or text"
    )
    run.add_argument("--verbose", action="store_true", help="log kopf's info messages")
    run.add_argument("--debug", action="store_true", help="log everything")
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import kopf

    from otlp_operator.edge import handlers, logs, settings

    refusal = _refusal(args)
    if refusal is not None:
        print(f"error: {refusal}", file=sys.stderr)
        return EXIT_INVALID
    webhook = None
    if args.webhook_port is not None:
        webhook = settings.Webhook(
            tls=_own_tls(args),
            port=args.webhook_port,
            certfile=args.webhook_cert,
            keyfile=args.webhook_key,
            cafile=args.webhook_ca,
            addr=args.webhook_addr,
            host=args.webhook_host,
            managed=args.webhook_managed,
        )
    peering = None
    if args.peering:
        priority = settings.default_priority() if args.priority is None else args.priority
        peering = settings.Peering(args.peering, priority, args.peering_lifetime)
    config = settings.OperatorConfig(
        agent_image=args.agent_image or image.default(os.environ),
        drift_interval=args.drift_interval,
        retry_delay=args.retry_delay,
        refresh_pods=not args.no_pod_refresh,
        kubelet_sync_period=args.kubelet_sync_period,
        webhook=webhook,
        injection=args.inject_sidecars,
        namespaces=tuple(args.namespace or ()),
        health=None if args.health_port is None else (args.health_addr, args.health_port),
        peering=peering,
    )
    logs.configure(args.log_format, verbose=args.verbose, debug=args.debug)
    kopf.run(
        registry=handlers.build_registry(config),
        settings=settings.kopf_settings(config),
        standalone=peering is None,
        clusterwide=args.all_namespaces,
        namespaces=args.namespace or (),
    )
    return 0


def _own_tls_refusal(args: argparse.Namespace) -> str | None:
    namespace, _, name = args.webhook_tls_secret.rpartition("/")
    if not (namespace and name):
        return f"--webhook-tls-secret {args.webhook_tls_secret}: expected NAMESPACE/NAME"
    if not args.webhook_tls_san:
        return "--webhook-tls-secret needs at least one --webhook-tls-san (the names the certificate covers)"
    if not args.webhook_ca:
        return "--webhook-tls-secret needs --webhook-ca (where to write the CA bundle)"
    for configuration in args.webhook_tls_configuration:
        kind, _, config_name = configuration.partition("/")
        if kind not in CONFIGURATION_KINDS or not config_name:
            return f"--webhook-tls-configuration {configuration}: expected validating/NAME or mutating/NAME"
    return None


CONFIGURATION_KINDS = {
    "validating": "ValidatingWebhookConfiguration",
    "mutating": "MutatingWebhookConfiguration",
}


def _own_tls(args: argparse.Namespace) -> Any:
    """The operator-issued certificate's settings, or None when the files are provided."""
    from otlp_operator.reconcile import webhook_tls

    if not args.webhook_tls_secret:
        return None
    namespace, _, name = args.webhook_tls_secret.rpartition("/")
    configurations = tuple(
        (CONFIGURATION_KINDS[kind], name)
        for kind, _, name in (c.partition("/") for c in args.webhook_tls_configuration)
    )
    return webhook_tls.Tls(
        namespace=namespace,
        secret=name,
        names=tuple(args.webhook_tls_san),
        configurations=configurations,
        certfile=args.webhook_cert,
        keyfile=args.webhook_key,
        cafile=args.webhook_ca,
    )


def _refusal(args: argparse.Namespace) -> str | None:
    """Why these `run` options cannot work, naming the option (or the file); None when they can."""
    if args.inject_sidecars and args.webhook_port is None:
        return "--inject-sidecars serves the pod webhook, which needs --webhook-port (and its certificate)"
    if args.webhook_port is None:
        return None
    if not (args.webhook_cert and args.webhook_key):
        return "--webhook-port needs --webhook-cert and --webhook-key"
    if args.webhook_tls_secret:
        return _own_tls_refusal(args)
    for option, path in (
        ("--webhook-cert", args.webhook_cert),
        ("--webhook-key", args.webhook_key),
        ("--webhook-ca", args.webhook_ca),
    ):
        if path is not None and not os.path.isfile(path):
            return f"{option} {path}: no such file"
    return None


def _render(args: argparse.Namespace) -> int:
    try:
        pipelines = loader.load_all_file(args.file)
    except SpecError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_INVALID
    bodies = _bodies(args.file)
    agent_image = args.agent_image or image.default(os.environ)
    objects: list[dict[str, Any]] = []
    unresolved = 0
    for pipeline in pipelines:
        for warning in memory_fit.warnings(pipeline):
            print(f"warning: {pipeline.namespace}/{pipeline.name}: {warning}", file=sys.stderr)
        resolution = pipeline_refs.resolve(
            pipeline, {key: bodies.get(key) for key in pipeline_refs.targets(pipeline)}
        )
        for failure in resolution.failures:
            unresolved += 1
            print(
                f"error: {pipeline.namespace}/{pipeline.name}: {failure} ({failure.reason}); the operator "
                "deploys nothing for this pipeline until it resolves, so nothing is printed for it",
                file=sys.stderr,
            )
        if not resolution.failures:
            objects += manifests.build_all(resolution.pipeline, agent_image=agent_image)
    sys.stdout.write(dump_stream(objects) if objects else "")
    return EXIT_INVALID if unresolved else 0


def _bodies(path: str) -> dict[naming.PipelineKey, dict[str, Any]]:
    """The file's OTLPPipeline documents as the API server would hold them, by (namespace, name)."""
    with open(path, encoding="utf-8") as stream:
        documents = [d for d in yaml.safe_load_all(stream) if isinstance(d, dict)]
    found = {}
    for document in documents:
        if document.get("kind") == spec.KIND:
            metadata = document.get("metadata") or {}
            key = naming.PipelineKey(
                str(metadata.get("namespace", "default")), str(metadata.get("name", "local"))
            )
            found[key] = document
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `otlp-operator` console script."""
    args = build_parser().parse_args(argv)
    handler: Any = args.handler
    return int(handler(args))
