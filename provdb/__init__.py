"""ProvDB / ModelHub: lifecycle management for deep-learning models.

The library API: :class:`Repository` (what ``dlv`` runs on) and :func:`start_run` (the SDK a
training script uses).
"""

from provdb.errors import ProvDBError
from provdb.repository import Repository
from provdb.tracking import ActiveRun, start_run

__all__ = ["ActiveRun", "ProvDBError", "Repository", "start_run"]
__version__ = "0.1.0"
