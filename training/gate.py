"""The registry gate: every run's best model becomes a challenger; it takes the champion alias only if
it beats the current champion, scored on the same held-out inputs, by train.promotion_margin."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from training import tracking
from training.classifiers import TrainConfig


@dataclass
class GateDecision:
    registry_model: str
    challenger_version: str
    challenger: str
    challenger_macro_f1: float
    margin: float
    decision: str  # promoted | kept_champion
    reason: str
    champion_version: str | None = None
    champion_macro_f1: float | None = None
    champion_scored: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def gate(
    config: TrainConfig,
    model_uri: str,
    name: str,
    macro_f1: float,
    tags: dict[str, str],
    score_champion: Callable[[Any], tuple[float, str]],
) -> GateDecision:
    """Register `model_uri` as a challenger and decide. `score_champion(version)` gives the champion's
    macro-F1 on this run's held-out set and how it was obtained (the caller has the inputs).

    The champion is scored before anything is registered (seconds, for a model that reads text), so that
    registering and promoting follow one another: Ctrl-C while the champion was scored used to leave a
    registered version that the gate never judged."""
    registry, margin = config.registry_model, config.promotion_margin
    current = tracking.champion(registry)
    scored = score_champion(current) if current is not None else None
    version = tracking.register_challenger(
        model_uri, registry, {**tags, "classifier": name, "heldout_macro_f1": f"{macro_f1:.6f}"}
    )
    base = {
        "registry_model": registry,
        "challenger_version": str(version.version),
        "challenger": name,
        "challenger_macro_f1": macro_f1,
        "margin": margin,
    }
    if current is None or scored is None:
        tracking.promote(registry, version.version)
        return GateDecision(**base, decision="promoted", reason="no champion yet")
    champion_f1, how = scored
    champion = {"champion_version": str(current.version), "champion_macro_f1": champion_f1, "champion_scored": how}
    if macro_f1 > champion_f1 + margin:
        tracking.promote(registry, version.version)
        return GateDecision(**base, **champion, decision="promoted", reason=f"beats champion by more than {margin}")
    return GateDecision(
        **base, **champion, decision="kept_champion", reason=f"does not beat champion by more than {margin}"
    )


@dataclass
class Challenge:
    """What the loop's gate weighs: the challenger against the champion on the batch's recent labelled
    documents (a difference with a paired-bootstrap interval) and on the fixed held-out set."""

    recent_documents: int
    recent_difference: float  # challenger minus champion macro-F1 on recent labelled documents
    recent_accuracy: float  # challenger minus champion accuracy on them, with
    recent_low: float  # its 90% paired-bootstrap interval (the low end: a one-sided 95% bound)
    recent_high: float
    heldout_challenger: float
    heldout_champion: float


def judge(challenge: Challenge, margin: float, tolerance: float) -> tuple[bool, str]:
    """Promote only if the challenger wins on recent labelled data by the margin, with the interval's low
    end above zero, and does not regress on the held-out set beyond the tolerance."""
    c = challenge
    if c.recent_documents == 0:
        return False, "no recent labelled documents kept aside to judge on"
    if c.recent_difference <= margin:
        return False, f"recent macro-F1 {c.recent_difference:+.3f} vs champion, not above margin {margin}"
    if c.recent_low <= 0:
        return False, (
            f"recent macro-F1 {c.recent_difference:+.3f}, but the accuracy gain {c.recent_accuracy:+.3f} has "
            f"[{c.recent_low:+.3f}, {c.recent_high:+.3f}] (90%) including 0"
        )
    drop = c.heldout_champion - c.heldout_challenger
    if drop > tolerance:
        return False, f"held-out macro-F1 drops {drop:.3f} (> train.heldout_tolerance {tolerance})"
    interval = f"accuracy {c.recent_accuracy:+.3f} [{c.recent_low:+.3f}, {c.recent_high:+.3f}]"
    return True, f"recent macro-F1 {c.recent_difference:+.3f}, {interval}, held-out drop {drop:+.3f}"


def challenge_gate(
    config: TrainConfig, model_uri: str, name: str, macro_f1: float, tags: dict[str, str], challenge: Challenge
) -> GateDecision:
    """The loop's gate: register the challenger, then promote it only if `judge` says it wins."""
    registry = config.registry_model
    current = tracking.champion(registry)
    before = {"champion_before": str(current.version)} if current else {}  # what a rerun after a kill reports
    version = tracking.register_challenger(
        model_uri, registry, {**tags, **before, "classifier": name, "heldout_macro_f1": f"{macro_f1:.6f}"}
    )
    wins, reason = judge(challenge, config.promotion_margin, config.heldout_tolerance)
    if wins:
        tracking.promote(registry, version.version)
    decision = GateDecision(
        registry_model=registry,
        challenger_version=str(version.version),
        challenger=name,
        challenger_macro_f1=macro_f1,
        margin=config.promotion_margin,
        decision="promoted" if wins else "rejected",
        reason=reason,
        champion_version=str(current.version) if current else None,
        champion_macro_f1=challenge.heldout_champion,
        champion_scored="rescored on this held-out set",
    )
    tracking.set_model_version_tags(registry, str(version.version), {"gate": decision.decision, "gate_reason": reason})
    return decision
