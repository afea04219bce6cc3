#!/usr/bin/env bash
# Coverage-guided fuzzing on STABLE Rust without cargo-fuzz: the same instrumentation
# cargo-fuzz uses with `--sanitizer none` (SanitizerCoverage through stable -C flags),
# debug assertions and overflow checks on. Serves both fuzz workspaces (dataplane/fuzz and
# control/fuzz; control/fuzz/run.sh calls this): the target's name says which.
#
#   bash dataplane/fuzz/run.sh TARGET [SECONDS [LIBFUZZER OPTION...]]
#   bash dataplane/fuzz/run.sh --list        # every target, one per line
#   bash dataplane/fuzz/run.sh --build TARGET  # build only; prints the binary's path last
#
# New inputs go to <workspace>/target/corpus-TARGET (git-ignored); the kept seed corpus is
# <workspace>/seeds/TARGET; a crash is written to <workspace>/artifacts/TARGET/. An input
# that runs longer than 10 s is a crash too (a hang), as is a process over 2 GiB.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
workspaces=("$here" "$(cd "$here/../../control/fuzz" && pwd)")
if [ "${1:-}" = --list ]; then
    for ws in "${workspaces[@]}"; do
        for f in "$ws"/fuzz_targets/*.rs; do basename "$f" .rs; done
    done
    exit 0
fi
build_only=
if [ "${1:-}" = --build ]; then
    build_only=1
    shift
fi
target=${1:?target: one of $(bash "$0" --list | tr '\n' ' ')}
secs=${2:-60}
shift $(($# < 2 ? $# : 2))
ws=
for w in "${workspaces[@]}"; do
    [ -f "$w/fuzz_targets/$target.rs" ] && ws=$w
done
[ -n "$ws" ] || { echo "no fuzz target $target" >&2; exit 2; }
cd "$ws"
triple=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# --target keeps RUSTFLAGS away from build scripts (they cannot link the coverage hooks).
cargo build --locked --release --manifest-path Cargo.toml --target-dir target --target "$triple" --bin "$target"
if [ -n "$build_only" ]; then
    echo "$ws/target/$triple/release/$target"
    exit 0
fi
mkdir -p "target/corpus-$target" "artifacts/$target" "seeds/$target"
"target/$triple/release/$target" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="artifacts/$target/" "$@" "target/corpus-$target" "seeds/$target"
