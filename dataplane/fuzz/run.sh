#!/usr/bin/env bash
# Coverage-guided fuzzing on STABLE Rust without cargo-fuzz: the same instrumentation
# cargo-fuzz uses with `--sanitizer none` (SanitizerCoverage through stable -C flags),
# debug assertions and overflow checks on.
#
#   bash dataplane/fuzz/run.sh TARGET [SECONDS]      # TARGET: dhcpv4_repr | frame | options
#
# New inputs go to target/corpus-TARGET (git-ignored); the seed corpus is seeds/TARGET;
# a crash is written to artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?target: dhcpv4_repr, frame or options}
secs=${2:-60}
triple=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# --target keeps RUSTFLAGS away from build scripts (they cannot link the coverage hooks).
cargo build --release --manifest-path Cargo.toml --target-dir target --target "$triple" --bin "$target"
mkdir -p "target/corpus-$target" "artifacts/$target"
"target/$triple/release/$target" -max_total_time="$secs" -artifact_prefix="artifacts/$target/" \
    "target/corpus-$target" "seeds/$target"
