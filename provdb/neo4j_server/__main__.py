"""``python -m provdb.neo4j_server {fetch,start,stop,status}``: the same commands as
``dlv neo4j`` (see :mod:`provdb.cli.neo4j`), for scripts that run before ``dlv`` is on PATH."""

from __future__ import annotations

import sys

from provdb.cli.neo4j import main

if __name__ == "__main__":
    sys.exit(main())
