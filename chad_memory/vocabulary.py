"""The fixed words the schema allows: statuses, roles, score kinds, and how a run's status
may move.

Each set is written once, as a `Literal` the input models validate against; the tuples
the CHECK constraints are built from and the transition table are derived from it, so a
new status is one edit here (plus the migration that widens the constraint).
"""

from __future__ import annotations

from typing import Literal, get_args

RunStatus = Literal["pending", "running", "succeeded", "failed", "cancelled"]
StepStatus = Literal["pending", "running", "succeeded", "failed", "cancelled", "skipped"]
MessageRole = Literal["user", "assistant", "system", "tool"]
# What a score judges, what kind of value it holds, and who gave it.
ScoreTarget = Literal["run", "step", "llm_call", "thread"]
ScoreType = Literal["numeric", "categorical", "boolean"]
ScoreSource = Literal["human", "api", "evaluator"]

RUN_STATUSES: tuple[str, ...] = get_args(RunStatus)
STEP_STATUSES: tuple[str, ...] = get_args(StepStatus)
MESSAGE_ROLES: tuple[str, ...] = get_args(MessageRole)
SCORE_TARGETS: tuple[str, ...] = get_args(ScoreTarget)
SCORE_TYPES: tuple[str, ...] = get_args(ScoreType)
SCORE_SOURCES: tuple[str, ...] = get_args(ScoreSource)

TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
# A run that may still change: not yet in a terminal status.
LIVE: tuple[str, ...] = tuple(s for s in RUN_STATUSES if s not in TERMINAL)
# Which status a run may move to from each status; terminal states are final.
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"pending", "running", *TERMINAL}),
    "running": frozenset({"running", *TERMINAL}),
    **{s: frozenset({s}) for s in TERMINAL},
}
assert set(TRANSITIONS) == set(RUN_STATUSES), "every run status needs its transitions"
assert set(RUN_STATUSES) <= set(STEP_STATUSES), "a step can be in any state a run can"
