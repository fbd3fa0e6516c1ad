"""The YAML trace language: parse, execute step by step, diagnose, score."""

from .checker import Report, check
from .diagnostics import CODES, ERROR, WARNING, Diagnostic
from .executor import FAILED, RAN, SKIPPED, PartEnd, StepRecord, Write, as_number, execute, fmt
from .language import COMPOSITION, EXPERT_OPS, EXPERTS, OPS, expert_label
from .parser import Parsed, Part, Step, Trace, parse
from .reward import OUTCOMES, RewardWeights, answers_match, expected_number, outcome, reward

__all__ = [
    "CODES", "COMPOSITION", "ERROR", "EXPERTS", "EXPERT_OPS", "FAILED", "OPS", "OUTCOMES", "RAN", "SKIPPED",
    "WARNING", "Diagnostic", "Parsed", "Part", "PartEnd", "Report", "RewardWeights", "Step", "StepRecord",
    "Trace", "Write", "answers_match", "as_number", "check", "execute", "expected_number", "expert_label", "fmt",
    "outcome", "parse", "reward",
]
