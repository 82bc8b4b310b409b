#!/usr/bin/env python3
"""Fails when a binary that `sam build` deploys would be compiled with a test double.

The test doubles of the ports (`MemoryStore`, `DerivedPeppers`, `ManualClock`, ...) exist only behind
the Cargo feature `test-doubles` of the `affinity` crate. `sam build` builds every function of
template.yaml with `BuildMethod: rust-cargolambda` as

    cd <CodeUri> && cargo lambda build --release --arm64 --bin <BuildProperties.Binary>

(aws_lambda_builders' rust_cargo workflow), i.e. `cargo build --release --target
aarch64-unknown-linux-gnu --bin <Binary>` without `-p`: Cargo selects the package of the working
directory or, at a virtual workspace's root, the workspace's default members, and unifies the features
of every selected package (resolver 2 leaves dev-dependencies out of a build that is not a test). So a
test crate that turns `test-doubles` on as a normal dependency, and is selected, puts the doubles into
every deployed binary.

This script asks Cargo for exactly that feature resolution, per function:

    cd <CodeUri> && cargo tree -e normal --target <arch triple> --prefix none -f '{p}|{f}'

(`-e normal`: no dev-dependencies, as in a release build), and fails if any package in it has the
feature `test-doubles` (or `--feature NAME`) enabled. Why the feature graph and not the binaries'
strings: the release profile strips symbols and LTO drops unused code, so a binary can be compiled
with a double and show no trace of it; the feature graph is what the compiler is given.

Exit status 0 when no function's build enables the feature, 1 otherwise (each offending function
and package named), 2 when cargo tree itself fails.

Usage: check_no_test_doubles.py [--template FILE] [--feature NAME]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cfn_template  # noqa: E402

# Lambda architecture -> the Rust target cargo lambda builds for.
TRIPLES = {"arm64": "aarch64-unknown-linux-gnu", "x86_64": "x86_64-unknown-linux-gnu"}


def builds(template: dict, template_dir: Path) -> list[tuple[str, str, Path, str]]:
    """(logical id, binary, working directory, target triple) of every cargo-lambda function."""
    arch_default = ((template.get("Globals", {}) or {}).get("Function", {}) or {}).get("Architectures") or ["x86_64"]
    code_default = ((template.get("Globals", {}) or {}).get("Function", {}) or {}).get("CodeUri")
    out = []
    for lid, res in (template.get("Resources") or {}).items():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        meta = res.get("Metadata") or {}
        if meta.get("BuildMethod") != "rust-cargolambda":
            continue
        props = res.get("Properties") or {}
        binary = (meta.get("BuildProperties") or {}).get("Binary") or lid
        code = props.get("CodeUri", code_default) or "."
        arch = (props.get("Architectures") or arch_default)[0]
        out.append((lid, binary, (template_dir / str(code)).resolve(), TRIPLES[arch]))
    return out


def enabled(cwd: Path, triple: str, feature: str) -> set[str]:
    """Packages whose `feature` is on in the normal (non-dev) build selected from `cwd`.

    Raises RuntimeError when cargo tree fails.
    """
    proc = subprocess.run(
        ["cargo", "tree", "-e", "normal", "--target", triple, "--prefix", "none", "-f", "{p}|{f}"],
        cwd=cwd, capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"cargo tree failed in {cwd}: {proc.stderr.strip()[-2000:]}")
    found = set()
    for line in proc.stdout.splitlines():
        pkg, _, feats = line.partition("|")
        feats = feats.replace("(*)", "").strip()
        if feature in {f.strip() for f in feats.split(",")}:
            found.add(pkg.strip())
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--template", default=str(cfn_template.DEFAULT_TEMPLATE))
    ap.add_argument("--feature", default="test-doubles")
    args = ap.parse_args(argv)
    template_path = Path(args.template).resolve()
    functions = builds(cfn_template.load(template_path), template_path.parent)
    if not functions:
        print("check_no_test_doubles: no rust-cargolambda function in the template", file=sys.stderr)
        return 1
    bad = 0
    cache: dict[tuple[Path, str], set[str]] = {}
    for lid, binary, cwd, triple in functions:
        try:
            found = cache.setdefault((cwd, triple), enabled(cwd, triple, args.feature))
        except RuntimeError as e:
            print(f"check_no_test_doubles: {e}", file=sys.stderr)
            return 2
        if found:
            bad += 1
            print(f"check_no_test_doubles: {lid} (--bin {binary}, {triple}): feature \"{args.feature}\" "
                  f"is enabled on {', '.join(sorted(found))}", file=sys.stderr)
        else:
            print(f"check_no_test_doubles: {lid} (--bin {binary}, {triple}): no \"{args.feature}\"",
                  file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
