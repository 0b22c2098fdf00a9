"""What processing.cycle prints about drift: a judged batch's tests, or why it was not judged."""

from processing.cycle import _drift_line


def test_the_drift_line_says_when_a_batch_was_not_judged():
    judged = {"detected": True, "status": "judged", "tests": {"mmd2": {"score": 0.0123, "p_value": 0.004}}}
    assert _drift_line(judged) == "  drift detected: True  mmd2 0.012 (p 0.004)"
    assert _drift_line({"detected": False, "status": "too_small", "tests": {}}) == "  drift: not judged (too_small)"
    assert _drift_line({}) == "  drift: not judged (no champion before this batch)"
