"""``python -m provdb.neo4j_server {fetch,start,stop,status}``: the Maven-provisioned Neo4j.

Thin wrapper over :class:`provdb.neo4j_server.Neo4jServer`; ``dlv neo4j`` calls the same
methods. Exit status 0 on success, 1 on a :class:`~provdb.errors.ProvDBError`, and for
``status`` 3 when the server is not running.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from provdb.errors import ProvDBError
from provdb.neo4j_server import Neo4jServer


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for the four sub-commands."""
    parser = argparse.ArgumentParser(
        prog="python -m provdb.neo4j_server",
        description="Fetch (from Maven Central), start, stop and inspect a local Neo4j 5.26.",
    )
    parser.add_argument("--home", help="jar/home folder (default $PROVDB_NEO4J_HOME or "
                        "~/.cache/provdb/neo4j-5.26)")  # fmt: skip
    parser.add_argument("--instance-dir", help="conf/data/logs/run folder (default: --home)")
    parser.add_argument("--port", type=int, help="Bolt port on 127.0.0.1 (default 7687)")
    parser.add_argument("--password", default=os.environ.get("PROVDB_NEO4J_PASSWORD"),
                        help="auth on with this password for user neo4j "
                        "(default $PROVDB_NEO4J_PASSWORD; unset = auth off)")  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="resolve the server jars with mvn into HOME/lib")
    fetch.add_argument("--force", action="store_true", help="re-fetch even if lib/ is complete")
    start = sub.add_parser("start", help="start the server (fetches the jars if needed)")
    start.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for ready")
    start.add_argument("--foreground", action="store_true",
                       help="stay attached; Ctrl-C stops the server")  # fmt: skip
    start.add_argument("--heap", default="1g", help="max JVM heap (default 1g)")
    start.add_argument("--pagecache", default="256m", help="page cache size (default 256m)")
    stop = sub.add_parser("stop", help="stop a server started from this instance folder")
    stop.add_argument("--timeout", type=float, default=60.0, help="seconds before SIGKILL")
    sub.add_parser("status", help="report whether the server runs and answers")
    return parser


def _server(args: argparse.Namespace) -> Neo4jServer:
    """The server object the parsed arguments describe."""
    return Neo4jServer(
        args.home,
        port=args.port,
        instance_dir=args.instance_dir,
        password=args.password,
        heap_max=getattr(args, "heap", "1g"),
        pagecache=getattr(args, "pagecache", "256m"),
    )


def cmd_fetch(server: Neo4jServer, args: argparse.Namespace) -> int:
    """Fetch the jars and print what ``lib/`` holds."""
    seconds = server.fetch(force=args.force, quiet=False)
    count, size = server.lib_stats()
    what = f"fetched in {seconds:.1f} s" if seconds else "already complete"
    print(f"{server.lib_dir}: {count} jars, {size / 2**20:.0f} MiB ({what})")
    return 0


def cmd_start(server: Neo4jServer, args: argparse.Namespace) -> int:
    """Start (detached unless ``--foreground``) and print the ready line."""
    state = server.status()
    if state.running:
        print(f"Neo4j already running at {state.uri} (pid {state.pid})")
        return 0
    server.fetch(quiet=False)
    seconds = server.start(timeout=args.timeout, detach=not args.foreground)
    print(f"Neo4j {server.version()} ready at {server.uri} in {seconds:.1f} s")
    if not args.foreground:
        where = (
            "" if server.instance_dir == server.home else f" --instance-dir {server.instance_dir}"
        )
        print(f"log: {server.log_file}; stop: python -m provdb.neo4j_server{where} stop")
        return 0
    try:
        server.wait()
    except KeyboardInterrupt:
        print("stopping Neo4j")
    finally:
        server.stop()
    return 0


def cmd_stop(server: Neo4jServer, args: argparse.Namespace) -> int:
    """Stop the server of this instance folder, if one runs."""
    if server.stop(timeout=args.timeout):
        print("Neo4j stopped")
    else:
        print("Neo4j was not running")
    return 0


def cmd_status(server: Neo4jServer, args: argparse.Namespace) -> int:
    """Print the status line; exit 3 when not running."""
    state = server.status()
    print(state.describe())
    return 0 if state.running else 3


COMMANDS = {"fetch": cmd_fetch, "start": cmd_start, "stop": cmd_stop, "status": cmd_status}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](_server(args), args)
    except ProvDBError as exc:
        print(f"error [{exc.code}]: {exc.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
