"""Policy expressions in CEL, compiled when the config loads and evaluated per request."""

from gate.policy.expression import (
    Policy,
    PolicyEvaluationError,
    PolicySyntaxError,
    compile_policy,
    new_context,
)

__all__ = ["Policy", "PolicyEvaluationError", "PolicySyntaxError", "compile_policy", "new_context"]
