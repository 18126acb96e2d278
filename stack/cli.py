"""``python -m stack up|status|down|reindex`` and ``python -m stack fault <service> <verb> [arg]``.

Why a CLI next to the fixtures: a person reading notes/fault_tolerance.md should break the running ``make up``
stack with the same verbs the tests use, and watch the app answer. See notes/docker.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, NoReturn

from stack.base import COMMON_VERBS, REPLICA_VERBS, SERVICE_NAMES, StackError
from stack.native.layout import Layout
from stack.native.reaper import reap_orphans
from stack.native.stack import NativeStack
from stack.native.web import REPO
from stack.provider import choose_provider

POINTER = REPO / ".stack" / "current.json"
USAGE_EXIT = 2


def stack_command() -> str:
    """This CLI as one pastes it into a fresh shell in the repository: the interpreter running it, by its path.

    Never a bare ``python -m stack``: outside the activated environment that Python has none of our packages."""
    interpreter = Path(sys.executable)
    if interpreter.is_relative_to(REPO):
        interpreter = interpreter.relative_to(REPO)
    return f"{interpreter} -m stack"


def fail_usage(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(USAGE_EXIT)


def running_stack(state: Path | None = None) -> NativeStack:
    """The stack ``make up`` recorded here, or the one whose state file is given (tests pass theirs)."""
    if state is None:
        if not POINTER.exists():
            print("no stack is running here: start one with `make up`", file=sys.stderr)
            sys.exit(1)
        state = Path(json.loads(POINTER.read_text())["state"])
    if not state.exists():
        POINTER.unlink(missing_ok=True)
        print(f"no running stack recorded at {state}: start one with `make up`", file=sys.stderr)
        sys.exit(1)
    return NativeStack.from_state(state)


def check_fault(service: str, verb: str, arg: str | None) -> None:
    """Exit 2 on misuse, listing what is valid, before touching any process."""
    if service not in SERVICE_NAMES:
        fail_usage(f"unknown service {service!r}; valid services: {', '.join(SERVICE_NAMES)}")
    verbs = COMMON_VERBS + (REPLICA_VERBS if service == "replica" else ())
    if verb not in verbs:
        fail_usage(f"unknown verb {verb!r} for {service}; valid verbs: {', '.join(verbs)}")
    if (verb == "slow") != (arg is not None) or (arg is not None and not arg.isdigit()):
        fail_usage("`slow` takes one argument, the delay in milliseconds (e.g. `slow 300`); other verbs take none")


def apply_fault(stack: NativeStack, service: str, verb: str, arg: str | None) -> None:
    svc: Any = stack[service]
    actions = {"lag": "pause_replay", "unlag": "resume_replay"}
    method: Any = stack.fail_over if verb == "promote" else getattr(svc, actions.get(verb, verb))
    if verb == "slow":
        method(int(arg or 0))
    else:
        method()
    stack.save_state()
    print(f"{service}: {verb}{' ' + arg if arg else ''} done")


def compose_command() -> list[str]:
    """Compose v2 (``docker compose``) where installed, else Debian's v1 ``docker-compose``."""
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    return ["docker", "compose"] if probe.returncode == 0 else ["docker-compose"]


def command_up(free_ports: bool, through_pgbouncer: bool = False) -> None:
    if choose_provider() == "docker":
        print("a Docker engine answers (REFSTACK_PROVIDER): running the stack with docker compose")
        sys.exit(subprocess.call([*compose_command(), "-f", str(REPO / "docker-compose.yml"), "up", "--build"]))
    reap_orphans()
    if not free_ports and POINTER.exists():
        fail_usage("a stack is already recorded here; run `make down` first")
    pooled = {"REFSTACK_DB_TRANSACTION_POOLER": "true"} if through_pgbouncer else None
    stack = NativeStack(Layout.create(fixed=not free_ports), app_settings=pooled)
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    print(f"starting refstack (native provider) in {stack.layout.base}", flush=True)
    stack.up()
    if not free_ports:  # only the fixed-port stack is the one `make down` and `fault` find by default
        POINTER.parent.mkdir(exist_ok=True)
        POINTER.write_text(json.dumps({"state": str(stack.state_path)}))
    print_welcome(stack)
    try:
        while not stopping.wait(0.5) and stack.state_path.exists():  # `make down` elsewhere removes the state
            stack.refresh()
    finally:
        print("stopping refstack ...")
        stack.refresh()
        stack.down()
        if not free_ports:
            POINTER.unlink(missing_ok=True)
        print("stopped", flush=True)


def print_welcome(stack: NativeStack) -> None:
    edge = stack.nginx.url
    password = os.environ.get("REFSTACK_DEMO_PASSWORD", "refstack-demo")
    print(f"\nrefstack is up: {edge}   (Ctrl-C or `make down` stops everything)")
    for name, info in stack.status().items():
        print(f"  {name:<9} {info['direct_url']}")
    print(f"\ndemo accounts (password {password!r}): organizer@example.com, user@example.com")
    print(
        "\ntry:\n"
        f"  curl -s '{edge}/api/v1/events?city=Berlin'\n"
        f"  TOKEN=$(curl -s -d 'username=user@example.com&password={password}' {edge}/api/v1/auth/token"
        " | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')\n"
        f'  curl -s -H "Authorization: Bearer $TOKEN" {edge}/api/v1/me/bookings\n'
        'then break something (README.md, "Break things", lists every fault):\n'
        f"  {stack_command()} fault redis pause\n"
        f"  {stack_command()} fault redis resume",
        flush=True,
    )


def command_status(state: Path | None) -> None:
    for name, info in running_stack(state).status().items():
        print(f"{name:<9} {'up  ' if info['up'] else 'DOWN'} pids={info['pids']} {info['url']}")


def command_down(state: Path | None) -> None:
    if state is None and not POINTER.exists():
        reap_orphans()
        print("nothing recorded here to stop")
        return
    stack = running_stack(state)
    stack.down()
    POINTER.unlink(missing_ok=True)
    print("stopped")


def command_reindex(state: Path | None) -> None:
    """Rebuild the running stack's Elasticsearch index (``python -m app.reindex`` with the app's configuration);
    the app's own exit status, 1 when the stack has no Elasticsearch (notes/elasticsearch.md)."""
    stack = running_stack(state)
    env = {**os.environ, **stack.app_environment()}
    sys.exit(subprocess.call([sys.executable, "-m", "app.reindex"], cwd=REPO, env=env))


def build_parser() -> argparse.ArgumentParser:
    """The command line; tests/integration/test_printed_commands.py parses every command the project prints."""
    parser = argparse.ArgumentParser(prog=stack_command(), description="refstack's private service stack")
    parser.add_argument("--state", type=Path, help="state file of the stack to act on (default: the `make up` one)")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start everything in the foreground (Ctrl-C stops all)")
    up.add_argument("--free-ports", action="store_true", help="free ports instead of the fixed ones (beside `make up`)")
    up.add_argument(
        "--through-pgbouncer",
        action="store_true",
        help="the app reaches the primary through PgBouncer in transaction mode (notes/db_scaling.md, Pooling)",
    )
    commands.add_parser("status", help="show every service, its PIDs and URL")
    commands.add_parser("down", help="stop the stack started with `up`")
    commands.add_parser("reindex", help="rebuild the Elasticsearch index through its alias, with no downtime")
    fault = commands.add_parser("fault", help="break a running service: fault SERVICE VERB [MS]")
    fault.add_argument("service")
    fault.add_argument("verb")
    fault.add_argument("arg", nargs="?")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "up":
            command_up(args.free_ports, args.through_pgbouncer)
        elif args.command == "status":
            command_status(args.state)
        elif args.command == "down":
            command_down(args.state)
        elif args.command == "reindex":
            command_reindex(args.state)
        else:
            check_fault(args.service, args.verb, args.arg)
            apply_fault(running_stack(args.state), args.service, args.verb, args.arg)
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
