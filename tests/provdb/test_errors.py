"""One error hierarchy, one code vocabulary, each code mapped to one HTTP and one exit status."""

from __future__ import annotations

import inspect

import pytest

import dql
import storage
from provdb import errors
from provdb.errors import CODES, ProvDBError, exit_status, from_dql, from_storage, http_status


def error_classes() -> list[type[ProvDBError]]:
    return [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, ProvDBError)]


def test_every_error_class_has_a_known_code() -> None:
    classes = error_classes()
    assert len(classes) >= 14
    for cls in classes:
        assert cls.code in CODES, cls


def test_every_code_maps_to_one_http_status_and_one_exit_status() -> None:
    expected_http = {
        "invalid_input": 400, "syntax_error": 400, "unauthorized": 401, "forbidden": 403,
        "not_found": 404, "already_exists": 409, "conflict": 409, "too_large": 413,
        "rate_limited": 429, "corrupt": 500, "internal": 500, "unavailable": 503, "locked": 503,
        "training_diverged": 422, "disk_full": 507,
    }  # fmt: skip
    assert {name: http_status(name) for name in CODES} == expected_http
    for name in CODES:
        assert exit_status(name) in (1, 69, 75, 77)  # never click's 2 (usage) or 0
    assert exit_status("unavailable") == 69
    assert http_status("no-such-code") == 500
    with pytest.raises(ValueError, match="unknown error code"):
        ProvDBError("x", code="NOT_FOUND")  # the old spelling is gone


def test_codes_are_one_spelling() -> None:
    assert all(name == name.lower() and " " not in name for name in CODES)


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (storage.NotFoundError("no snapshot 'x'"), "not_found"),
        (storage.CorruptionError("chunk c/ab: CRC mismatch"), "corrupt"),
        (storage.InvalidInputError("bad"), "invalid_input"),
        (storage.ConflictError("busy"), "conflict"),
        (storage.StorageError("other"), "internal"),
    ],
)
def test_storage_errors_translate_once(exc: storage.StorageError, code: str) -> None:
    translated = from_storage(exc, "snapshot v/0")
    assert translated.code == code
    assert translated.message.startswith("snapshot v/0: ")


def test_dql_errors_keep_their_position() -> None:
    with pytest.raises(dql.DQLError) as info:
        dql.compile("select m\nwhere m.nmae = 1")
    translated = from_dql(info.value)
    assert translated.code == "syntax_error"
    assert (translated.details["line"], translated.details["col"]) == (2, 9)
    assert translated.to_dict()["code"] == "syntax_error"


def test_the_cli_exits_with_the_codes_exit_status(dlv, tmp_path) -> None:
    missing = dlv("--repo", str(tmp_path), "list", ok=False)
    assert (missing.exit_code, missing.output.count("\n")) == (1, 1)
    assert missing.output.startswith("error: not a dlv repository")
    dead = dlv("init", str(tmp_path), "--graph", "bolt://127.0.0.1:1", ok=False)
    assert dead.exit_code == 69
