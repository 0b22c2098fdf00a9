"""MLflow in one place: the experiment, the pipeline run, its params, metrics, artifacts and models.

Everything is logged from the driver (never from Ray workers). The default backend is SQLite in the
workspace with artifacts beside it; `mlflow.tracking_uri` may point at a tracking server instead.
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

import mlflow  # noqa: E402
import mlflow.pyfunc  # noqa: E402
from mlflow.models import infer_signature  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

logging.getLogger("mlflow").setLevel(logging.WARNING)
logging.getLogger("alembic").setLevel(logging.WARNING)
# It warns on every cloudpickle save; our torch MLP needs cloudpickle (see log_model), and says so.
logging.getLogger("mlflow.sklearn").setLevel(logging.ERROR)
# It warns that a python_model object is cloudpickled (see DocumentModel) and that no signature can be
# inferred from a DataFrame hint; both are understood and said in the README.
logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)
# It logs each SQLite error with its traceback, then raises it (MlflowException from the SQLAlchemy
# error): the raise is what reaches the user, once. A full disk printed 770 lines before that one.
logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)

# Logged with each model instead of letting MLflow infer requirements (which imports and probes the
# model in a subprocess and takes seconds per model).
MODEL_REQUIREMENTS = ["scikit-learn", "numpy", "torch", "docscale"]


@dataclass
class TrackingConfig:
    """mlflow.* in the config."""

    tracking_uri: str = ""  # "" = sqlite:///<workspace>/mlflow.db; or a tracking server, http://...
    experiment: str = "docscale"  # the MLflow experiment every run logs to

    def validate(self) -> None:
        if not self.experiment.strip():
            raise ValueError("mlflow.experiment must name an experiment, e.g. docscale")
        scheme = self.tracking_uri.partition(":")[0]
        if self.tracking_uri and scheme not in ("http", "https", "sqlite", "file", "databricks", "postgresql", "mysql"):
            raise ValueError(
                f"mlflow.tracking_uri must be http(s)://..., sqlite:///... or empty; got {self.tracking_uri!r}"
            )

    def uri(self, workspace: Path) -> str:
        return self.tracking_uri or default_tracking_uri(workspace)


def default_tracking_uri(workspace: Path) -> str:
    return f"sqlite:///{Path(workspace).resolve() / 'mlflow.db'}"


def shown_uri(tracking_uri: str) -> str:
    """The URI as it may be printed or written to a summary: a user name and password in it are masked."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(tracking_uri)
    if "@" not in parts.netloc:
        return tracking_uri
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def missing_registry(tracking_uri: str) -> str | None:
    """Why a command that reads models cannot start (a SQLite registry that is not there), or None. Said
    before MLflow opens the URI, which would create an empty database where the user mistyped a path."""
    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri.removeprefix("sqlite:///")).exists():
        return (
            f"no registry at {tracking_uri}: train first (python -m processing.run) or pass --workspace or"
            " --tracking-uri"
        )
    return None


def use_registry(tracking_uri: str) -> None:
    """Read models from this backend (serving and prediction: no experiment is created)."""
    mlflow.set_tracking_uri(tracking_uri)


def setup(tracking_uri: str, experiment: str, artifact_root: Path | None) -> str:
    """Point MLflow at the backend and make sure the experiment exists; returns its id."""
    mlflow.set_tracking_uri(tracking_uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        mlflow.set_experiment(experiment_id=found.experiment_id)
        return found.experiment_id
    location = (Path(artifact_root).resolve().as_uri()) if artifact_root else None
    experiment_id = mlflow.create_experiment(experiment, artifact_location=location)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def end_abandoned_runs(experiment_id: str, ended: set[str]) -> int:
    """Mark FAILED the runs MLflow still shows RUNNING whose docscale run (tag docscale_run) is over: a
    process killed outright (SIGKILL, the kernel's OOM killer, a power cut), or stopped by a disk too full
    to record its end, leaves them so for good. Returns how many."""
    client = MlflowClient()
    running = client.search_runs([experiment_id], "attributes.status = 'RUNNING'", max_results=5000)
    abandoned = [run for run in running if run.data.tags.get("docscale_run") in ended]
    for run in abandoned:
        client.set_tag(run.info.run_id, "docscale_ended", "its process stopped before it could end this run")
        client.set_terminated(run.info.run_id, "FAILED")
    return len(abandoned)


@contextmanager
def pipeline_run(run_name: str, params: dict[str, Any], tags: dict[str, str]):
    """One MLflow run per pipeline run; marked FAILED if the body raises, KILLED if it was interrupted."""
    with _run(run_name=run_name, tags=tags) as run_id:
        mlflow.log_params({k: _param(v) for k, v in params.items()})
        yield run_id


@contextmanager
def _run(**start: Any) -> Iterator[str]:
    """mlflow.start_run, except that Ctrl-C or SIGTERM ends the run KILLED, as the MLflow UI shows a run
    stopped by hand, rather than FAILED: nothing went wrong, and the rerun resumes."""
    with mlflow.start_run(**start) as run:
        try:
            yield run.info.run_id
        except KeyboardInterrupt:
            mlflow.end_run("KILLED")
            raise


def metric_key(name: str) -> str:
    """A metric name MLflow accepts, made from any text (labels come from users' folders and CSVs: `R&D
    (legacy)`, `lab/../report`). The real label stays in the data and the reports; only the key changes."""
    key = re.sub(r"[^A-Za-z0-9_\-. /]", "_", name).replace("..", "_")
    return key.lstrip("/") or "_"


def log_metrics(metrics: dict[str, float]) -> None:
    mlflow.log_metrics({metric_key(k): float(v) for k, v in metrics.items()})


def check_reachable(uri: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds, before any work, when a tracking server does not answer (MLflow itself retries
    for minutes, and only after the pipeline ran), or when a SQLite backend file is not a database.
    Raises ConnectionError with one line. A SQLite backend not there yet is created (_create_sqlite)."""
    if uri.startswith("sqlite:///"):
        _check_sqlite(Path(uri.removeprefix("sqlite:///")))
        return
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s) as response:
            response.read(64)
    except urllib.error.HTTPError:
        return  # it answered: a server without /health is still a server
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConnectionError(
            f"the MLflow tracking server {shown_uri(uri)} does not answer ({reason}); start it or fix --mlflow-uri"
        ) from None


def log_artifact(path: Path, folder: str | None = None) -> None:
    mlflow.log_artifact(str(path), artifact_path=folder)


def log_feature_version(version_id: str, x_train: np.ndarray, y_train: np.ndarray, store_path: Path) -> None:
    """Record the feature version as the run's dataset input, so the UI shows which features trained it.

    The version id is content-addressed, so it doubles as the dataset digest.
    """
    import warnings

    import mlflow.data

    with warnings.catch_warnings():  # MLflow warns that a local path "can be interpreted in multiple ways"
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_numpy(
            x_train,
            targets=y_train,
            source=str(Path(store_path).resolve()),
            name=version_id,
            digest=version_id.removeprefix("fv-"),
        )
    mlflow.log_input(dataset, context="training")


def log_json(data: dict[str, Any], name: str) -> None:
    mlflow.log_dict(data, name)


def log_model(name: str, model: Any, example: np.ndarray | None) -> str:
    """Log a fitted sklearn-protocol classifier with its signature and an input example (none for inputs
    MLflow cannot describe, such as (text, vector) pairs); returns its URI."""
    import mlflow.sklearn

    # cloudpickle, not skops: skops only loads sklearn's own types without a trust list, and our torch
    # MLP and TF-IDF pipeline are loaded by our own code anyway.
    signature = infer_signature(example, model.predict(example)) if example is not None else None
    info = mlflow.sklearn.log_model(
        model,
        name=name,
        signature=signature,
        input_example=example[:2] if example is not None else None,
        serialization_format="cloudpickle",
        pip_requirements=MODEL_REQUIREMENTS,
    )
    return info.model_uri


@contextmanager
def child_run(name: str, tags: dict[str, str]):
    """A nested run for one classifier inside the pipeline run."""
    with _run(run_name=name, nested=True, tags=tags) as run_id:
        yield run_id


def log_text(text: str, name: str) -> None:
    mlflow.log_text(text, name)


def set_tags(tags: dict[str, str]) -> None:
    mlflow.set_tags(tags)


class DocumentModel(mlflow.pyfunc.PythonModel):
    """The registry's form of a self-contained classifier (processing.classify.DocumentClassifier, or
    anything with `classify_frame` and `settings`): PDFs in, outcome, label and probabilities out."""

    def __init__(self, predictor: Any) -> None:
        self.predictor = predictor

    # A DataFrame hint: MLflow reads predict's hints as its input schema, and warns on any other kind.
    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return self.predictor.classify_frame(model_input)


# The run tag holding the SHA-256 of the document model's stored files (see model_digest).
DIGEST_TAG = "docscale.model_sha256"


class ModelDigestError(ValueError):
    """A model's stored files differ from what its training run recorded: never unpickled."""


def model_digest(folder: str | Path) -> str:
    """SHA-256 over a model folder's files (relative path and content, in path order)."""
    import hashlib

    root, digest = Path(folder), hashlib.sha256()
    # MLflow adds registered_model_meta when it downloads a registered version: not the model's own.
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != "registered_model_meta"):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def log_document_model(predictor: Any, name: str = "document-classifier") -> str:
    """Log a self-contained classifier as a pyfunc in the active run, with its settings beside it as
    JSON; returns the model's URI. The project's own modules travel by reference: the serving machine
    has docscale installed (that is what `docscale` in the requirements says).

    The digest of the stored files goes on the run (DIGEST_TAG): loading verifies it before unpickling,
    so whoever can write to the artifact store alone cannot make predict or the service run their code."""
    import tempfile

    import mlflow.pyfunc

    info = mlflow.pyfunc.log_model(
        name=name,
        python_model=DocumentModel(predictor),
        pip_requirements=MODEL_REQUIREMENTS,
        metadata={"docscale": predictor.settings()},
    )
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.set_tag(DIGEST_TAG, model_digest(mlflow.artifacts.download_artifacts(info.model_uri, dst_path=tmp)))
    return info.model_uri


def download_verified(uri: str, folder: Path) -> Path:
    """Download a registered model into `folder` and check its files against the digest its training run
    recorded; ModelDigestError on a mismatch (nothing of it was unpickled). What is returned is the checked
    copy: load or serve that one, not the store's, which may change after the check."""
    import mlflow.artifacts

    expected = MlflowClient().get_run(model_version(uri).run_id).data.tags.get(DIGEST_TAG)
    local = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(folder)))
    if expected is None:
        logging.getLogger("docscale").warning("%s has no recorded digest (logged before digests); unverified", uri)
    elif model_digest(local) != expected:
        raise ModelDigestError(
            f"{uri}: its stored files differ from the digest its training run recorded; not loaded "
            "(someone changed the artifact store, or it is damaged): retrain, or restore the artifacts"
        )
    return local


def load_document_model(uri: str) -> Any:
    """The self-contained classifier behind a registered pyfunc (models:/<name>/<version> or @alias);
    ValueError for a model that is not one (a bare classifier over embeddings, as registered before
    models carried their settings), ModelDigestError for one whose files changed since training."""
    import tempfile

    import mlflow.pyfunc

    with tempfile.TemporaryDirectory() as tmp:
        local = download_verified(uri, Path(tmp))
        with warnings.catch_warnings():  # the type-hint advice again, see DocumentModel.predict
            warnings.simplefilter("ignore", UserWarning)
            loaded = mlflow.pyfunc.load_model(local)
    try:
        wrapped = loaded.unwrap_python_model()
    except Exception:  # noqa: BLE001 - MLflow raises MlflowException for other flavours
        wrapped = None
    if not isinstance(wrapped, DocumentModel):
        raise ValueError(f"{uri} is a bare classifier, not a document model; retrain to register one")
    return wrapped.predictor


def load_classifier(uri: str) -> Any:
    """The fitted classifier (sklearn protocol) of a registered model, whichever form it was logged in."""
    try:
        return load_document_model(uri).classifier
    except ValueError:
        import mlflow.sklearn

        return mlflow.sklearn.load_model(uri)


def model_version(uri: str) -> Any:
    """The registry entry behind models:/<name>@<alias> or models:/<name>/<version>."""
    client = MlflowClient()
    name, _, ref = uri.removeprefix("models:/").partition("@")
    if ref:
        return client.get_model_version_by_alias(name, ref)
    name, _, number = name.partition("/")
    return client.get_model_version(name, number)


def recorded_figures(version: Any) -> dict[str, float]:
    """A model version's held-out macro-F1 and accuracy: from its tags, or (versions registered before the
    accuracy tag) from the metrics its training run logged."""
    figures = {
        k: float(version.tags[f"heldout_{k}"]) for k in ("macro_f1", "accuracy") if f"heldout_{k}" in version.tags
    }
    if "accuracy" not in figures:
        metrics = MlflowClient().get_run(version.run_id).data.metrics
        name = version.tags.get("classifier", "")
        if f"{name}.accuracy" in metrics:
            figures["accuracy"] = metrics[f"{name}.accuracy"]
    return figures


def training_params(version: Any) -> dict[str, str]:
    """The params of the pipeline run that trained a model version (its parent run: the resolved config)."""
    client = MlflowClient()
    run = client.get_run(version.run_id)
    parent = run.data.tags.get("mlflow.parentRunId")
    return dict(client.get_run(parent).data.params if parent else run.data.params)


def _check_sqlite(path: Path) -> None:
    if not path.exists():
        _create_sqlite(path)
        return
    import sqlite3

    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
            con.execute("PRAGMA schema_version").fetchone()
            cut_short = con.execute("SELECT name FROM sqlite_master WHERE name GLOB '_alembic_tmp_*'").fetchone()
            if cut_short:  # what MLflow's schema migration leaves when it cannot finish
                raise sqlite3.DatabaseError("its creation was cut short (by a full disk?)")
    except sqlite3.DatabaseError as exc:
        raise ConnectionError(
            f"the workspace's MLflow database is damaged: {path}: {exc}; move it aside (runs and models logged "
            "there are lost; the feature store is not)"
        ) from None


def _create_sqlite(path: Path) -> None:
    """Create the SQLite backend whole or not at all: MLflow builds its schema in 68 migrations,
    and one cut short (a full disk, a kill) left a database every later run failed on. So they run on a
    file of this process' own, renamed into place once complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.creating")
    try:
        MlflowClient(f"sqlite:///{partial}").search_experiments(max_results=1)  # creates and migrates it
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def champion(registry_name: str) -> Any | None:
    """The model version holding the `champion` alias, or None."""
    client = MlflowClient()
    try:
        return client.get_model_version_by_alias(registry_name, "champion")
    except mlflow.exceptions.MlflowException:
        return None


def register_challenger(model_uri: str, registry_name: str, tags: dict[str, str]) -> Any:
    """Register a new model version and give it the `challenger` alias."""
    version = mlflow.register_model(model_uri, registry_name, tags=tags)
    MlflowClient().set_registered_model_alias(registry_name, "challenger", version.version)
    return version


def batch_challengers(registry_name: str, batch_id: str) -> list[Any]:
    """The model versions that cycles of this batch registered (tag cycle_batch), oldest first."""
    versions = MlflowClient().search_model_versions(f"name='{registry_name}'")
    return sorted((v for v in versions if v.tags.get("cycle_batch") == batch_id), key=lambda v: int(v.version))


def set_model_version_tags(registry_name: str, version: str, tags: dict[str, str]) -> None:
    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(registry_name, version, key, str(value)[:5000])


def promote(registry_name: str, version: str) -> None:
    MlflowClient().set_registered_model_alias(registry_name, "champion", version)


def pipeline_runs(experiment: str) -> list[dict[str, Any]]:
    """Finished pipeline runs of the experiment with their classifier children, newest first, as plain dicts."""
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        return []
    client = MlflowClient()
    runs = client.search_runs(
        [found.experiment_id], "attributes.status = 'FINISHED'", order_by=["start_time DESC"], max_results=5000
    )
    children: dict[str, list[Any]] = {}
    for run in runs:
        parent = run.data.tags.get("mlflow.parentRunId")
        if parent:
            children.setdefault(parent, []).append(run)
    out = []
    for run in runs:
        if "mlflow.parentRunId" in run.data.tags or "tier" not in run.data.tags:
            continue
        out.append(
            {
                "run_id": run.info.run_id,
                "start_time": run.info.start_time,
                "tags": dict(run.data.tags),
                "metrics": dict(run.data.metrics),
                "classifiers": {
                    c.data.tags.get("classifier", c.info.run_name): dict(c.data.metrics)
                    for c in children.get(run.info.run_id, [])
                },
            }
        )
    return out


@contextmanager
def report_run(name: str, tags: dict[str, str]):
    with mlflow.start_run(run_name=name, tags=tags) as run:
        yield run.info.run_id


def get_run(run_id: str, tracking_uri: str) -> Any:
    return MlflowClient(tracking_uri).get_run(run_id)


def _param(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    return text[:6000]  # MLflow's limit on a param value
