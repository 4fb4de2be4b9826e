"""What the hub accepts as names: owners, model names, tags, version ids and chunk digests.

Everything a client sends that becomes a key, a path segment or a graph property passes one
of these checks first, so ``..``, ``/``, NUL, control characters and over-long text never get
past the request boundary.
"""

from __future__ import annotations

import re

from provdb.errors import InvalidInput

#: Users, organisations and model names: start with a letter or digit, then letters, digits,
#: ``_``, ``-`` and ``.``; never ``..``, never ending in ``.``.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
MAX_OWNER = 64
MAX_NAME = 96
MAX_TAG = 64
MAX_TAGS = 32
_VERSION_RE = re.compile(r"[0-9a-f]{32}")
_DIGEST_RE = re.compile(r"[0-9a-f]{40}")


def check_name(value: object, what: str = "name", limit: int = MAX_NAME) -> str:
    """An owner or model name, validated."""
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{what} must be a non-empty string")
    shown = value[:40].encode("unicode_escape").decode()
    if (
        len(value) > limit
        or not _NAME_RE.fullmatch(value)
        or ".." in value
        or value.endswith(".")
        or value.lower().endswith((".git", ".json"))
    ):
        raise InvalidInput(
            f"invalid {what} {shown!r}: use at most {limit} letters, digits, '_', '-' and '.' "
            "(starting with a letter or digit, no '..')"
        )
    return value


def check_owner(value: object) -> str:
    """A user or organisation name."""
    return check_name(value, "owner", MAX_OWNER)


def parse_repo(text: str) -> tuple[str, str, str | None]:
    """``OWNER/NAME[@VERSION]`` → ``(owner, name, version or None)``."""
    ref: str | None = None
    if "@" in text:
        text, ref = text.split("@", 1)
        if not ref:
            raise InvalidInput("empty version after '@'")
        check_ref(ref)
    owner, sep, name = text.partition("/")
    if not sep:
        raise InvalidInput(f"expected OWNER/NAME, got {text[:80]!r}")
    return check_owner(owner), check_name(name, "model name"), ref


def check_ref(value: object) -> str:
    """A version reference on the hub: a version id or a prefix of ≥ 4 hex digits, or
    ``latest``."""
    if not isinstance(value, str) or not (
        value == "latest" or re.fullmatch(r"[0-9a-f]{4,32}", value)
    ):
        raise InvalidInput(f"invalid version {str(value)[:40]!r}: a hex id (prefix) or 'latest'")
    return value


def check_version_id(value: object) -> str:
    """A full version id (32 hex digits)."""
    if not isinstance(value, str) or not _VERSION_RE.fullmatch(value):
        raise InvalidInput(f"invalid version id {str(value)[:40]!r}: expected 32 hex digits")
    return value


def check_digest(value: object) -> str:
    """A chunk digest (40 lower-case hex digits)."""
    if not isinstance(value, str) or not _DIGEST_RE.fullmatch(value):
        raise InvalidInput(f"invalid chunk digest {str(value)[:48]!r}: expected 40 hex digits")
    return value


def check_tags(values: object) -> list[str]:
    """Tags: at most 32, each 1–64 printable characters without control characters."""
    if values is None:
        return []
    if not isinstance(values, list | tuple):
        raise InvalidInput("tags must be a list of strings")
    if len(values) > MAX_TAGS:
        raise InvalidInput(f"at most {MAX_TAGS} tags")
    out = []
    for tag in values:
        if (
            not isinstance(tag, str)
            or not tag.strip()
            or len(tag) > MAX_TAG
            or any(ord(c) < 32 or ord(c) == 127 for c in tag)
        ):
            raise InvalidInput(f"invalid tag {str(tag)[:40]!r}")
        out.append(tag.strip())
    return sorted(set(out))
