#!/usr/bin/env bash
# Coverage-guided fuzzing of a control-plane target on stable Rust: see dataplane/fuzz/run.sh,
# which serves both fuzz workspaces.
#
#   bash control/fuzz/run.sh TARGET [SECONDS [LIBFUZZER OPTION...]]
exec bash "$(dirname "$0")/../../dataplane/fuzz/run.sh" "$@"
