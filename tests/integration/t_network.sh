#!/bin/bash
# t_network: recfsd starts the fabric, the heartbeat and the rpc layer when
# the config names seeds (issue 11, first slice; rpc rows, latency line and
# transaction-max-ms of issue 12).  Two daemons on 127.0.0.1, each seeding the
# other, hear each other (log lines "node ... arrived") and keep serving
# their mounts (one seed is a host name, resolved at start); when one stops, the other logs it departed.  A secret file
# readable by others, or a fabric port already in use, stops a daemon from
# starting with a message naming the file or the address.  (A config with
# no network section starting no socket is what every other test does.)
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

MNT2=$T/mnt2
MNT3=$T/mnt3
mkdir -p "$MNT2" "$MNT3" "$T/work2" "$T/work3" || fail "mkdir"
PID2=
itest_before_stop() {
	local i=0
	grep -qF " $MNT2 fuse" /proc/self/mounts && timeout 10 fusermount3 -u "$MNT2"
	grep -qF " $MNT3 fuse" /proc/self/mounts && timeout 10 fusermount3 -u -z "$MNT3"
	if [ -n "$PID2" ]; then
		while kill -0 "$PID2" 2>/dev/null && [ $i -lt 50 ]; do
			sleep 0.2
			i=$((i + 1))
		done
		kill -KILL "$PID2" 2>/dev/null
	fi
}

# free_port (lib.sh): a TCP port nobody listens on now.
[ "$HAVE_PYTHON" = yes ] || { echo "SKIP: $ITEST_NAME needs python3 to pick free ports"; exit 77; }
PA=$(free_port)
PB=$(free_port)
while [ "$PB" = "$PA" ]; do PB=$(free_port); done

SECRET=$T/secret
printf 'itest-cluster-secret-0123456789\n' >"$SECRET"
chmod 600 "$SECRET"

# network_yaml PORT SEED: the network section (heartbeat 100 ms x 5)
network_yaml() {
	cat <<EOF
network:
  fabric: { address: 127.0.0.1, port: $1 }
  seeds: [ "$2" ]
  heartbeat: { interval-ms: 100, timeout-count: 5 }
  cluster-secret-file: $SECRET
EOF
}

# node_yaml NODE_ID WORKDIR LOG PORT SEED: a small single-namespace node
node_yaml() {
	cat <<EOF
service:
  cluster-name: itest
  node-id: $1
  work-directory: $2
  ticker-interval: 0
logging:
  file: $3
  level: info
namespaces:
  - name: test
    replication-factor: 1
    storage-engine:
      type: memory
      data-size: 64M
      write-block-size: 1M
EOF
	network_yaml "$4" "$5"
}

ID_A=00000000000000a1
ID_B=00000000000000b2
# a's seed is a host name (resolved at start; b dials a too, should it be ::1)
node_yaml $ID_A "$WORK" "$LOG" "$PA" "localhost:$PB" >"$CONF"
node_yaml $ID_B "$T/work2" "$T/b.log" "$PB" "127.0.0.1:$PA" >"$T/b.yaml"

# wait_log FILE PATTERN: up to 10 s for an extended regex in FILE
wait_log() {
	local i=0
	while [ $i -lt 100 ]; do
		grep -qE "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

start_daemon
"$RECFSD" -f -c "$T/b.yaml" "$MNT2" >>"$T/b.out" 2>&1 &
PID2=$!
i=0
until grep -qF " $MNT2 fuse" /proc/self/mounts; do
	kill -0 "$PID2" 2>/dev/null || fail "second recfsd exited: $(tail -n 5 "$T/b.out")"
	[ $i -lt 100 ] || fail "second recfsd did not mount within 10 s"
	sleep 0.1
	i=$((i + 1))
done

if wait_log "$LOG" "heartbeat: node $ID_B at 127.0.0.1:$PB arrived" &&
    wait_log "$T/b.log" "heartbeat: node $ID_A at 127.0.0.1:$PA arrived"; then
	pass "the two nodes hear each other's heartbeats"
else
	bad "no heartbeat arrival logged: $(grep -h 'fabric\|heartbeat\|network' "$LOG" "$T/b.log" | tail -n 10)"
fi
check_true "the fabric start is logged" "$(grep -c "network: fabric listening on 127.0.0.1:$PA, node $ID_A" "$LOG")" -eq 1
sh_ok "node a's mount still serves" 'echo hello > "$1/test/f" && grep -q hello "$1/test/f"' "$MNT"
sh_ok "node b's mount still serves" 'echo hello > "$1/test/g" && grep -q hello "$1/test/g"' "$MNT2"
check_eq "no refusals logged" "$(grep -c 'dropped connection' "$LOG" "$T/b.log" | awk -F: '{ s += $2 } END { print s }')" 0
# the rpc layer runs with the network: its rows, its latency line, its
# deadline.  The two writes above went to their records' masters: between
# them, the nodes proxied (a's calls and requests received are both > 0
# unless both names are mastered on one side - the ids and names are fixed).
for f in rpc_calls_timed_out rpc_late_answers rpc_requests_busy rpc_calls_in_flight; do
	check_eq "rpc row $f is shown" "$(node_value $f)" 0
done
calls=$(node_value rpc_calls)
received=$(node_value rpc_requests_received)
check_true "a's rpc rows show the proxied writes (calls $calls, received $received)" \
	"$((calls + received))" -gt 0
check_eq ".info/latencies has fabric-rpc (a's answered calls)" \
	"$(info_value latencies fabric-rpc.count)" "$(node_value rpc_calls_answered)"
check_true ".info/metrics has the rpc histogram" \
	"$(run cat "$MNT/.info/metrics" | grep -c '^recfs_fabric_rpc_latency_seconds_count ')" -eq 1
check_eq "transaction-max-ms defaults to 1000" "$(run cat "$MNT/.info/config/service/transaction-max-ms")" 1000
sh_ok "transaction-max-ms is dynamic" 'echo 2500 > "$1/.info/config/service/transaction-max-ms"' "$MNT"
check_eq "... and read back" "$(run cat "$MNT/.info/config/service/transaction-max-ms")" 2500

# b stops: a hears silence, then logs the departure
timeout 10 fusermount3 -u "$MNT2"
i=0
while kill -0 "$PID2" 2>/dev/null && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
if kill -0 "$PID2" 2>/dev/null; then
	bad "second recfsd still running 10 s after its unmount"
else
	wait "$PID2"
	check_eq "second recfsd's exit status after its unmount" "$?" 0
fi
PID2=
if wait_log "$LOG" "heartbeat: node $ID_B departed"; then
	pass "node a logs node b's departure"
else
	bad "node a did not log node b's departure"
fi
check_true "node a still serves" "$(cat "$MNT/test/f")" = hello

# a secret file others can read: refused, naming the file
chmod 644 "$SECRET"
node_yaml 00000000000000c3 "$T/work3" "$T/c.log" "$(free_port)" "127.0.0.1:$PA" >"$T/c.yaml"
expect_err "a secret file with mode 0644 stops the start" "cluster-secret-file $SECRET: mode 0644" \
	"$RECFSD" -f -c "$T/c.yaml" "$MNT3"
chmod 600 "$SECRET"
# a fabric port in use (node a's): refused, naming the address
node_yaml 00000000000000c3 "$T/work3" "$T/c.log" "$PA" "127.0.0.1:$PA" >"$T/c.yaml"
expect_err "a fabric port in use stops the start" "cannot listen on 127.0.0.1:$PA: Address already in use" \
	"$RECFSD" -f -c "$T/c.yaml" "$MNT3"
check_true "node a still serves after the refused starts" "$(cat "$MNT/test/f")" = hello

stop_daemon || bad "recfsd exited non-zero"
finish
