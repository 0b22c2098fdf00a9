"""Copy a registered model out of the registry after checking its digest, for `mlflow models serve`.

`mlflow models serve -m models:/...` unpickles whatever the artifact store holds. Serve the copy this
command writes instead: its files were checked against the SHA-256 that the model's training run recorded
(the check predict, the service and the loop make), and a copy on local disk cannot change after the check.

    python -m processing.export_model --out served-model
    mlflow models serve -m served-model --env-manager local -h 127.0.0.1 -p 5001
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from processing.out_of_space import out_of_space_error, out_of_space_message
from training import tracking


def export_verified(model_uri: str, tracking_uri: str, out: Path) -> Path:
    """Download `model_uri`, check its digest, and move the checked copy to `out` (which must not exist)."""
    tracking.check_reachable(tracking_uri)
    tracking.use_registry(tracking_uri)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:  # same file system: the move is a rename
        checked = tracking.download_verified(model_uri, Path(tmp))
        shutil.move(str(checked), out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m processing.export_model", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="models:/docscale-classifier@champion")
    parser.add_argument("--workspace", type=Path, default=Path("workspace"))
    parser.add_argument("--tracking-uri", help="default: sqlite:///<workspace>/mlflow.db")
    parser.add_argument("--out", type=Path, required=True, help="a new folder for the checked copy")
    args = parser.parse_args(argv)
    uri = args.tracking_uri or tracking.default_tracking_uri(args.workspace)
    if problem := tracking.missing_registry(uri):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.out.exists():
        print(f"error: --out {args.out} exists; pass a new folder (a checked copy is never merged)", file=sys.stderr)
        return 2
    try:
        out = export_verified(args.model, uri, args.out)
    except (ConnectionError, tracking.ModelDigestError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if (full := out_of_space_error(exc)) is not None:  # the copy is made beside --out, then renamed
            print(f"error: {out_of_space_message(full, args.workspace, {'--out': args.out.parent})}", file=sys.stderr)
            return 1
        if type(exc).__name__ == "MlflowException":  # no such model, alias or registry
            print(f"error: {args.model}: {str(exc).splitlines()[0]}", file=sys.stderr)
            return 2
        raise
    print(f"{args.model}: digest checked; serve it with: mlflow models serve -m {out} --env-manager local")
    return 0


if __name__ == "__main__":
    sys.exit(main())
