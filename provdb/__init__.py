"""ProvDB / ModelHub: lifecycle management for deep-learning models."""

from provdb.errors import ProvDBError

__all__ = ["ProvDBError"]
__version__ = "0.1.0"
