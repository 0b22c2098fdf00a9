"""The executor-independent parts: the in-process executor, the embedding feeder, and the rule that a
failure of ours is never cached as a property of a document."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from ingestion.extract import ExtractConfig, extract_files, lost_record
from processing.features import FeatureStore
from processing.local import LocalExecutor
from processing.scheduling import EmbedFeeder, guided_batch_size


def _double(batch):
    return [2 * x for x in batch]


def _explodes_on_three(batch):
    if 3 in batch:
        raise RuntimeError("a bug of ours")
    return [2 * x for x in batch]


def test_local_executor_maps_every_item_in_order_with_guided_sizes():
    executor = LocalExecutor()
    batches = list(executor.map_batches(_double, range(100), 32, min_batch_size=4, total=100, desc="t"))
    assert [r for b in batches for r in b] == [2 * x for x in range(100)]
    sizes = [len(b) for b in batches]
    assert sizes[0] == guided_batch_size(100, 1, 32, 4) and sizes[-1] >= 4 and sizes == sorted(sizes, reverse=True)
    assert executor.stats.tasks_per_node["local"] == len(batches)


def test_local_executor_gives_each_item_of_a_failed_batch_its_lost_outcome():
    executor = LocalExecutor()
    out = [
        r
        for b in executor.map_batches(_explodes_on_three, range(8), 4, desc="t", on_lost=lambda i, why: (i, why))
        for r in b
    ]
    lost = [r for r in out if isinstance(r, tuple)]
    assert [i for i, _ in lost] == [0, 1, 2, 3] and "a bug of ours" in lost[0][1]
    assert [r for r in out if not isinstance(r, tuple)] == [8, 10, 12, 14]
    with pytest.raises(RuntimeError):
        list(executor.map_batches(_explodes_on_three, range(8), 4, desc="t"))


def test_a_worker_failure_is_never_cached_so_a_fixed_rerun_extracts_again(tmp_path):
    """A failure of ours (here: a task that raises for every file, as a bad setting once made every
    worker do) is recorded as worker_error, not cached; the next run extracts the files for real."""
    from tests.ingestion.test_sources import make_folder

    folder = make_folder(tmp_path / "in", per_label=1)
    paths = sorted(str(p) for p in folder.rglob("*.pdf"))
    labels = {p: ("x", "train") for p in paths}
    config = ExtractConfig()
    broken = partial(_always_fails, config=config)
    with FeatureStore(tmp_path / "f.duckdb") as store:
        store.begin_run("r1", "t", {})
        for records in LocalExecutor().map_batches(broken, paths, 8, desc="t", on_lost=lost_record):
            store.record_files("r1", "ex", records, labels)
        assert set(store.outcome_counts("r1")) == {"worker_error"}
        assert store.extracted_hashes("ex") == frozenset()  # nothing cached
        store.begin_run("r2", "t", {})
        good = partial(extract_files, config=config)
        for records in LocalExecutor().map_batches(good, paths, 8, desc="t", on_lost=lost_record):
            store.record_files("r2", "ex", records, labels)
        counts = store.outcome_counts("r2")
        assert "worker_error" not in counts and sum(counts.values()) == len(paths) and counts["ok"] >= 5


def _always_fails(paths, config):
    raise OSError("setitimer: invalid argument")


class _FakePool:
    """A pool whose calls finish only when collected with wait=True (a busy device): named fake, since
    the point is to test the feeder's bookkeeping, not an embedder."""

    device, dim = "cpu", 2

    def __init__(self, capacity: int) -> None:
        self.capacity, self.calls, self.max_pending = capacity, [], 0

    @property
    def busy(self):
        return len(self.calls) >= self.capacity

    @property
    def pending(self):
        return len(self.calls)

    def submit(self, keys, texts):
        self.calls.append(keys)
        self.max_pending = max(self.max_pending, len(self.calls))

    def finished(self, wait):
        if wait and self.calls:
            keys = self.calls.pop(0)
            yield keys, np.zeros((len(keys), 2))

    def close(self):
        pass


@pytest.mark.parametrize("block", [True, False])
def test_feeder_embeds_every_item_once_and_never_overfills_the_pool(block):
    pool = _FakePool(capacity=2)
    feeder = EmbedFeeder(pool, per_call=3)
    items = [(f"k{i}", "text") for i in range(20)]
    got = [k for keys, _ in feeder.add(items, block=block) for k in keys]
    got += [k for keys, _ in feeder.finish() for k in keys]
    assert sorted(got) == sorted(k for k, _ in items) and len(got) == 20
    assert pool.max_pending <= 2 and feeder.embedded == 20
    if not block:  # streaming never waited: the calls beyond the pool's room stayed buffered until finish
        assert pool.max_pending == 2
