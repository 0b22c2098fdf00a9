"""Run the whole chain: corpus -> extract (Ray) -> embed (Ray actors) -> DuckDB -> train -> MLflow -> summary.

    python -m processing.run --tier 50                          # laptop, CPU, ./workspace
    python -m processing.run --tier 1k --summary out/1k.json    # also write the summary as JSON
    python -m processing.run --tier 50 --set embed.batch_size=32 --set train.classifiers=logreg
    python -m processing.run --tier 50 --feature-version fv-1234abcd   # retrain on an earlier feature version
    python -m processing.run --tier ladder --ladder-tiers 50,1k,15k    # each tier in turn, then the comparison
    python -m processing.run --input ~/pdfs                    # your own PDFs: ~/pdfs/<label>/*.pdf
    python -m processing.run --input s3://bucket/docs --labels s3://bucket/labels.csv
    python -m processing.run --tier 15k --device cuda --ray-address auto   # on a Ray cluster with a GPU

Reruns reuse everything already done in the workspace (generated PDFs, extractions, embeddings).
This module is the conductor: the only one that imports all four stage packages; nothing imports it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from processing.config import TIERS, Config, ConfigError, load_config


class Stopwatch:
    """Seconds per named stage, in the order the stages ran."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 3)


@dataclass
class RunState:
    """What one pipeline run has learned so far; becomes the summary."""

    run_id: str
    tier: str
    workspace: Path
    clock: Stopwatch = field(default_factory=Stopwatch)
    work: dict[str, int] = field(default_factory=lambda: {"generated": 0, "extracted": 0, "embedded": 0})
    source: str = ""
    device: str = "cpu"
    cluster: dict[str, Any] = field(default_factory=dict)
    tasks_per_node: dict[str, int] = field(default_factory=dict)
    embedder: str = ""
    extractor: str = ""


def run_pipeline(
    config: Config,
    tier: str,
    workspace: Path,
    ray_address: str | None = None,
    feature_version: str | None = None,
    input_dir: str | None = None,
    labels_csv: str | None = None,
) -> dict[str, Any]:
    """The whole chain for a tier of the generated corpus, or for the user's folder when input_dir is given."""
    from processing.features import FeatureStore

    workspace = Path(workspace).resolve()
    workspace.mkdir(parents=True, exist_ok=True)
    run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    state = RunState(
        run_id, "input" if input_dir else tier, workspace, source=f"input:{input_dir}" if input_dir else f"tier:{tier}"
    )
    with FeatureStore(workspace / "features.duckdb", wait_seconds=config.store.lock_wait_seconds) as store:
        store.begin_run(state.run_id, state.source, config.to_dict())
        try:
            if feature_version is None:
                version_id, created = build_features(config, store, state, ray_address, input_dir, labels_csv)
            else:
                version_id, created = store.version(feature_version)["version_id"], False
                state.device = _resolve_device(config.embed.device)
            from processing.run_training import train_and_report

            summary = train_and_report(config, store, state, version_id, created)
        except BaseException:
            store.finish_run(state.run_id, "failed", None)
            raise
        store.finish_run(state.run_id, "finished", version_id)
    return summary


def build_features(
    config: Config,
    store: Any,
    state: RunState,
    ray_address: str | None,
    input_dir: str | None = None,
    labels_csv: str | None = None,
) -> tuple[str, bool]:
    """Inputs -> extraction -> embeddings -> an immutable feature version. Returns (version id, created)."""
    from ingestion.extract import Limits, extract_files, extractor_version, lost_record
    from processing import engine
    from processing.embed import embedder_id

    clock, work = state.clock, state.work
    with clock.stage("ray_start"):
        cluster = engine.start_ray(ray_address, config.ray.num_cpus)
        state.cluster = asdict(cluster)
        engine.TASKS_PER_NODE.clear()
    _log(f"Ray: {cluster.nodes} node(s), {cluster.cpus} CPU, {cluster.gpus} GPU ({cluster.address})")

    # 1. Inputs: the user's folder, or the generated corpus (rendering only what the workspace lacks).
    with clock.stage("corpus"):
        if input_dir:
            from ingestion.sources import list_input

            inputs = list_input(input_dir, labels_csv, config.corpus.heldout_fraction)
            labels = {f.uri: (f.label, f.split) for f in inputs}
            _log(f"input: {len(labels)} files in {input_dir}, {sum(f.split == 'predict' for f in inputs)} unlabelled")
        else:
            labels = generate_corpus(config, state, engine)
    e = config.embed
    embedder = state.embedder = embedder_id(e.model, e.max_chars, e.backend, e.token_budget)
    state.device = _resolve_device(e.device)
    pool = None

    def open_pool(cpu_share: float) -> Any:
        with clock.stage("model_load"):
            opened = engine.EmbedPool(
                e.model,
                e.device,
                cpu_share=cpu_share,
                resource=e.actor_resource,
                batch_size=e.batch_size,
                max_chars=e.max_chars,
                backend=e.backend,
                token_budget=e.token_budget,
                cache_dir=state.workspace / "models",
            )
            state.device = opened.device
            params = {"max_chars": e.max_chars, "backend": e.backend, "token_budget": e.token_budget}
            store.register_embedder(embedder, e.model, params, opened.dim)
        return opened

    # Streaming: with a GPU, embed fresh extractions while later files are still being extracted, so the
    # GPU works while the CPUs extract. On CPU both would fight over the same cores (off unless asked).
    if e.stream == "on" or (e.stream == "auto" and cluster.gpus > 0):
        pool = open_pool(cpu_share=0.5)
    x = config.extract
    limits = Limits(x.max_pages, x.max_bytes, x.min_chars, x.timeout_s, x.fallback_on_empty)
    extractor = state.extractor = extractor_version(x.backend, x.fallback or None, limits)
    streamer = _Streamer(pool, store, (embedder, extractor), e.texts_per_call, work) if pool else None

    # 2. Extraction on Ray; cached by (content hash, extractor), committed batch by batch.
    with clock.stage("extract"):
        extract = partial(
            extract_files,
            skip_hashes=store.extracted_hashes(extractor),
            backend=x.backend,
            fallback=x.fallback or None,
            limits=limits,
        )
        batches = engine.map_batches(
            extract,
            list(labels),
            x.files_per_task,
            min_batch_size=x.min_files_per_task,
            desc="extract",
            total=len(labels),
            item_timeout_s=x.timeout_s,
            on_lost=lost_record,
        )
        for records in batches:
            store.record_files(state.run_id, extractor, records, labels)
            work["extracted"] += sum(r.extraction is not None for r in records)
            if streamer:
                streamer.add(records)
        if streamer:
            streamer.finish()
        work["duplicates"] = store.mark_duplicates(state.run_id)
    _log(f"extract: {work['extracted']} extracted, outcomes {store.outcome_counts(state.run_id)}")
    state.tasks_per_node = dict(engine.TASKS_PER_NODE)

    # 3. Embedding on a Ray actor pool; cached by (text hash, embedder). Unlabelled documents too:
    #    they get predictions at the end. After streaming, only cached extractions may be left.
    members = store.members(state.run_id)
    wanted = [m.content_hash for m in members] + [h for _, h in store.unlabelled(state.run_id)]
    todo = store.missing_embeddings(wanted, embedder, extractor)
    if todo:
        pool = pool or open_pool(cpu_share=1.0)
        with clock.stage("embed"):
            texts = store.iter_texts(store.by_length(todo, extractor), extractor)
            for keys, vectors in pool.embed(texts, e.texts_per_call, total=len(todo)):
                store.add_embeddings(keys, vectors, embedder, extractor)
                work["embedded"] += len(keys)
    if pool:
        pool.close()
    _log(f"embed: {work['embedded']} embedded on {state.device} ({len(set(wanted)) - len(todo)} cached)")

    # 4. An immutable, content-addressed feature version.
    with clock.stage("commit"):
        c = config.corpus
        from importlib.metadata import version

        params = {
            "max_chars": e.max_chars,
            "backend": e.backend,
            "token_budget": e.token_budget,
            "docscale": version("docscale"),
        }
        if not input_dir:  # what made the generated corpus is part of the features' identity
            params |= {"seed": c.seed, "bad_file_rate": c.bad_file_rate, "label_noise": c.label_noise}
        version_id, created = store.commit_version(members, state.source, extractor, embedder, params)
    _log(f"features: {version_id} ({'new' if created else 'reused'})")
    return version_id, created


class _Streamer:
    """Feeds freshly extracted texts to the embedding pool while extraction goes on."""

    def __init__(self, pool: Any, store: Any, keys: tuple[str, str], per_call: int, work: dict[str, int]) -> None:
        """keys: (embedder, extractor), the cache keys the new vectors are stored under."""
        self.pool, self.store, self.keys, self.per_call, self.work = pool, store, keys, per_call, work
        self.buffer: list[tuple[str, str]] = []
        self.seen: set[str] = set()
        work["embedded_while_extracting"] = 0

    def add(self, records: list[Any]) -> None:
        from ingestion.extract import USABLE

        fresh = {
            r.content_hash: r.extraction.text
            for r in records
            if r.extraction and r.extraction.outcome in USABLE and r.content_hash not in self.seen
        }
        self.seen.update(fresh)
        missing = self.store.missing_embeddings(list(fresh), *self.keys) if fresh else []
        self.buffer.extend((h, fresh[h]) for h in missing)
        while len(self.buffer) >= self.per_call and not self.pool.busy:
            self._submit(self.buffer[: self.per_call])
            del self.buffer[: self.per_call]
        self._collect(wait=False)

    def finish(self) -> None:
        if self.buffer:
            self._submit(self.buffer)
            self.buffer = []
        while self.pool.pending:
            self._collect(wait=True)

    def _submit(self, items: list[tuple[str, str]]) -> None:
        self.pool.submit([h for h, _ in items], [t for _, t in items])

    def _collect(self, wait: bool) -> None:
        for keys, vectors in self.pool.finished(wait=wait):
            self.store.add_embeddings(keys, vectors, *self.keys)
            self.work["embedded"] += len(keys)
            self.work["embedded_while_extracting"] += len(keys)


def generate_corpus(config: Config, state: RunState, engine: Any) -> dict[str, tuple[str | None, str]]:
    """Render the tier's missing PDFs on Ray; returns path -> (label, split) for every file of the tier."""
    from ingestion.corpus import corpus_dir, manifest, missing_entries, write_entries
    from ingestion.sources import join

    c = config.corpus
    root = corpus_dir(state.workspace, c.seed, c.root)
    entries = manifest(c.seed, c.train_size, c.heldout_size, c.bad_file_rate, c.label_noise)
    missing = missing_entries(root, entries)
    generate = partial(_write_batch, write_entries, root, c.seed)
    for counts in engine.map_batches(generate, missing, batch_size=64, desc="generate", total=len(missing)):
        state.work["generated"] += sum(counts)
    _log(f"corpus: {len(entries)} files ({state.work['generated']} generated) in {root}")
    return {join(root, e.relpath): (e.label, e.split) for e in entries}


def _write_batch(write_entries: Any, root: str, seed: int, entries: list[Any]) -> list[int]:
    return [write_entries(root, seed, entries)]


def _resolve_device(device: str) -> str:
    from processing.embed import resolve_device

    return resolve_device(device)


def _log(message: str) -> None:
    print(f"[docscale] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m processing.run", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--tier",
        default="50",
        help=f"corpus tier: {', '.join(TIERS)}, or 'ladder' for all of --ladder-tiers (default 50)",
    )
    parser.add_argument("--ladder-tiers", default=",".join(TIERS), help="tiers run by --tier ladder, in order")
    parser.add_argument(
        "--workspace",
        type=Path,
        default=Path("workspace"),
        help="where corpus, features.duckdb and mlflow.db live (default ./workspace)",
    )
    parser.add_argument("--config", type=Path, help="YAML file of overrides (same keys as configs/base.yaml)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config key, e.g. --set embed.batch_size=32 (repeatable)",
    )
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="embedding/training device")
    parser.add_argument("--ray-address", help="join this Ray cluster ('auto' inside a job); default: start locally")
    parser.add_argument("--feature-version", help="train and evaluate on this stored version (skips extraction)")
    parser.add_argument("--input", help="your own folder of PDFs (local or s3://...); labels = sub-folder names")
    parser.add_argument("--labels", help="with --input: a CSV of path,label rows instead of sub-folder names")
    parser.add_argument("--mlflow-uri", help="MLflow tracking server (http://...); default: sqlite in the workspace")
    parser.add_argument("--summary", type=Path, help="also write the run summary as JSON to this path")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = list(args.overrides) + ([f"embed.device={args.device}"] if args.device else [])
    overrides += [f"mlflow.tracking_uri={args.mlflow_uri}"] if args.mlflow_uri else []
    tiers = args.ladder_tiers.split(",") if args.tier == "ladder" else [args.tier]
    try:
        configs = {tier: load_config(tier, args.config, overrides) for tier in tiers}
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.labels and not args.input:
        print("error: --labels needs --input DIR", file=sys.stderr)
        return 2
    if args.tier == "ladder" and (args.input or args.feature_version):
        print(
            "error: --tier ladder runs the generated tiers; it takes neither --input nor --feature-version",
            file=sys.stderr,
        )
        return 2
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from evaluation.report import format_summary, write_summary
    from ingestion.sources import InputError
    from processing.embed import ModelNotFoundError
    from processing.engine import EmbeddingLost
    from processing.features import UnknownVersionError, WorkspaceLockedError

    summaries = []
    for tier, config in configs.items():
        try:
            summary = run_pipeline(
                config, tier, args.workspace, args.ray_address, args.feature_version, args.input, args.labels
            )
        except InputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except (WorkspaceLockedError, ModelNotFoundError, UnknownVersionError, EmbeddingLost) as exc:  # one line
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(format_summary(summary) + "\n")
        summaries.append(summary)
    if args.summary:
        write_summary(summaries[0] if len(summaries) == 1 else {"ladder": summaries}, args.summary)
        print(f"summary written to {args.summary}")
    if args.tier == "ladder":
        from evaluation.compare import compare, format_table
        from training.tracking import default_tracking_uri

        config = configs[tiers[-1]]
        uri = config.mlflow.tracking_uri or default_tracking_uri(Path(args.workspace).resolve())
        out = Path(args.workspace) / "reports" / "compare"
        print(format_table(compare(uri, config.mlflow.experiment, out)))
        print(f"\nreport: {out / 'compare.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
