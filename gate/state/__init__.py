"""State that replicas of gate must share: used assertion ids, revocations, rate limits."""

from gate.state.base import SharedState
from gate.state.memory import MemoryState

__all__ = ["MemoryState", "SharedState"]
