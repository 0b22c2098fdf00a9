import pytest

from processing import engine

pytestmark = pytest.mark.ray


def _double(batch):
    return [2 * x for x in batch]


def _fails_in_batches_with_three(batch):
    if 3 in batch and len(batch) > 1:
        raise RuntimeError("simulated batch-level failure")
    return [2 * x for x in batch]


def test_map_batches_returns_every_result_with_bounded_in_flight(ray_session):
    results = [r for batch in engine.map_batches(_double, range(25), 4, desc="t", max_in_flight=2) for r in batch]
    assert sorted(results) == [2 * x for x in range(25)]


def test_failed_batch_is_retried_item_by_item(ray_session):
    results = [r for batch in engine.map_batches(_fails_in_batches_with_three, range(8), 4, desc="t") for r in batch]
    assert sorted(results) == [2 * x for x in range(8)]
