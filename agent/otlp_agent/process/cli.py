"""`otlp-agent`: validate a pipeline file, or run an agent from one.

FILE is an OTLPPipeline manifest (what you `kubectl apply`) or just its spec; `validate` also takes a
multi-document file (every pipeline in it is checked, other kinds are skipped). Problems are printed one per
line as `field.path: message` with exit status 2, never as a traceback. A valid pipeline whose agent
container leaves too little memory beyond its limiter (`memory_fit`, the webhook's warning) gets a
`warning: namespace/name: ...` line on stderr; the exit status stays 0, as the webhook admits it.

`run` reloads the file when its content changes. Persistent queues live in `--queue-dir`, else
`$OTLP_AGENT_QUEUE_DIR`. `--any-free-port` binds every listener on a port the OS picks (the spec's ports are
ignored) and `--ready-file` tells a parent process which ones (see `ready_file`); the "ready" log line
names them too.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import signal
import sys

from otlp_agent.api import loader, memory_fit
from otlp_agent.api.problems import SpecError
from otlp_agent.telemetry import build, logs

EXIT_INVALID = 2
QUEUE_DIR_ENV = "OTLP_AGENT_QUEUE_DIR"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="otlp-agent", description="A fast OTLP agent.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {build.VERSION}")
    commands = parser.add_subparsers(dest="command", required=True)
    validate = commands.add_parser("validate", help="check a pipeline file and report every problem")
    validate.add_argument("file")
    run = commands.add_parser("run", help="run an agent")
    run.add_argument("--config", required=True, help="pipeline file (manifest or spec)")
    run.add_argument("--listen-host", default="0.0.0.0", help="address to listen on (default: all)")
    run.add_argument(
        "--queue-dir",
        default=os.environ.get(QUEUE_DIR_ENV),
        help=f"directory of persistent queues (default: ${QUEUE_DIR_ENV})",
    )
    run.add_argument(
        "--any-free-port",
        action="store_true",
        help="listen on ports the OS picks instead of the spec's (see the ready log line or --ready-file)",
    )
    run.add_argument(
        "--ready-file",
        type=pathlib.Path,
        help='write {"pid": ..., "ports": {"grpc": ..., "http": ..., "telemetry": ...}} here once ready',
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "validate":
            for valid in loader.load_all_file(args.file):
                print(f"{valid.namespace}/{valid.name}: valid")
                for warning in memory_fit.warnings(valid):
                    print(f"warning: {valid.namespace}/{valid.name}: {warning}", file=sys.stderr)
            return 0
        pipeline = loader.load_runnable(args.config)
    except SpecError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_INVALID
    logs.configure(pipeline.spec.telemetry.log_level)
    logs.route_native_stderr()  # before grpc is imported: its own log lines join the JSON log
    return asyncio.run(_run(pipeline, args))


async def _run(pipeline: loader.OTLPPipeline, args: argparse.Namespace) -> int:
    from otlp_agent.exporter.queue.factory import NoQueueDirectory
    from otlp_agent.process.agent import Agent

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        agent = Agent(
            pipeline,
            host=args.listen_host,
            queue_dir=pathlib.Path(args.queue_dir) if args.queue_dir else None,
            config_path=pathlib.Path(args.config),
            any_free_port=args.any_free_port,
            ready_path=args.ready_file,
        )
        await agent.run(stop)
    except (OSError, NoQueueDirectory) as exc:  # e.g. a port already in use, no queue directory
        print(f"otlp-agent: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
