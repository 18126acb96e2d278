"""Every command the project prints works as printed: the README's shell blocks, what ``make up`` prints, the
landing page's fault commands, ``--help`` and the CLI's error hints, each pasted into a fresh shell in the
repository, with nothing activated.

Each command's every program must resolve (a Makefile target, a file in the repository, or a program on PATH; a
``-m`` module must import, and ``-m stack`` arguments must parse and name a real fault); the cheap, reversible
faults are then run against the test stack through the CLI exactly as printed (plus ``--state``), so the README
and the CLI cannot drift apart again. See notes/fault_tolerance.md, "Breaking things on purpose".
"""

from __future__ import annotations

import contextlib
import functools
import io
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from app.api.entry_point import LANDING_PAGE
from stack.cli import build_parser, check_fault, print_welcome
from stack.native.stack import NativeStack
from tests.fault_injector import FaultInjector
from tests.polling import wait_for
from tests.probes import ready

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
BASH_BLOCK = re.compile(r"^```bash\n(.*?)^```", re.MULTILINE | re.DOTALL)
SUBSTITUTION = re.compile(r"\$\(([^()]*)\)")
PRE_BLOCK = re.compile(r"<pre>\n(.*?)</pre>", re.DOTALL)
HINT = re.compile(r"`((?:make|\.venv/bin/python) [^`]*)`")
MAKE_TARGET = re.compile(r"^([a-z][a-z-]*):", re.MULTILINE)
INTERPRETER = ".venv/bin/python"
PYTHON = re.compile(r"(?:.*/)?python3?(?:\.\d+)?")
PUBLIC_EDGE, DEFAULT_PASSWORD = "http://127.0.0.1:8080", "refstack-demo"
# README faults cheap to run on the shared test stack and undone by the next line; the rest (a frozen primary,
# a broker restart, failover) are only proved to resolve: other tests break those for real.
RUN_AGAINST_TEST_STACK = {
    ("redis", "pause"),
    ("redis", "resume"),
    ("app", "slow"),
    ("app", "heal"),
    ("replica", "lag"),
    ("replica", "unlag"),
}


def shell_lines(block: str) -> list[str]:
    """One entry per command line of a shell block, ``\\``-continued lines joined."""
    return [line.strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def readme_commands() -> list[str]:
    return [line for block in BASH_BLOCK.findall(README.read_text()) for line in shell_lines(block)]


def landing_page_commands() -> list[str]:
    return [line for block in PRE_BLOCK.findall(LANDING_PAGE.read_text()) for line in shell_lines(block)]


def welcome(stack: NativeStack) -> str:
    """What ``make up`` prints once the stack is up, for this stack."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        print_welcome(stack)
    return out.getvalue()


def welcome_commands(printed: str) -> list[str]:
    """The indented lines after ``try:``: each a command to paste."""
    after_try = printed.split("\ntry:\n", 1)[1]
    return [line.strip() for line in after_try.splitlines() if line.startswith("  ")]


def simple_commands(line: str) -> list[list[str]]:
    """The words of each simple command on a line (pipelines, ``$( )`` and ``;`` split), comments dropped."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token and all(char in "();<>|&" for char in token):
            commands.append([])
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", token) and not commands[-1]:
            continue  # NAME=value before a command (or alone) is an assignment, not a program
        else:
            commands[-1].append(token)
            for inner in SUBSTITUTION.findall(token):  # "$(uuidgen)" inside quotes stays one token
                commands.extend(simple_commands(inner))
    return [words for words in commands if words]


def why_not_runnable(words: list[str]) -> str | None:
    """None when the command resolves as a fresh shell in the repository would run it; else the reason."""
    program, *arguments = words
    if program == "make":
        targets = set(MAKE_TARGET.findall((REPO / "Makefile").read_text()))
        unknown = [target for target in arguments if not target.startswith("-") and target not in targets]
        return f"no Makefile target {unknown}" if unknown else None
    if program.startswith("$"):
        return None  # an expansion of a variable set on an earlier line
    if "/" in program and not (REPO / program).is_file():
        return f"{program} is no file in the repository"
    if "/" not in program and shutil.which(program) is None:
        return f"{program} is not on PATH"
    if PYTHON.fullmatch(program) and arguments[:1] == ["-m"]:
        return why_module_not_runnable(program, arguments[1], arguments[2:])
    return None


@functools.cache
def cannot_import(program: str, module: str) -> str | None:
    """Whether that interpreter, started in the repository, imports the module (a bare `python` may lack our
    packages: the bug this test exists for)."""
    imported = subprocess.run(
        [program, "-c", "import importlib, sys; importlib.import_module(sys.argv[1])", module],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return imported.stderr.strip().splitlines()[-1] if imported.returncode else None


def why_module_not_runnable(program: str, module: str, arguments: list[str]) -> str | None:
    failure = cannot_import(program, "stack.cli" if module == "stack" else module)
    if failure is not None:
        return f"{program} -m {module}: {failure}"
    if module != "stack":
        return None
    try:
        parsed = build_parser().parse_args(arguments)
        if parsed.command == "fault":
            check_fault(parsed.service, parsed.verb, parsed.arg)
    except SystemExit:
        return f"`-m stack {shlex.join(arguments)}` is a usage error"
    return None


def unrunnable(lines: list[str]) -> dict[str, str]:
    problems = {}
    for line in lines:
        for words in simple_commands(line):
            reason = why_not_runnable(words)
            if reason is not None:
                problems[line] = reason
    return problems


def test_the_checker_refuses_what_a_fresh_shell_could_not_run() -> None:
    refused = [
        "/usr/bin/python3 -m stack fault redis pause",  # Debian's Python: none of our packages
        "make fault redis pause",
        ".venv/bin/python -m stack fault redis explode",
        ".venv/bin/python -m no_such_module",
        "curl -s http://127.0.0.1:8080/ | no-such-program",
        'E=x; curl -s -H "Idempotency-Key: $(no-such-uuidgen)" $E',
    ]
    assert list(unrunnable(refused)) == refused


def test_every_readme_command_resolves() -> None:
    commands = readme_commands()
    assert len(commands) >= 20  # the blocks were found
    assert unrunnable(commands) == {}


def test_every_landing_page_command_and_cli_hint_resolves() -> None:
    hints = HINT.findall((REPO / "stack" / "cli.py").read_text())
    assert {"make up", "make down"} <= set(hints)
    assert unrunnable([*landing_page_commands(), *hints]) == {}


@pytest.mark.parametrize("module", ["stack", "simulators.payments"])
def test_help_names_the_interpreter_to_paste(module: str) -> None:
    shown = subprocess.run(
        [INTERPRETER, "-m", module, "--help"], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert shown.startswith(f"usage: {INTERPRETER} -m {module} ")


def test_what_make_up_prints_resolves_and_is_what_the_readme_shows(
    stack: NativeStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REFSTACK_DEMO_PASSWORD", raising=False)
    printed = welcome(stack)
    commands = welcome_commands(printed)
    assert len(commands) == 5
    assert unrunnable(commands) == {}
    readme = README.read_text()
    for command in commands:
        assert command.replace(stack.nginx.url, PUBLIC_EDGE) in readme, command


def run_as_printed(command: str, stack: NativeStack) -> subprocess.CompletedProcess[str]:
    """The command exactly as printed, pointed at the test stack's state file instead of `make up`'s."""
    words = shlex.split(command, comments=True)
    assert words[:3] == [INTERPRETER, "-m", "stack"], command
    return subprocess.run(
        [*words[:3], "--state", str(stack.state_path), *words[3:]],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.fault
def test_the_cheap_readme_faults_run_against_the_test_stack(stack: NativeStack, fault: FaultInjector) -> None:
    faults = [line for line in readme_commands() if line.startswith(f"{INTERPRETER} -m stack fault ")]
    cheap = [line for line in faults if tuple(shlex.split(line, comments=True)[4:6]) in RUN_AGAINST_TEST_STACK]
    assert len(cheap) == len(RUN_AGAINST_TEST_STACK)  # each pair is in the README, in do-then-undo order
    for line in cheap:
        service, verb, *arg = shlex.split(line, comments=True)[4:]
        fault.touched.append(service)  # restored by the fixture even if a line below fails
        result = run_as_printed(line, stack)
        assert (result.returncode, result.stdout.strip()) == (0, f"{service}: {shlex.join([verb, *arg])} done"), (
            line,
            result.stderr,
        )
    wait_for(lambda: ready(stack)[1]["status"] == "ok", timeout_s=30, what="ready after the README's faults")
