"""``python -m provdb.cli``: the dlv command line."""

from provdb.cli import main

main()
