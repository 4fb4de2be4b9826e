"""Regenerate fixtures/cypher_pairs.json from the DQL column (review the diff before keeping).

Run: ``python tests/dql/make_fixtures.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import dql

HERE = Path(__file__).parent
PAIRS = HERE / "fixtures" / "cypher_pairs.json"


def expected(text: str, dialect: str) -> dict[str, object]:
    try:
        compiled = dql.compile(text, dialect=dialect)
    except dql.DQLError as error:
        return {"error": type(error).__name__, "code": error.code}
    return {"cypher": compiled.cypher.splitlines(), "params": compiled.params}


def main() -> None:
    cases = json.loads(PAIRS.read_text())
    for case in cases:
        for dialect in ("neo4j", "ladybug"):
            case[dialect] = expected(case["dql"], dialect)
    PAIRS.write_text(json.dumps(cases, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
