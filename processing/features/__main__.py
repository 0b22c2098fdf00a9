"""Browse and export feature versions (time travel for training and other tools).

    python -m processing.features list                    # every version with its lineage
    python -m processing.features show fv-1234abcd        # one version in full
    python -m processing.features diff fv-aaaa fv-bbbb    # members added / removed / relabelled
    python -m processing.features export fv-1234abcd out/ # Parquet (train, heldout) + version.json

Add --workspace DIR when the workspace is not ./workspace.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from processing.features.store import FeatureStore, WorkspaceLockedError
from processing.features.versions import UnknownVersionError
from processing.out_of_space import out_of_space_error, out_of_space_message


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m processing.features", description=__doc__.split("\n")[0])
    parser.add_argument("--workspace", type=Path, default=Path("workspace"))
    # --workspace also after the command (`show fv-1234 --workspace w`), where users put it too.
    workspace = argparse.ArgumentParser(add_help=False)
    workspace.add_argument("--workspace", type=Path, default=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", parents=[workspace])
    sub.add_parser("show", parents=[workspace]).add_argument("version")
    diff = sub.add_parser("diff", parents=[workspace])
    diff.add_argument("a")
    diff.add_argument("b")
    export = sub.add_parser("export", parents=[workspace])
    export.add_argument("version")
    export.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    try:
        with FeatureStore(args.workspace / "features.duckdb", read_only=True) as store:
            if args.command == "list":
                # source last: a user's folder can be any length, and would push the columns after it
                header = f"{'train':>7} {'held-out':>8} {'batch':>7}"
                print(f"{'version':<20} {'created':<20} {header} {'parent':<20} source")
                for v in store.versions():
                    created = v["created_at"].strftime("%Y-%m-%d %H:%M:%S")
                    n = v["splits"]
                    counts = f"{n.get('train', 0):>7} {n.get('heldout', 0):>8} {n.get('batch', 0):>7}"
                    parent = v["parent_version"] or "-"
                    print(f"{v['version_id']:<20} {created:<20} {counts} {parent:<20} {v['source']}")
            elif args.command == "show":
                print(json.dumps(store.version(args.version), indent=2, default=str))
            elif args.command == "diff":
                print(json.dumps(store.diff(args.a, args.b), indent=2, default=str))
            else:
                for path in store.export(args.version, args.folder):
                    print(path)
    except (UnknownVersionError, FileNotFoundError) as exc:  # the user's mistake: exit status 2, as elsewhere
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except WorkspaceLockedError as exc:  # a run is writing: try again later
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # export's folder on a full disk (DuckDB's own IOException, or an OSError)
        if (full := out_of_space_error(exc)) is None:
            raise
        print(f"error: {out_of_space_message(full, args.workspace, {'export': args.folder})}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
