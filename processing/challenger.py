"""The loop's challenger: a model retrained on the champion's training version plus a batch's new labels,
registered and judged against the champion by training.gate.challenge_gate on the share of those labels it
never trained on.

Wiring beside processing/loop.py: it may import every stage package.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.metrics import paired_difference, score
from processing.classify import DocumentClassifier
from processing.config import Config
from processing.features import FeatureStore, Member
from processing.progress import Stopwatch, log
from processing.run_training import Inputs, RunContext, model_input, train_and_report
from training.classifiers import FUSED_INPUT, TEXT_INPUT
from training.gate import Challenge, GateDecision, challenge_gate

RECENT_SHARE = 0.3  # of newly labelled documents kept aside to judge a challenger on (never trained on)


def retrain(
    config: Config,
    store: FeatureStore,
    champion: DocumentClassifier,
    champion_entry: Any,
    new_labels: dict[str, str],
    batch_id: str,
    clock: Stopwatch,
    workspace: Path,
    reason: str,
    run_id: str,
) -> GateDecision:
    """A challenger on the champion's training version plus the new labels (a share kept aside to judge
    it on), registered and gated by training.gate.challenge_gate. `run_id`: the cycle's run in the workspace."""
    base = store.version(champion.feature_version)
    old = store.version_members(champion.feature_version)
    recent = {h: y for h, y in new_labels.items() if kept_aside(h)}
    learn = [Member(h, y, "train") for h, y in new_labels.items() if h not in recent]
    members = old + learn
    version_id, created = store.commit_version(
        members,
        f"cycle:{batch_id}",
        base["extractor"],
        base["embedder"],
        {"parent": champion.feature_version, "batch": batch_id, "new_labels": len(learn)},
    )
    log(
        f"retrain ({reason}): {version_id} = {champion.feature_version} + {len(learn)} new labels; "
        f"{len(recent)} kept aside"
    )
    recent_hashes = sorted(recent)
    x_recent = store.load_vectors(recent_hashes, base["embedder"], base["extractor"]) if recent_hashes else None
    y_recent = np.asarray([recent[h] for h in recent_hashes])

    def decide(
        name: str, model: Any, uri: str, heldout_f1: float, tags: dict[str, str], inputs: Inputs
    ) -> GateDecision:
        champion_heldout = _macro_f1(inputs.y_heldout, champion.classifier.predict(inputs.heldout(champion.name)))
        if x_recent is not None and len(y_recent):
            d = paired_difference(
                y_recent,
                model.predict(model_input(name, x_recent, store, recent_hashes, base["extractor"])),
                champion.classifier.predict(
                    model_input(champion.name, x_recent, store, recent_hashes, base["extractor"])
                ),
            )
            recent = (d["macro_f1"], d["accuracy"], d["accuracy_low"], d["accuracy_high"])
        else:
            recent = (float("nan"),) * 4
        challenge = Challenge(len(y_recent), *recent, heldout_f1, champion_heldout)
        return challenge_gate(config.train, uri, name, heldout_f1, {**tags, "cycle_reason": reason}, challenge)

    state = RunContext(
        run_id=f"retrain-{batch_id}",
        tier="cycle",
        source=f"cycle:{batch_id}",
        workspace=workspace,
        clock=clock,
    )
    # docscale_run names the workspace's run (the cycle), so that a later run can tell these MLflow runs
    # are over if the cycle is killed (tracking.end_abandoned_runs).
    state.tags = {"cycle_batch": batch_id, "parent_feature_version": champion.feature_version, "docscale_run": run_id}
    # An embedding champion is challenged by embedding classifiers (fast to retrain, as the scenario expects);
    # one that reads text by the configured classifiers, its own kind among them.
    if champion.needs_text:
        challengers = list(dict.fromkeys([*config.train.classifiers, champion.name]))
    else:
        challengers = [c for c in config.train.classifiers if c not in TEXT_INPUT | FUSED_INPUT] or ["logreg"]
    config = replace(config, train=replace(config.train, classifiers=challengers))
    summary = train_and_report(config, store, state, version_id, created, decide=decide)
    registry = summary["registry"]
    return GateDecision(**{k: registry.get(k) for k in GateDecision.__dataclass_fields__})


def _macro_f1(y: np.ndarray, predicted: np.ndarray) -> float:
    return score(y, predicted)["macro_f1"]


def kept_aside(content_hash: str) -> bool:
    """A stable share of newly labelled documents judges challengers and is never trained on."""
    return int(content_hash[:8], 16) / 0xFFFFFFFF < RECENT_SHARE
