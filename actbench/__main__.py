"""Entry point for `python -m actbench`."""

from actbench.cli import main

main()
