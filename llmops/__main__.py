"""Entry point for ``python -m llmops``; the console script calls the same main."""

from llmops.cli.main import main

main()
