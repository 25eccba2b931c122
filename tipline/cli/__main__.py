"""`python -m tipline.cli`: the same as the `tipline` command."""

from tipline.cli import main

main()
