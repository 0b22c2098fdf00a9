"""The feature stage: inputs -> extraction -> embeddings -> an immutable feature version.

Each step is a function of typed parts (an executor, the store, a stage config) that returns what it
did; `build_features` chains them. Everything is cached: extractions by (content hash, extractor),
vectors by (text hash, embedder), so a rerun only does what the workspace lacks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from importlib.metadata import version
from pathlib import Path

from ingestion.corpus import CorpusConfig, corpus_dir, manifest, missing_entries, write_entries
from ingestion.extract import USABLE, ExtractConfig, FileRecord, extract_files, extractor_version, lost_record
from ingestion.sources import InputError, join
from processing.embed import EmbedConfig, embedder_id
from processing.features import FeatureStore
from processing.progress import Progress, Stopwatch, log
from processing.scheduling import EmbedFeeder, EmbedPool, Executor

Labels = dict[str, tuple[str | None, str]]  # path -> (label or None, split)


@dataclass
class FeatureResult:
    version_id: str
    created: bool
    extractor: str
    embedder: str
    device: str
    work: dict[str, int] = field(default_factory=dict)


def generate_corpus(executor: Executor, config: CorpusConfig, workspace: Path) -> tuple[Labels, int]:
    """Render the tier's missing PDFs; returns (path -> (label, split) for every file, files generated)."""
    root = corpus_dir(workspace, config.seed, config.root)
    entries = manifest(config.seed, config.train_size, config.heldout_size, config.bad_file_rate, config.label_noise)
    missing = missing_entries(root, entries)
    generate = partial(_write_batch, root, config.seed)
    generated = sum(sum(n) for n in executor.map_batches(generate, missing, 64, desc="generate", total=len(missing)))
    log(f"corpus: {len(entries)} files ({generated} generated) in {root}")
    return {join(root, e.relpath): (e.label, e.split) for e in entries}, generated


def _write_batch(root: str, seed: int, entries: list) -> list[int]:
    return [write_entries(root, seed, entries)]


def extract(
    executor: Executor,
    store: FeatureStore,
    run_id: str,
    config: ExtractConfig,
    labels: Labels,
    feeder: EmbedFeeder | None = None,
    embed_keys: tuple[str, str] | None = None,
) -> int:
    """Extract every input on the executor, committing batch by batch; returns how many were extracted
    (the rest came from the cache). With a feeder, fresh texts go to the embedder while extraction goes on."""
    extractor = extractor_version(config)
    task = partial(_extract_task, config=config, skip_hashes=store.extracted_hashes(extractor))
    extracted = 0
    batches = executor.map_batches(
        task,
        list(labels),
        config.files_per_task,
        min_batch_size=config.min_files_per_task,
        desc="extract",
        total=len(labels),
        item_timeout_s=config.timeout_s,
        on_lost=lost_record,
        memory_cap_mb=config.worker_memory_mb,
    )
    seen: set[str] = set()
    for records in batches:
        store.record_files(run_id, extractor, records, labels)
        extracted += sum(r.extraction is not None for r in records)
        if feeder and embed_keys:
            fresh = _fresh_texts(records, seen)
            missing = set(store.missing_embeddings(list(fresh), *embed_keys)) if fresh else set()
            for keys, vectors in feeder.add(((h, t) for h, t in fresh.items() if h in missing), block=False):
                store.add_embeddings(keys, vectors, *embed_keys)
    if feeder and embed_keys:
        for keys, vectors in feeder.finish():
            store.add_embeddings(keys, vectors, *embed_keys)
    return extracted


def _extract_task(paths: list[str], config: ExtractConfig, skip_hashes: frozenset[str]) -> list[FileRecord]:
    return extract_files(paths, config, skip_hashes)


def _fresh_texts(records: list[FileRecord], seen: set[str]) -> dict[str, str]:
    fresh = {
        r.content_hash: r.extraction.text
        for r in records
        if r.extraction and r.extraction.outcome in USABLE and r.content_hash not in seen
    }
    seen.update(fresh)
    return fresh


def embed_texts(store: FeatureStore, pool: EmbedPool, todo: list[str], keys: tuple[str, str], per_call: int) -> int:
    """Embed the texts of `todo` (hashes without a vector), ordered by length (similar lengths share
    calls, so little padding); returns how many were embedded."""
    embedder, extractor = keys
    feeder = EmbedFeeder(pool, per_call, Progress("embed", len(todo)))
    texts = store.iter_texts(store.by_length(todo, extractor), extractor)
    for done_keys, vectors in feeder.add(texts, block=True):
        store.add_embeddings(done_keys, vectors, embedder, extractor)
    for done_keys, vectors in feeder.finish():
        store.add_embeddings(done_keys, vectors, embedder, extractor)
    return feeder.embedded


def _open_pool(
    executor: Executor, store: FeatureStore, e: EmbedConfig, cpu_share: float, clock: Stopwatch, models_dir: Path
) -> EmbedPool:
    with clock.stage("model_load"):
        opened = executor.embed_pool(e, cpu_share, models_dir)
        params = {"max_chars": e.max_chars, "backend": e.backend, "token_budget": e.token_budget}
        store.register_embedder(embedder_id(e), e.model, params, opened.dim)
    return opened


def extract_stage(
    executor: Executor,
    store: FeatureStore,
    run_id: str,
    settings: tuple[ExtractConfig, EmbedConfig],
    labels: Labels,
    clock: Stopwatch,
    models_dir: Path,
    work: dict[str, int],
) -> EmbedPool | None:
    """Extract every input (recording one outcome per file) and mark duplicates. With a GPU, fresh
    extractions are embedded meanwhile (streaming); the pool that did it is returned to go on with."""
    x, e = settings
    keys = (embedder_id(e), extractor_version(x))
    # Streaming: with a GPU, embed fresh extractions while later files are still being extracted, so the
    # GPU works while the CPUs extract. On CPU both would fight over the same cores (off unless asked).
    pool, feeder = None, None
    if e.stream == "on" or (e.stream == "auto" and executor.cluster.gpus > 0):
        pool = _open_pool(executor, store, e, 0.5, clock, models_dir)
        feeder = EmbedFeeder(pool, e.texts_per_call_for(pool.device))
    with clock.stage("extract"):
        work["extracted"] = extract(executor, store, run_id, x, labels, feeder, keys)
        work["duplicates"] = store.mark_duplicates(run_id)
    work["embedded"] = work["embedded_while_extracting"] = feeder.embedded if feeder else 0
    log(f"extract: {work['extracted']} extracted, outcomes {store.outcome_counts(run_id)}")
    return pool


def embed_stage(
    executor: Executor,
    store: FeatureStore,
    settings: tuple[ExtractConfig, EmbedConfig],
    wanted: list[str],
    pool: EmbedPool | None,
    clock: Stopwatch,
    models_dir: Path,
    work: dict[str, int],
) -> str:
    """Embed whichever of `wanted` (content hashes) have no vector yet; returns the device used ("" when
    everything was cached). Closes the pool."""
    x, e = settings
    embedder, extractor = keys = (embedder_id(e), extractor_version(x))
    todo = store.missing_embeddings(wanted, embedder, extractor)  # one query over every wanted hash
    if todo:
        pool = pool or _open_pool(executor, store, e, 1.0, clock, models_dir)
        with clock.stage("embed"):
            work["embedded"] = work.get("embedded", 0) + embed_texts(
                store, pool, todo, keys, e.texts_per_call_for(pool.device)
            )
    device = pool.device if pool else ""
    if pool:
        pool.close()
    log(f"embed: {work.get('embedded', 0)} embedded on {device or 'no device (all cached)'}")
    return device


def build_features(
    executor: Executor,
    store: FeatureStore,
    run_id: str,
    source: str,
    config: tuple[ExtractConfig, EmbedConfig, CorpusConfig | None],
    labels: Labels,
    clock: Stopwatch,
    models_dir: Path,
) -> FeatureResult:
    """Extraction, embedding and the feature version for `labels`' files. The corpus config is given
    for generated tiers: what made the corpus is part of the features' identity."""
    x, e, corpus = config
    extractor, embedder = extractor_version(x), embedder_id(e)
    work = {"extracted": 0, "embedded": 0, "embedded_while_extracting": 0}
    pool = extract_stage(executor, store, run_id, (x, e), labels, clock, models_dir, work)
    members = store.members(run_id)
    if not members:  # nothing to train on: say so before committing an empty version
        if pool:
            pool.close()
        raise InputError(
            f"none of the {len(labels)} labelled input files gave usable text (outcomes: "
            f"{store.outcome_counts(run_id)}); nothing to train on"
        )
    # Unlabelled documents are embedded too: they get predictions at the end.
    wanted = [m.content_hash for m in members] + [h for _, h in store.unlabelled(run_id)]
    device = embed_stage(executor, store, (x, e), wanted, pool, clock, models_dir, work)

    with clock.stage("commit"):
        params = {"max_chars": e.max_chars, "backend": e.backend, "token_budget": e.token_budget}
        params["docscale"] = version("docscale")
        if corpus is not None:
            params |= {"seed": corpus.seed, "bad_file_rate": corpus.bad_file_rate, "label_noise": corpus.label_noise}
        version_id, created = store.commit_version(members, source, extractor, embedder, params)
    log(f"features: {version_id} ({'new' if created else 'reused'})")
    return FeatureResult(version_id, created, extractor, embedder, device, work)
