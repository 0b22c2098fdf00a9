"""The many-splits script: its splits must keep packages whole, hold out what test/ holds out per class,
and differ from one draw to the next; its lead summary must place the fixed split among them."""

import subprocess
import sys

import numpy as np

from tests.scripts import SCRIPTS, load_script

SCRIPT = SCRIPTS / "bench_real_splits.py"


def corpus() -> tuple[np.ndarray, np.ndarray]:
    """Two classes, 10 packages each, of 1-3 manuals."""
    labels, packages = [], []
    for label in ("a", "b"):
        for n in range(10):
            for _ in range(1 + n % 3):
                labels.append(label)
                packages.append(f"{label}{n}")
    return np.asarray(labels), np.asarray(packages)


def test_splits_keep_packages_whole_and_hold_out_enough_of_each_class():
    splits = load_script("bench_real_splits")
    labels, packages = corpus()
    rng = np.random.default_rng(0)
    masks = [splits.package_disjoint_split(labels, packages, {"a": 4, "b": 6}, rng) for _ in range(20)]
    for held in masks:
        assert not set(packages[held]) & set(packages[~held])
        # At least as many as asked; at most one package (<= 3 manuals) beyond it.
        assert 4 <= (labels[held] == "a").sum() <= 6 and 6 <= (labels[held] == "b").sum() <= 8
    assert len({mask.tobytes() for mask in masks}) > 10


def test_the_lead_summary_places_the_fixed_split_among_the_others():
    splits = load_script("bench_real_splits")
    others = [{"ours": 0.6 + lead, "theirs": 0.6} for lead in np.linspace(0.005, 0.095, 10)]
    row = splits.lead_summary(others, {"ours": 0.63, "theirs": 0.6}, "ours", "theirs")
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == "+0.050"  # the mean lead
    assert cells[4] == "50%"  # leads of 5 points and more: 0.055 ... 0.095
    assert cells[5] == "+0.030" and cells[6] == "30%"  # 0.005, 0.015, 0.025 lie below the fixed split's


def test_a_bad_split_count_is_one_line_and_exit_2():
    done = subprocess.run([sys.executable, str(SCRIPT), "--splits", "0"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.strip() == "error: --splits must be >= 1; got 0"


def test_the_leads_are_drawn_as_histograms(tmp_path):
    splits = load_script("bench_real_splits")
    rng = np.random.default_rng(0)
    others = [{name: 0.5 + rng.normal(0, 0.05) for name in splits.MODELS} for _ in range(30)]
    splits.plot_leads(others, dict.fromkeys(splits.MODELS, 0.6), "fusion C 100", tmp_path / "leads.png")
    assert (tmp_path / "leads.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
