#!/usr/bin/env bash
# The test entry point (the README's test command; .ci/run calls it):
# starts the services, checks formatting and lints, and runs every test in the workspace
# against the real services. Extra arguments go to `cargo test` (e.g. a test name filter).
#
# FOLDLINE_SKIP_LINT=1 skips rustfmt, clippy and rustdoc for a quicker local loop.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust with rustup (https://rustup.rs)"

"$ROOT/scripts/services.sh" up

# foldline-kafka builds librdkafka from its bundled source (rdkafka's `cmake-build`): it needs
# cmake, a C compiler and curl's headers, which librdkafka's sources include even with curl off.
build_deps=()
command -v cmake >/dev/null 2>&1 || build_deps+=(cmake)
command -v cc >/dev/null 2>&1 || build_deps+=(gcc g++ make)
[[ -f /usr/include/curl/curl.h || -f /usr/include/x86_64-linux-gnu/curl/curl.h ]] || build_deps+=(libcurl4-openssl-dev)
if ((${#build_deps[@]})); then
    apt_install "${build_deps[@]}"
fi

# lint_tool COMPONENT CHECK...: whether the cargo subcommand is usable, adding the rustup
# component when it is missing. Says why when it cannot be had.
lint_tool() {
    local component="$1"
    shift
    "$@" >/dev/null 2>&1 && return 0
    if command -v rustup >/dev/null 2>&1; then
        say "installing the $component component with rustup"
        rustup component add "$component" >&2 || true
        "$@" >/dev/null 2>&1 && return 0
    fi
    say "WARNING: skipping the $component step: \`$*\` does not run and rustup could not add" \
        "the component (install it with \`rustup component add $component\`)"
    return 1
}

if [[ "${FOLDLINE_SKIP_LINT:-}" == 1 ]]; then
    say "FOLDLINE_SKIP_LINT=1: skipping cargo fmt, cargo clippy and cargo doc"
else
    if lint_tool rustfmt cargo fmt --version; then
        say "cargo fmt --check"
        cargo fmt --all -- --check
    fi
    if lint_tool clippy cargo clippy --version; then
        say "cargo clippy"
        cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
    fi
    # Broken intra-doc links and other rustdoc warnings fail the run, as clippy's do.
    say "cargo doc"
    RUSTDOCFLAGS="${RUSTDOCFLAGS:-} -D warnings" cargo doc --workspace --all-features --no-deps --lib --locked
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

# What each failed test said, without its backtrace, last: a run's tail is what a CI summary
# keeps, and the panic message is otherwise far above it behind a long backtrace.
if ((status != 0)); then
    awk '/^---- .* stdout ----$/ { name = $2; shown = 0; print "failed: " name; next }
         /^(failures:|successes:)$/ { name = "" }
         name != "" && !/^ +[0-9]+: / && !/^ +at / && !/^stack backtrace:/ && !/^Stack backtrace:/ && !/^note: / && NF && shown < 12 { print "  " $0; shown++ }' "$log"
fi
exit "$status"
