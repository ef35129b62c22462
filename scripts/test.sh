#!/usr/bin/env bash
# The test entry point (the README's test command; .ci/run calls it):
# starts the services, checks formatting and lints, and runs every test in the workspace
# against the real services. Extra arguments go to `cargo test` (e.g. a test name filter).
#
# FOLDLINE_SKIP_LINT=1 skips rustfmt and clippy for a quicker local loop.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust with rustup (https://rustup.rs)"

"$ROOT/scripts/services.sh" up

if [[ "${FOLDLINE_SKIP_LINT:-}" != 1 ]]; then
    if command -v rustup >/dev/null 2>&1; then
        rustup component add rustfmt clippy >/dev/null 2>&1 || true
    fi
    say "cargo fmt --check"
    cargo fmt --all -- --check
    say "cargo clippy"
    cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
fi

say "cargo test"
mkdir -p "$STATE_DIR"
log="$STATE_DIR/test.log"
status=0
cargo test --workspace --all-features --locked "$@" 2>&1 | tee "$log" || status=$?

# One closing line over every test binary and doctest run: the last `test result` line cargo
# prints belongs to whichever crate came last, which may have no tests of its own.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i == "passed;") p += $(i-1); if ($i == "failed;") f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
