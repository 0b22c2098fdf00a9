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


def _hangs_on_three(batch):
    import time

    if 3 in batch:
        time.sleep(120)  # a hang the item itself never ends, as a C-level loop would
    return [2 * x for x in batch]


def test_hang_is_killed_and_becomes_a_lost_item_while_the_rest_completes(ray_session):
    batches = engine.map_batches(
        _hangs_on_three,
        range(8),
        4,
        desc="t",
        item_timeout_s=0.5,
        grace_s=1.0,
        on_lost=lambda item, reason: ("lost", item, reason.split(":")[0]),
    )
    results = [r for batch in batches for r in batch]
    assert ("lost", 3, "timeout") in results
    assert sorted(r for r in results if isinstance(r, int)) == [0, 2, 4, 8, 10, 12, 14]
