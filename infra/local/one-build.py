#!/usr/bin/env python3
"""Checks that every cargo build of `make test` resolves the same features, so that each
dependency is compiled once (docs/performance.md, "Build").

`make test` builds in three cargo invocations: `cargo build --workspace --bins` (world setup, and
before the system tests: the function binaries, the simulated operator, the brfed CLI), `cargo
test --workspace --exclude brfed-system-tests` (unit tests) and `cargo test -p
brfed-system-tests` (system tests). Cargo resolves features per invocation, over the packages it
selects and, for tests, their dev-dependencies: a dependency asked with another feature set in one
of them is compiled again there, with everything above it (tokio's `test-util` in one dev-dependency
rebuilt tokio, hyper, kube and the AWS SDK). This script asks cargo for each invocation's unit
graph (`--unit-graph`, unstable: RUSTC_BOOTSTRAP=1 lets this cargo print it; nothing is built)
and fails, naming them, when a registry dependency of the first is compiled with other features in
another. Units the tests need and the binaries do not (dev-only crates) are listed, not counted.
"""
import json
import os
import subprocess
import sys

INVOCATIONS = [
    ("build --workspace --bins", ["build", "--workspace", "--bins"]),
    ("test --workspace --exclude brfed-system-tests", ["test", "--workspace", "--exclude", "brfed-system-tests", "--no-run"]),
    ("test -p brfed-system-tests", ["test", "-p", "brfed-system-tests", "--no-run"]),
]


def units(args: list[str]) -> tuple[dict, set]:
    """The invocation's registry units: ({(package, target, mode, profile settings, platform):
    feature sets}, {identity of each unit: the same with its dependencies' identities}). Two
    invocations share a unit's artifact when its identity is the same in both."""
    env = dict(os.environ, RUSTC_BOOTSTRAP="1")
    out = subprocess.run(["cargo", *args, "--unit-graph", "-Z", "unstable-options"],
                         env=env, check=True, capture_output=True, text=True).stdout
    graph = json.loads(out)["units"]
    found: dict = {}
    ids: dict[int, tuple] = {}

    def key(u: dict) -> tuple:
        profile = {k: v for k, v in u["profile"].items() if k != "name"}  # dev and test share artifacts
        return (u["pkg_id"].split("#")[-1], u["target"]["name"], u["mode"],
                json.dumps(profile, sort_keys=True), u.get("platform"))

    def identity(i: int) -> tuple:
        if i not in ids:
            u = graph[i]
            deps = tuple(sorted(identity(d["index"]) for d in u["dependencies"]))
            ids[i] = (key(u), tuple(sorted(u["features"])), deps)
        return ids[i]

    registry = [i for i, u in enumerate(graph) if not u["pkg_id"].startswith("path+")]
    for i in registry:  # the workspace's own crates are compiled per invocation anyway
        found.setdefault(key(graph[i]), set()).add(tuple(sorted(graph[i]["features"])))
    return found, {identity(i) for i in registry}


def main() -> int:
    (first_name, first_args), *others = INVOCATIONS
    first, first_ids = units(first_args)
    bad = 0
    for name, args in others:
        other, other_ids = units(args)
        again = sorted(k for k in first.keys() & other.keys() if first[k] != other[k])
        extra = {k for k in other.keys() - first.keys()}
        # every unit whose artifact differs: its own features, or a dependency's, below it
        rebuilt = sum(1 for i in other_ids - first_ids if i[0] not in extra)
        for k in again:
            had = set().union(*map(set, first[k]))
            has = set().union(*map(set, other[k]))
            print(f"cargo {name}: {k[0]} ({k[2]}) has other features: "
                  f"+{sorted(has - had)} -{sorted(had - has)} against cargo {first_name}")
        print(f"cargo {name}: {len(first.keys() & other.keys())} dependency units shared with "
              f"cargo {first_name}, {rebuilt} compiled again ({len(again)} for their own features); "
              f"its own: {', '.join(sorted({k[0] for k in extra})) or 'none'}")
        bad += rebuilt
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
