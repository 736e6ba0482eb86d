#!/bin/bash
# t_cluster: three real recfsd daemons on 127.0.0.1 (issue 11, clustering).
# Seeds form a chain (a -> c, b -> a, c -> b); every mount's .info/cluster
# then shows the same cluster: size 3, principal c (the highest node id),
# succession c,b,a, one cluster key, integrity.  SIGKILL of the principal:
# the two others show size 2 (principal b) within interval x timeout-count
# + quantum (+ slack for a loaded machine), and the log names who went;
# restarted, it is back: size 3 everywhere.  SIGSTOP of a member (past
# the timeout): the two others show size 2 within the same bound; SIGCONT:
# size 3 again.  The ticker line shows cl-size
# and cl-key, and the cluster statistics are in .info/metrics.
# Self-contained (does not use the cluster harness of tests/integration/cluster_lib.sh).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

[ "$HAVE_PYTHON" = yes ] || { echo "SKIP: $ITEST_NAME needs python3 to pick free ports"; exit 77; }

INTERVAL_MS=100
TIMEOUT_COUNT=5
QUANTUM_MS=$((INTERVAL_MS * (TIMEOUT_COUNT + 2)))   # clustering_quantum_ms
BOUND_MS=$((INTERVAL_MS * TIMEOUT_COUNT + QUANTUM_MS))
SLACK_MS=1000

ID_A=00000000000000a1
ID_B=00000000000000b2
ID_C=00000000000000c3
MNT_B=$T/mnt_b
MNT_C=$T/mnt_c
mkdir -p "$MNT_B" "$MNT_C" "$T/work_b" "$T/work_c" || fail "mkdir"
PID_B=
PID_C=

# stop_extra PIDVAR MNT: unmount (as a user would), then wait, then KILL;
# returns the daemon's exit status
stop_extra() {
	local pid=${!1} i=0 rc=0
	grep -qF " $2 fuse" /proc/self/mounts && { timeout 10 fusermount3 -u "$2" || timeout 10 fusermount3 -u -z "$2"; }
	if [ -n "$pid" ]; then
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do
			sleep 0.2
			i=$((i + 1))
		done
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		rc=$?
	fi
	eval "$1="
	return $rc
}
itest_before_stop() {
	stop_extra PID_B "$MNT_B"
	stop_extra PID_C "$MNT_C"
}

PA=$(free_port)
PB=$(free_port "$PA")
PC=$(free_port "$PA" "$PB")

SECRET=$T/secret
printf 'itest-cluster-secret-0123456789\n' >"$SECRET"
chmod 600 "$SECRET"

# node_yaml NODE_ID WORKDIR LOG PORT SEED TICKER
node_yaml() {
	cat <<EOF
service:
  cluster-name: itest
  node-id: $1
  work-directory: $2
  ticker-interval: $6
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
network:
  fabric: { address: 127.0.0.1, port: $4 }
  seeds: [ "$5" ]
  heartbeat: { interval-ms: $INTERVAL_MS, timeout-count: $TIMEOUT_COUNT }
  cluster-secret-file: $SECRET
EOF
}
node_yaml $ID_A "$WORK" "$LOG" "$PA" "127.0.0.1:$PC" 1 >"$CONF"
node_yaml $ID_B "$T/work_b" "$T/b.log" "$PB" "127.0.0.1:$PA" 0 >"$T/b.yaml"
node_yaml $ID_C "$T/work_c" "$T/c.log" "$PC" "127.0.0.1:$PB" 0 >"$T/c.yaml"

# start_extra PIDVAR MNT CONF OUT: a daemon in the background, mounted
start_extra() {
	local i=0
	"$RECFSD" -f -c "$3" "$2" >>"$4" 2>&1 &
	eval "$1=$!"
	until grep -qF " $2 fuse" /proc/self/mounts && timeout 2 test -e "$2/.info/build"; do
		kill -0 "${!1}" 2>/dev/null || fail "recfsd ($3) exited: $(tail -n 5 "$4")"
		[ $i -lt 100 ] || fail "recfsd ($3) did not mount within 10 s"
		sleep 0.1
		i=$((i + 1))
	done
}

# cl MNT NAME: a row of MNT/.info/cluster
cl() {
	timeout 5 cat "$1/.info/cluster" 2>/dev/null |
		awk -v k="$2" 'index($0, "=") { n = substr($0, 1, index($0, "=") - 1);
			if (n == k) { print substr($0, index($0, "=") + 1); exit } }'
}
# view MNT: "size principal succession key integrity" on one line
# one read of the mount's .info/cluster (a loaded machine takes tens of ms
# per read: five reads per mount made the waits late by hundreds of ms)
view() {
	timeout 5 cat "$1/.info/cluster" 2>/dev/null |
		awk 'index($0, "=") { v[substr($0, 1, index($0, "=") - 1)] = substr($0, index($0, "=") + 1) }
			END { print v["cluster_size"] " " v["cluster_principal"] " " v["cluster_succession"] " " \
			    v["cluster_key"] " " v["cluster_integrity"] }'
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# agree SIZE PRINCIPAL SUCCESSION MNT...: every mount shows that cluster, one key, integrity
agree() {
	local size=$1 principal=$2 succession=$3 key= m v
	shift 3
	for m in "$@"; do
		read -r -a v <<<"$(view "$m")"
		[ "${v[0]}" = "$size" ] && [ "${v[1]}" = "$principal" ] && [ "${v[2]}" = "$succession" ] &&
			[ "${v[4]}" = true ] && [ "${v[3]}" != 0000000000000000 ] || return 1
		[ -z "$key" ] || [ "$key" = "${v[3]}" ] || return 1
		key=${v[3]}
	done
	echo "$key"
}
# wait_agree MS SIZE PRINCIPAL SUCCESSION MNT...: up to MS ms; prints the ms taken
wait_agree() {
	local limit=$1 t0 
	shift
	t0=$(now_ms)
	while ! agree "$@" >/dev/null; do
		[ $(($(now_ms) - t0)) -lt "$limit" ] || return 1
		sleep 0.05
	done
	echo $(($(now_ms) - t0))
}

start_daemon
start_extra PID_B "$MNT_B" "$T/b.yaml" "$T/b.out"
start_extra PID_C "$MNT_C" "$T/c.yaml" "$T/c.out"

if took=$(wait_agree 20000 3 $ID_C "$ID_C,$ID_B,$ID_A" "$MNT" "$MNT_B" "$MNT_C"); then
	pass "3 nodes: every mount shows size 3, principal c, succession c,b,a, one key ($took ms)"
else
	bad "no agreement on 3 nodes: a: $(view "$MNT") b: $(view "$MNT_B") c: $(view "$MNT_C")"
fi
key3=$(agree 3 $ID_C "$ID_C,$ID_B,$ID_A" "$MNT" "$MNT_B" "$MNT_C")
check_eq "cluster_name" "$(cl "$MNT_B" cluster_name)" itest
check_true "cluster_change_time is a UTC time" "$(cl "$MNT" cluster_change_time | grep -cE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$')" -eq 1
check_true "cluster_changes counted on a ($(cl "$MNT" cluster_changes))" "$(cl "$MNT" cluster_changes)" -ge 1
check_true "cluster_proposals counted on the principal" "$(cl "$MNT_C" cluster_proposals)" -ge 1
check_eq "cluster_nodes_left_out: none, every node answers" "$(cl "$MNT_C" cluster_nodes_left_out)" 0
check_eq "statistics cluster_size 3" "$(node_value cluster_size)" 3
metrics=$(timeout 5 cat "$MNT/.info/metrics")
check_true "metrics: recfs_cluster_changes_total" "$(grep -cE '^recfs_cluster_changes_total [1-9]' <<<"$metrics")" -eq 1
check_true "metrics: recfs_cluster_size 3" "$(grep -cE '^recfs_cluster_size 3$' <<<"$metrics")" -eq 1
check_true "metrics: cluster key label" "$(grep -cF "recfs_cluster_key_info{cluster_key=\"$key3\"} 1" <<<"$metrics")" -eq 1
if command -v promtool >/dev/null 2>&1; then
	out=$(promtool check metrics <<<"$metrics" 2>&1)
	check_eq "promtool check metrics is clean" "$out" ""
fi
i=0
until grep -qE "ticker: cl-size=3 cl-key=$key3 cl-principal=$ID_C cl-integrity=true" "$LOG" || [ $i -ge 40 ]; do
	sleep 0.1
	i=$((i + 1))
done
check_true "the ticker line shows cl-size and cl-key" "$(grep -cE "ticker: cl-size=3 cl-key=$key3 " "$LOG")" -ge 1
sh_ok "node a's mount serves" 'echo hello > "$1/test/f" && grep -q hello "$1/test/f"' "$MNT"

# SIGKILL of the principal: the two others agree on 2 within the bound
kill -KILL "$PID_C"
wait "$PID_C" 2>/dev/null
PID_C=
timeout 10 fusermount3 -u -z "$MNT_C"
if took=$(wait_agree $((BOUND_MS + SLACK_MS)) 2 $ID_B "$ID_B,$ID_A" "$MNT" "$MNT_B"); then
	pass "principal killed: a and b show size 2, principal b after $took ms (interval x timeout-count + quantum = $BOUND_MS ms)"
else
	bad "no 2-node cluster within $((BOUND_MS + SLACK_MS)) ms: a: $(view "$MNT") b: $(view "$MNT_B")"
fi
key2=$(agree 2 $ID_B "$ID_B,$ID_A" "$MNT" "$MNT_B")
check_true "a new cluster key ($key2 after $key3)" "$key2" != "$key3"
check_true "a logs the change naming who went" "$(grep -cE "clustering: cluster key $key2, 2 nodes, principal $ID_B .*went \[$ID_C\]" "$LOG")" -eq 1
check_true "cluster_change_cause on b names it" "$(cl "$MNT_B" cluster_change_cause | grep -cE "node $ID_C left|left")" -eq 1

# restarted: back to 3
start_extra PID_C "$MNT_C" "$T/c.yaml" "$T/c.out"
if took=$(wait_agree 20000 3 $ID_C "$ID_C,$ID_B,$ID_A" "$MNT" "$MNT_B" "$MNT_C"); then
	pass "restarted: size 3 on every mount again ($took ms)"
else
	bad "no 3-node cluster after the restart: a: $(view "$MNT") b: $(view "$MNT_B") c: $(view "$MNT_C")"
fi
check_true "a logs who came" "$(grep -cE "clustering: cluster key [0-9a-f]{16}, 3 nodes, principal $ID_C .*came \[$ID_C\]" "$LOG")" -ge 1
# (f itself may be gone: at replication-factor 1 a record lives on its
# master only, and c, with a memory namespace, may have been it)
sh_ok "node a still serves" 'echo again > "$1/test/f2" && grep -q again "$1/test/f2"' "$MNT"

# SIGSTOP of a member (b) past the timeout: a and c agree on 2 within the
# bound (nothing reads b's mount meanwhile); SIGCONT: back to 3
kill -STOP "$PID_B"
if took=$(wait_agree $((BOUND_MS + SLACK_MS)) 2 $ID_C "$ID_C,$ID_A" "$MNT" "$MNT_C"); then
	pass "member stopped: a and c show size 2, principal c after $took ms (bound $BOUND_MS ms)"
else
	bad "no 2-node cluster within $((BOUND_MS + SLACK_MS)) ms of SIGSTOP: a: $(view "$MNT") c: $(view "$MNT_C")"
fi
kill -CONT "$PID_B"
if took=$(wait_agree 20000 3 $ID_C "$ID_C,$ID_B,$ID_A" "$MNT" "$MNT_B" "$MNT_C"); then
	pass "continued: size 3 on every mount again ($took ms)"
else
	bad "no 3-node cluster after SIGCONT: a: $(view "$MNT") b: $(view "$MNT_B") c: $(view "$MNT_C")"
fi

stop_extra PID_C "$MNT_C"
check_eq "node c's exit status after its unmount (also under ASan+UBSan)" "$?" 0
stop_extra PID_B "$MNT_B"
check_eq "node b's exit status after its unmount" "$?" 0
stop_daemon || bad "recfsd exited non-zero"
finish
