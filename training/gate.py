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
    macro-F1 on this run's held-out set and how it was obtained (the caller has the inputs)."""
    registry, margin = config.registry_model, config.promotion_margin
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
    current = tracking.champion(registry)
    if current is None:
        tracking.promote(registry, version.version)
        return GateDecision(**base, decision="promoted", reason="no champion yet")
    champion_f1, how = score_champion(current)
    champion = {"champion_version": str(current.version), "champion_macro_f1": champion_f1, "champion_scored": how}
    if macro_f1 > champion_f1 + margin:
        tracking.promote(registry, version.version)
        return GateDecision(**base, **champion, decision="promoted", reason=f"beats champion by more than {margin}")
    return GateDecision(
        **base, **champion, decision="kept_champion", reason=f"does not beat champion by more than {margin}"
    )
