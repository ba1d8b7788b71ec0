"""Attacks that try to bring forgotten knowledge back, and the removed-vs-suppressed verdict.

    from obliviate.attacks import run_attacks, judge
    verdict = judge(run_attacks(candidate, bench, cfg.attacks), run_attacks(gold, bench, cfg.attacks), cfg.verdict)
    verdict["verdict"]  # "removed" | "suppressed" | "not forgotten", with verdict["deciding"] and the evidence
"""

from obliviate.attacks import in_context, probe, prompts, weights  # noqa: F401  (registers the attacks)
from obliviate.attacks.base import ATTACKS, AttackSkipped, Recovery
from obliviate.attacks.verdict import judge, run_attacks

__all__ = ["ATTACKS", "AttackSkipped", "Recovery", "judge", "run_attacks"]
