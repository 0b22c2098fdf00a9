"""When to retrain: the loop's triggers as one pure function of what a batch showed."""

from __future__ import annotations

from dataclasses import dataclass

# The decision words a cycle records (stable: dashboards and scripts match on them).
DECISIONS = ("trained_first", "no_drift", "drift_no_labels", "promoted", "rejected")


@dataclass(frozen=True)
class Evidence:
    drift_detected: bool
    drift_streak: int  # batches in a row with drift, this one included
    new_labels: int  # labelled documents the champion was not trained on
    labelled_macro_f1: float | None  # the champion's, on this batch's labelled documents
    champion_macro_f1: float | None  # the champion's recorded held-out figure
    on_demand: bool = False


def retrain_reason(evidence: Evidence, min_labels: int, label_count: int, f1_drop: float, streak: int) -> str | None:
    """Every trigger that fires, joined, or None. Drift alone never retrains: without new labels a
    challenger would learn nothing the champion did not (the cycle then records drift_no_labels)."""
    e, fired = evidence, []
    if e.on_demand:
        fired.append("on demand")
    if e.new_labels >= label_count:
        fired.append(f"{e.new_labels} new labelled documents (>= {label_count})")
    enough = e.new_labels >= min_labels
    if enough and e.labelled_macro_f1 is not None and e.champion_macro_f1 is not None:
        drop = e.champion_macro_f1 - e.labelled_macro_f1
        if drop > f1_drop:
            fired.append(f"labelled macro-F1 {e.labelled_macro_f1:.3f}, {drop:.3f} below the champion's")
    if enough and (e.drift_detected or e.drift_streak >= streak):
        fired.append(f"drift with {e.new_labels} new labelled documents")
    return "; ".join(fired) or None
