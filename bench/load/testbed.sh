# The testbed the load scripts share; sourced (`. bench/load/testbed.sh`) by packet-vs-kea.sh,
# xdp-vs-packet.sh, side-by-side.sh, table-size.sh and flood.sh after they cd to the repository root.
# Not run on its own.
#
#   tb_require NAME [TOOL...]    exit 1 (naming NAME) unless root and every TOOL is on PATH
#   tb_veth NS_A IF_A ADDR_A NS_B IF_B ADDR_B
#                                a veth IF_A (in NS_A, ADDR_A as a.b.c.d/len) to IF_B (in NS_B),
#                                both up; creates either namespace (lo up) if it is not there
#   tb_del_ns NS...              deletes the namespaces; absent ones are fine
#   tb_stop_pid PID [TENTHS]     SIGTERM, up to TENTHS (50) tenths of a second to exit, SIGKILL,
#                                reap; nothing for an empty PID
#   tb_start_tandemd DIR         $TANDEMD in $NS_S on $SERVER_CPU with DIR/tandemd.toml; waits for
#                                DIR/data/tandemd.sock; sets SERVER_PID
#   tb_stop_server               tb_stop_pid of $SERVER_PID, saying so if it had already exited
#                                (a crash during the run), then clears it
#
# Processes are ended by pid only, every wait is bounded, and nothing here touches a namespace
# or an interface it was not named.

tb_require() { # $1: the script's name, then the tools it needs
  local name=$1 tool
  shift
  if [ "$(id -u)" -ne 0 ]; then
    echo "$name: builds network namespaces: run it as root" >&2
    exit 1
  fi
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "$name: $tool not found" >&2; exit 1; }
  done
}

tb_veth() { # $1: ns a, $2: iface a, $3: addr a, $4: ns b, $5: iface b, $6: addr b
  local ns
  for ns in "$1" "$4"; do
    [ -e "/run/netns/$ns" ] && continue
    ip netns add "$ns"
    ip -n "$ns" link set lo up
  done
  ip link add "$2" netns "$1" type veth peer name "$5" netns "$4"
  ip -n "$1" addr add "$3" dev "$2"
  ip -n "$4" addr add "$6" dev "$5"
  ip -n "$1" link set "$2" up
  ip -n "$4" link set "$5" up
}

tb_del_ns() { # namespaces...
  local ns
  for ns in "$@"; do ip netns del "$ns" 2>/dev/null || true; done
}

tb_stop_pid() { # $1: pid, $2: tenths of a second it has after SIGTERM (50)
  local p=$1 tenths=${2:-50}
  [ -n "$p" ] || return 0
  kill -TERM "$p" 2>/dev/null || true
  for _ in $(seq "$tenths"); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}

tb_start_tandemd() { # $1: run dir holding tandemd.toml (data_dir $1/data); sets SERVER_PID
  # In $NS_S on $SERVER_CPU; ready when the admin socket exists (tables created, workers up).
  ip netns exec "$NS_S" taskset -c "$SERVER_CPU" "$TANDEMD" --config "$1/tandemd.toml" \
    >"$1/server.log" 2>&1 &
  SERVER_PID=$!
  tb_wait_sock "$1/data" "$SERVER_PID" "$1/server.log"
}

tb_wait_sock() { # $1: data dir, $2: tandemd's pid, $3: its log; at most 30 s
  for _ in $(seq 300); do
    [ -S "$1/tandemd.sock" ] && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  echo "tandemd did not start:" >&2; cat "$3" >&2; return 1
}

tb_stop_server() {
  if [ -n "${SERVER_PID:-}" ]; then
    kill -0 "$SERVER_PID" 2>/dev/null || echo "server pid $SERVER_PID had exited before the end of its run" >&2
    tb_stop_pid "$SERVER_PID"
    SERVER_PID=
  fi
}
