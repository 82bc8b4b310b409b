#!/usr/bin/env bash
# `sam build` of template.yaml, offline: every function with BuildMethod rust-cargolambda becomes
# `cargo lambda build --release --arm64 --bin <Binary>`, run with the repo's cargo-lambda (and the zig
# it brings) first on PATH. Then checks what `sam deploy` would upload: one bootstrap per function,
# an aarch64 Linux executable. Artifacts in .aws-sam/build (git-ignored); extra arguments go to sam.
#
# Measured on 2 cores: about 7 min from a clean target/ (the dependencies, then one LTO link per
# function), seconds when nothing changed. The release profile (opt-level "z", LTO, one codegen unit,
# strip) is the one deployed.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
[[ "${AFFINITY_SKIP_SETUP:-}" == 1 ]] || "$ROOT/scripts/setup.sh" >&2

export PATH="$VENV/bin:$PATH" # cargo-lambda and its zig, before any other
export SAM_CLI_TELEMETRY=0
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
"$VENV/bin/sam" build --template-file template.yaml "$@"

"$PY" - <<'EOF'
import sys
from pathlib import Path

sys.path.insert(0, "scripts")
import cfn_template

built = cfn_template.load(".aws-sam/build/template.yaml")
problems = []
for lid, props, _ in cfn_template._functions(built):
    bootstrap = Path(".aws-sam/build") / str(props.get("CodeUri")) / "bootstrap"
    if not bootstrap.is_file():
        problems.append(f"{lid}: {bootstrap} missing")
        continue
    head = bootstrap.read_bytes()[:20]
    # ELF, 64-bit, little endian, e_machine 183 (EM_AARCH64).
    if head[:4] != b"\x7fELF" or head[4] != 2 or int.from_bytes(head[18:20], "little") != 183:
        problems.append(f"{lid}: {bootstrap} is not an aarch64 ELF executable")
    else:
        print(f"sam_build: {lid}: {bootstrap} ({bootstrap.stat().st_size / 1e6:.1f} MB, aarch64)", file=sys.stderr)
for p in problems:
    print(f"sam_build: {p}", file=sys.stderr)
sys.exit(1 if problems else 0)
EOF
