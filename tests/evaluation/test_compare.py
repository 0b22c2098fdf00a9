import pytest

from evaluation.compare import comparison_rows, format_table, latest_per_tier, plot


def _run(tier, start, f1, train_docs):
    return {
        "run_id": f"{tier}-{start}",
        "start_time": start,
        "tags": {"tier": tier},
        "metrics": {
            "train_documents": train_docs,
            "work.embedded": train_docs,
            "work.extracted": train_docs,
            "seconds.embed": train_docs / 30.0,
            "seconds.extract": train_docs / 100.0,
            "seconds.train": 9.0 * train_docs - train_docs / 30.0 - train_docs / 100.0,
        },
        "classifiers": {
            "logreg": {"accuracy": f1, "macro_f1": f1, "macro_f1_low": f1 - 0.05, "macro_f1_high": f1 + 0.04}
        },
    }


def test_newest_run_per_tier_in_tier_order():
    runs = [_run("1k", 3, 0.8, 1000), _run("50", 2, 0.4, 50), _run("1k", 1, 0.1, 1000)]  # newest first
    assert [r["run_id"] for r in latest_per_tier(runs)] == ["50-2", "1k-3"]


def test_table_and_plot(tmp_path):
    rows = comparison_rows([_run("1k", 3, 0.8, 1000), _run("50", 2, 0.4, 50)])
    table = format_table(rows)
    assert "| 50 | 50 | logreg | 0.400 | 0.400 [0.350, 0.440] | 100.0 | 30.0 | 450.0 |" in table
    assert table.index("| 50 |") < table.index("| 1k |")
    assert plot(rows, tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_cost_comes_from_the_run_that_built_the_features():
    from evaluation.compare import build_cost

    retrain = _run("1k", 5, 0.8, 1000)
    retrain["metrics"] = {"train_documents": 1000, "work.embedded": 0, "seconds.train": 3.0}
    built = _run("1k", 1, 0.8, 1000)
    cost = build_cost(retrain, [retrain, built])
    assert cost["embed_docs_s"] == pytest.approx(30.0) and cost["wall_seconds"] > 3.0


def test_compare_without_a_workspace_is_a_user_error_not_a_crash(tmp_path, capsys):
    from evaluation.compare import main

    assert main(["--workspace", str(tmp_path)]) == 2
    assert "run python -m processing.run first" in capsys.readouterr().err
