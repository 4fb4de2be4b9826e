"""ProvDB / ModelHub: lifecycle management for deep-learning models.

The library API: :class:`Repository` (what ``dlv`` runs on) and :func:`start_run` (the SDK a
training script uses; imported on first use, so ``dlv`` commands that do not record runs never
load it and the model-format libraries behind it).
"""

from typing import TYPE_CHECKING, Any

from provdb.errors import ProvDBError
from provdb.repository import Repository

if TYPE_CHECKING:
    from provdb.tracking import ActiveRun, start_run

__all__ = ["ActiveRun", "ProvDBError", "Repository", "start_run"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``provdb.start_run`` and ``provdb.ActiveRun``, imported when first asked for."""
    if name in ("ActiveRun", "start_run"):
        from provdb import tracking

        return getattr(tracking, name)
    raise AttributeError(f"module 'provdb' has no attribute {name!r}")
