"""``python -m touchflow``: the command line."""

from touchflow.entrypoints.cli import main

main()
