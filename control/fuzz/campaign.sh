#!/usr/bin/env bash
# A long fuzzing campaign over every target of both fuzz workspaces, one after the other,
# each for an equal share of the time, on one core at the lowest priority (others build on
# the machine). Prints each target's executions, coverage and crashes at the end.
#
#   bash control/fuzz/campaign.sh HOURS [TARGET...]     # default: every target
#
# FUZZ_CPU picks the core (default 1). Logs go to control/fuzz/target/campaign/TARGET.log;
# inputs found to each workspace's target/corpus-TARGET (kept between campaigns), crashes to
# its artifacts/TARGET/. Rounds: the time is cut into ROUNDS passes over the targets
# (default 4), so a campaign stopped early has still given every target a share.
# EXECS=N (for example 10000000) is a goal per target: a target stops once it has run N
# inputs in this campaign, and its unused time goes to the targets still short of theirs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
run=$here/../../dataplane/fuzz/run.sh
hours=${1:?hours}
shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(bash "$run" --list)
rounds=${ROUNDS:-4}
cpu=${FUZZ_CPU:-1}
logs=$here/target/campaign
mkdir -p "$logs"
# Build everything first, so the clock runs only while fuzzing.
for t in "${targets[@]}"; do
    bash "$run" --build "$t" > "$logs/$t.build.log" 2>&1 || { cat "$logs/$t.build.log"; exit 1; }
done
total=$(awk "BEGIN { printf \"%d\", $hours * 3600 }")
share=$((total / rounds / ${#targets[@]}))
[ "$share" -ge 1 ] || share=1
echo "campaign: ${#targets[@]} targets, $rounds rounds of ${share} s each, core $cpu, $(date -u +%FT%TZ)"
declare -A execs
for t in "${targets[@]}"; do execs[$t]=0; : > "$logs/$t.log"; done
goal=${EXECS:-0}
deadline=$(($(date +%s) + total))
for r in $(seq 1 "$rounds"); do
    for i in "${!targets[@]}"; do
        t=${targets[$i]}
        runs=()
        if [ "$goal" -gt 0 ]; then
            [ "${execs[$t]}" -lt "$goal" ] || continue
            runs=(-runs=$((goal - execs[$t])))
            # Time left, shared by this target and those after it in the round that are
            # still short of the goal (with the later rounds' shares).
            short=0
            for u in "${targets[@]:$i}"; do [ "${execs[$u]}" -lt "$goal" ] && short=$((short + 1)); done
            left=$((deadline - $(date +%s)))
            [ "$left" -gt 0 ] || break 2
            share=$((left / (short + (rounds - r) * ${#targets[@]})))
            [ "$share" -ge 1 ] || share=1
        fi
        one=$logs/$t.round.log
        taskset -c "$cpu" nice -n 19 bash "$run" "$t" "$share" -print_final_stats=1 "${runs[@]}" \
            > "$one" 2>&1 || echo "round $r: $t stopped with a crash (see $logs/$t.log)"
        # The final stats, or (after a crash) the last status line.
        n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$one" | tail -n 1)
        [ -n "$n" ] || n=$(grep -o '^#[0-9]*' "$one" | tail -n 1 | tr -d '#')
        execs[$t]=$((execs[$t] + ${n:-0}))
        cat "$one" >> "$logs/$t.log"
        rm -f "$one"
        echo "round $r: $t at ${execs[$t]} execs ($(date -u +%T))"
    done
done
# The stores the targets left in /dev/shm (of processes that are gone).
for d in /dev/shm/tandem-fuzz-*-*; do [ -e "/proc/${d##*-}" ] || rm -rf "$d"; done
printf '\n%-18s %14s %8s %8s %s\n' target execs cov corpus crashes
for t in "${targets[@]}"; do
    ws=$(dirname "$(bash "$run" --build "$t" 2>/dev/null | tail -n 1)")
    ws=${ws%/target/*}
    cov=$(grep -o 'cov: [0-9]*' "$logs/$t.log" | tail -n 1 | grep -o '[0-9]*' || echo '?')
    corpus=$(find "$ws/target/corpus-$t" -type f | wc -l)
    crashes=$(find "$ws/artifacts/$t" -type f 2>/dev/null | wc -l)
    printf '%-18s %14d %8s %8d %d %s\n' "$t" "${execs[$t]}" "$cov" "$corpus" "$crashes" \
        "$([ "$crashes" -gt 0 ] && echo "($ws/artifacts/$t)")"
done
