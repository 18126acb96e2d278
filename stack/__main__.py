"""Entry point for ``python -m stack``; see stack/cli.py and notes/docker.md."""

from stack.cli import main

main()
