import numpy as np
import pytest

from evaluation.metrics import score
from training.classifiers import TrainConfig, train_classifier


def _blobs(seed: int, n: int = 60):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 16)) * 3
    y = np.repeat(np.array(["a", "b", "c"]), n)
    x = centres[np.repeat(np.arange(3), n)] + rng.normal(size=(3 * n, 16))
    return x.astype(np.float32), y


@pytest.mark.parametrize("name", ["logreg", "sgd", "mlp"])
def test_classifier_learns_separable_classes(name):
    x, y = _blobs(0)
    x_test, y_test = _blobs(0, 20)
    model = train_classifier(name, x, y, TrainConfig(mlp_epochs=30))
    assert score(y_test, model.predict(x_test))["accuracy"] > 0.95
    proba = model.predict_proba(x_test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert list(model.classes_) == ["a", "b", "c"]


def test_mlp_is_repeatable_with_a_seed():
    x, y = _blobs(1)
    a = train_classifier("mlp", x, y, TrainConfig(seed=3, mlp_epochs=5)).predict_proba(x)
    b = train_classifier("mlp", x, y, TrainConfig(seed=3, mlp_epochs=5)).predict_proba(x)
    np.testing.assert_allclose(a, b)


def test_single_label_is_a_clear_error():
    x, _ = _blobs(0)
    with pytest.raises(ValueError, match="1 label"):
        train_classifier("logreg", x, np.array(["a"] * len(x)), TrainConfig())


@pytest.mark.parametrize("name", ["tfidf", "svm"])
def test_text_classifiers_read_text(name):
    words = {"a": "invoice payment due amount", "b": "patient discharge ward physician", "c": "agreement party law"}
    rng = np.random.default_rng(0)
    y = np.array([k for k in "abc" for _ in range(20)])
    texts = np.array([" ".join(rng.permutation(words[label].split() + ["the", "of", "and"])) for label in y])
    model = train_classifier(name, texts, y, TrainConfig())
    assert list(model.predict(np.array(["payment of the invoice", "the ward physician"]))) == ["a", "b"]
    proba = model.predict_proba(np.array(["payment of the invoice"]))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert proba[0, 0] > 0.5  # calibrated, and confident where the words say so


@pytest.mark.parametrize("per_class", [1, 2])
def test_the_svm_gives_probabilities_even_with_too_few_documents_to_calibrate(per_class):
    y = np.array([k for k in "abc" for _ in range(per_class)])
    texts = np.array([f"{k}word{k} common text {k}{k}" for k in y])
    model = train_classifier("svm", texts, y, TrainConfig())
    proba = model.predict_proba(texts)
    assert proba.shape == (len(y), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)


def test_fusion_reads_text_and_vectors_side_by_side():
    from training.classifiers import fused_rows

    # The words alone cannot tell a from b ("shared"), the vectors alone cannot tell b from c: together they can.
    rng = np.random.default_rng(0)
    y = np.array([k for k in "abc" for _ in range(20)])
    texts = ["shared words here" if label in "ab" else "other words there" for label in y]
    vectors = np.array([[1.0, 0.0] if label == "a" else [0.0, 1.0] for label in y]) + 0.05 * rng.normal(size=(60, 2))
    model = train_classifier("fusion", fused_rows(texts, vectors), y, TrainConfig(fusion_weight=2.0))
    assert score(y, model.predict(fused_rows(texts, vectors)))["accuracy"] == 1.0
    np.testing.assert_allclose(model.predict_proba(fused_rows(texts[:3], vectors[:3])).sum(axis=1), 1.0, atol=1e-6)


def test_ctrl_c_during_a_fit_stops_at_once_not_when_the_fit_returns():
    """Python runs a signal handler only between bytecodes: Ctrl-C or SIGTERM during one long C call
    (liblinear fitting svm takes minutes at 75k) waited for it to return. The fit now runs in a thread and
    the caller takes the interrupt at once, while the fit is still running."""
    import os
    import signal
    import threading

    from training.fit import fit

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(600, 16)).astype(np.float32), np.repeat(np.array(["a", "b", "c"]), 200)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # a terminal's Ctrl-C, even under nohup
    timer = threading.Timer(0.5, os.kill, [os.getpid(), signal.SIGINT])
    try:
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            fit("mlp", x, y, TrainConfig(mlp_epochs=1000), "cpu")
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    fitting = [t for t in threading.enumerate() if t.name == "docscale-fit"]
    assert fitting and fitting[0].is_alive()  # the interrupt did not wait for the fit
    fitting[0].join()  # left to finish in a real run's exit; here, before the next test


def test_an_error_in_a_fit_reaches_the_caller_with_its_traceback():
    from training.fit import fit

    x, y = np.zeros((4, 2), dtype=np.float32), np.array(["a", "a", "b", "b"])
    with pytest.raises(ValueError, match="unknown classifier 'nope'") as raised:
        fit("nope", x, y, TrainConfig(), "cpu")
    assert "build_classifier" in "".join(str(entry.name) for entry in raised.traceback)
