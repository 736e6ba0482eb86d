# cluster_lib.sh - a cluster of real recfsd nodes for integration tests
# (sourced, not run; issue 11 item 6).
#
#   . "$top_srcdir/tests/integration/cluster_lib.sh"   # sources lib.sh if needed
#   cluster_start 3                  # 3 nodes on 127.0.0.1, distinct ports
#   cluster_start 5 --netns          # or each node in its own network namespace
#   cluster_wait_log n1 "node $(cluster_id n2) at .* arrived"
#   cluster_isolate n2; ...; cluster_heal n2
#   cluster_wait_size 3
#   finish
#
# Nodes are named n1..nN.  Node nK has a node id (cluster_id nK: K in hex,
# zero-padded to 16 digits, so n<N> is the highest and the principal-to-be),
# a config, a work directory, a log and a mount under $T/cl/nK
# (cluster_mnt nK, cluster_log nK), and a fabric address (cluster_addr nK):
#   - loopback (default): 127.0.0.1 with a free port below the kernel's
#     ephemeral range (lib.sh free_port);
#   - --netns: 10.213.0.(K+1):3001 inside namespace $CLUSTER_NS_PREFIX-nK,
#     whose veth ("eth0") is plugged into a bridge in a namespace of the
#     harness's own ($CLUSTER_NS_PREFIX-br).  Both ends of every veth are
#     created inside those namespaces: the host's own network (interfaces,
#     routes, firewall) is never touched.  A node runs under
#     `nsenter --net=...`, which changes only its network namespace, so its
#     FUSE mount is in the test's mount namespace (`ip netns exec` would
#     unshare the mount namespace and hide it).  Needs root.
#
# Seeds: by default each node seeds the one before it (n1 seeds nN), so the
# mesh is learnt from pulses; CLUSTER_SEEDS_nK="n1 n3" (node names) replaces
# a node's seeds.  Heartbeat: CLUSTER_HB_INTERVAL_MS (100) x
# CLUSTER_HB_TIMEOUT_COUNT (5).  One secret file (mode 0600) for all;
# CLUSTER_SECRET_nK names another file for one node, CLUSTER_NAME_nK another
# cluster-name, CLUSTER_ID_nK another node id (16 hex digits).
# CLUSTER_EXTRA_YAML is appended to every config, right after the network
# section's keys (so "  tls: {...}" lands in it); CLUSTER_EXTRA_YAML_nK,
# when set (also to ""), replaces it for one node.  CLUSTER_RF (1) is the
# replication-factor of namespace "test"; CLUSTER_ENGINE=device puts it on
# the device engine (a file in the node's work directory, kept by
# cluster_restart), else it is a memory namespace without shadow;
# CLUSTER_ENGINE_SETTINGS="key:value ..." are its storage-engine settings
# besides type (and files) (default device "filesize:64M
# write-block-size:1M", memory "data-size:64M write-block-size:1M");
# CLUSTER_ENGINE_nK and CLUSTER_ENGINE_SETTINGS_nK replace both for one node.
#
# Growth: cluster_add_node starts n(N+1) seeding every running node (in
# its own namespace with --netns); it is then n$CLUSTER_N.
#
# Faults: cluster_kill nK (SIGKILL, mount detached), cluster_stop/cont nK
# (SIGSTOP/SIGCONT), cluster_restart nK (clean stop if running, then start on
# the same storage, its config rewritten from the CLUSTER_* settings), and
# with --netns: cluster_isolate nK [--oneway] (link down both ways;
# --oneway: an nftables drop of what nK receives: nK hears no one, while
# its pulses still reach the others until TCP's unacknowledged window
# fills), cluster_heal nK, cluster_split "n1 n2 n3" "n4 n5"
# (nftables drops between the groups, in every node's namespace),
# cluster_heal_all.
#
# Waits, each bounded by CLUSTER_WAIT_S (20) seconds, return 1 on timeout:
# cluster_wait_size K [nodes...] (cluster_size in .info/cluster on each
# mount), cluster_wait_agree K [nodes...] (cluster_size K and one
# cluster_key and principal on all; cluster_view nK prints those three
# from one read), cluster_wait_log nK PATTERN [MARK] (extended regex in nK's log,
# in the lines after MARK = an earlier cluster_mark nK).
#
# Cleanup (lib.sh's EXIT trap calls itest_before_stop, defined here; a test
# that needs its own hook defines cluster_test_before_stop): a failed test
# (a check or a FATAL) prints each node's last membership and log lines
# (ITEST_KEEP_ON_FAIL=1 keeps the whole logs: lib.sh); every node is
# continued, unmounted, stopped (TERM, then KILL, by pid) and its mount
# detached; the namespaces (and with them veths, bridge and nft tables) are
# deleted.  Node pids are also kept in $T/cluster.pid so lib.sh's watchdog
# kills them when a test overruns.

if ! type itest_cleanup >/dev/null 2>&1; then
	. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"
fi

: "${CLUSTER_HB_INTERVAL_MS:=100}"
: "${CLUSTER_HB_TIMEOUT_COUNT:=5}"
: "${CLUSTER_WAIT_S:=20}"
: "${CLUSTER_NS_PREFIX:=rcfs$$}"
CLUSTER_N=0
CLUSTER_NETNS=no
CLUSTER_DIR=$T/cl
CLUSTER_SUBNET=10.213.0
CLUSTER_NETNS_PORT=3001
declare -a CL_PID=() CL_ADDR=()

# ---- names ------------------------------------------------------------------

# cluster_k nK -> K (fails the test on a bad name)
cluster_k() {
	local k=${1#n}
	case $k in '' | *[!0-9]*) fail "cluster: bad node name '$1'" ;; esac
	[ "$k" -ge 1 ] && [ "$k" -le "$CLUSTER_N" ] || fail "cluster: no node $1 (cluster of $CLUSTER_N)"
	echo "$k"
}
cluster_id() {
	local k var
	k=$(cluster_k "$1")
	var=CLUSTER_ID_n$k
	if [ -n "${!var:-}" ]; then echo "${!var}"; else printf '%016x\n' "$k"; fi
}
cluster_dir() { echo "$CLUSTER_DIR/n$(cluster_k "$1")"; }
cluster_mnt() { echo "$(cluster_dir "$1")/mnt"; }
cluster_log() { echo "$(cluster_dir "$1")/recfsd.log"; }
cluster_addr() { echo "${CL_ADDR[$(cluster_k "$1")]}"; }
cluster_pid() { echo "${CL_PID[$(cluster_k "$1")]}"; }
cluster_ns() { echo "$CLUSTER_NS_PREFIX-n$(cluster_k "$1")"; }
cluster_nodes() {
	local k
	for ((k = 1; k <= CLUSTER_N; k++)); do echo "n$k"; done
}

cluster_is_mounted() {
	grep -qF " $(cluster_mnt "$1") fuse" /proc/self/mounts 2>/dev/null
}

# cluster_info nK NAME: the value of NAME in nK's .info/cluster ("" if absent)
cluster_info() {
	run cat "$(cluster_mnt "$1")/.info/cluster" 2>/dev/null |
		awk -v k="$2" 'index($0, "=") { n = substr($0, 1, index($0, "=") - 1);
			if (n == k) { print substr($0, index($0, "=") + 1); exit } }'
}

# cluster_ns_stat nK NAME: NAME in nK's .info/namespace/test.
cluster_ns_stat() {
	run cat "$(cluster_mnt "$1")/.info/namespace/test" | awk -F= -v k="$2" '$1 == k { print $2; exit }'
}

# cluster_settled NODES...: migrate_partitions_remaining reaches 0 on each,
# a check per node; at most 30 s each, polled every CLUSTER_SETTLE_POLL
# seconds (0.1 by default).
cluster_settled() {
	local n left i poll=${CLUSTER_SETTLE_POLL:-0.1} tries
	tries=$(awk -v p="$poll" 'BEGIN { print int(30 / p) }')
	for n in "$@"; do
		left=x
		for ((i = 0; i < tries; i++)); do
			left=$(cluster_info "$n" migrate_partitions_remaining)
			[ "$left" = 0 ] && break
			sleep "$poll"
		done
		check_eq "$n: migrate_partitions_remaining reaches 0" "$left" 0
	done
}

# ---- configs ----------------------------------------------------------------

# cluster_free_port: a free port none of this cluster's nodes has been
# given (they are all picked before the first node binds its own).
cluster_free_port() {
	local k taken=()
	for ((k = 1; k <= 8; k++)); do
		[ -n "${CL_ADDR[k]:-}" ] && taken+=("${CL_ADDR[k]##*:}")
	done
	free_port "${taken[@]}"
}

cluster_write_config() {
	local k=$1 d=$CLUSTER_DIR/n$1 seeds s var list="" port addr
	var=CLUSTER_SEEDS_n$k
	if [ -n "${!var:-}" ]; then
		seeds=${!var}
	elif [ "$k" -eq 1 ]; then
		seeds=n$CLUSTER_N
	else
		seeds=n$((k - 1))
	fi
	for s in $seeds; do
		list="$list${list:+, }\"${CL_ADDR[$(cluster_k "$s")]}\""
	done
	addr=${CL_ADDR[$k]%:*}
	port=${CL_ADDR[$k]##*:}
	var=CLUSTER_SECRET_n$k
	local secret=${!var:-$CLUSTER_DIR/secret}
	var=CLUSTER_NAME_n$k
	local name=${!var:-itest}
	var=CLUSTER_EXTRA_YAML_n$k
	local extra=${!var-${CLUSTER_EXTRA_YAML:-}}
	local engine="      type: memory"
	var=CLUSTER_ENGINE_n$k
	local kind=${!var:-${CLUSTER_ENGINE:-memory}}
	var=CLUSTER_ENGINE_SETTINGS_n$k
	local s settings=${!var:-${CLUSTER_ENGINE_SETTINGS:-data-size:64M write-block-size:1M}}
	if [ "$kind" = device ]; then
		engine="      type: device
      files: [ $d/work/test.dat ]"
		settings=${!var:-${CLUSTER_ENGINE_SETTINGS:-filesize:64M write-block-size:1M}}
	fi
	for s in $settings; do   # "key:value" words
		engine="$engine
      ${s%%:*}: ${s#*:}"
	done
	cat >"$d/recfs.yaml" <<EOF
# generated by tests/integration/cluster_lib.sh for $ITEST_NAME, node n$k
service:
  cluster-name: $name
  node-id: $(cluster_id "n$k")
  work-directory: $d/work
  ticker-interval: 0
logging:
  file: $d/recfsd.log
  level: info
fuse:
  threads: 4
namespaces:
  - name: test
    replication-factor: ${CLUSTER_RF:-1}
    storage-engine:
$engine
network:
  fabric: { address: $addr, port: $port }
  seeds: [ $list ]
  heartbeat: { interval-ms: $CLUSTER_HB_INTERVAL_MS, timeout-count: $CLUSTER_HB_TIMEOUT_COUNT }
  cluster-secret-file: $secret
$extra
EOF
}

# ---- namespaces ---------------------------------------------------------------

cluster_netns_setup() {
	local br=$CLUSTER_NS_PREFIX-br k ns
	[ "$(id -u)" -eq 0 ] || fail "cluster_start --netns needs root (network namespaces)"
	command -v ip >/dev/null 2>&1 || fail "cluster_start --netns needs ip (iproute2)"
	ip netns add "$br" || fail "ip netns add $br"
	echo "$br" >>"$CLUSTER_DIR/netns"
	ip -n "$br" link add br0 type bridge || fail "bridge in $br"
	ip -n "$br" link set br0 up
	ip -n "$br" link set lo up
	for ((k = 1; k <= CLUSTER_N; k++)); do
		cluster_netns_add "$k"
	done
}

# cluster_netns_add K: node K's namespace, plugged into the bridge.
cluster_netns_add() {
	local k=$1 br=$CLUSTER_NS_PREFIX-br ns=$CLUSTER_NS_PREFIX-n$1
	ip netns add "$ns" || fail "ip netns add $ns"
	echo "$ns" >>"$CLUSTER_DIR/netns"
	# both ends born inside the namespaces: nothing in the host's
	ip -n "$br" link add "v$k" type veth peer name eth0 netns "$ns" || fail "veth for n$k"
	ip -n "$br" link set "v$k" master br0 up
	ip -n "$ns" link set lo up
	ip -n "$ns" addr add "$CLUSTER_SUBNET.$((k + 1))/24" dev eth0
	ip -n "$ns" link set eth0 up
}

# The firewall of a node's namespace: nftables if installed, else iptables.
cluster_fw() {
	local ns=$1
	shift
	if command -v nft >/dev/null 2>&1; then
		ip netns exec "$ns" nft "$@"
	else
		fail "cluster: nftables (nft) is needed for firewall faults (scripts/install-deps.sh)"
	fi
}

# The live node pids, for lib.sh's watchdog.
cluster_save_pids() {
	local k
	for ((k = 1; k <= CLUSTER_N; k++)); do
		[ -n "${CL_PID[k]:-}" ] && echo "${CL_PID[k]}"
	done >"$T/cluster.pid"
}

# ---- daemons --------------------------------------------------------------------

cluster_start_node() {
	local k=$(cluster_k "$1") d i mnt
	d=$CLUSTER_DIR/n$k
	mnt=$d/mnt
	if [ "$CLUSTER_NETNS" = yes ]; then
		nsenter --net="/run/netns/$CLUSTER_NS_PREFIX-n$k" \
			"$RECFSD" -f -c "$d/recfs.yaml" "$mnt" >>"$d/daemon.out" 2>&1 &
	else
		"$RECFSD" -f -c "$d/recfs.yaml" "$mnt" >>"$d/daemon.out" 2>&1 &
	fi
	CL_PID[k]=$!
	cluster_save_pids
	for ((i = 0; i < 200; i++)); do   # every 50 ms, 10 s at most
		if grep -qF " $mnt fuse" /proc/self/mounts && timeout 2 test -e "$mnt/.info/build"; then
			note "n$k: recfsd pid ${CL_PID[k]} at ${CL_ADDR[k]}, mounted at $mnt"
			return 0
		fi
		if ! kill -0 "${CL_PID[k]}" 2>/dev/null; then
			wait "${CL_PID[k]}"
			local rc=$?
			CL_PID[k]=
			cluster_save_pids
			fail "n$k: recfsd exited with $rc before mounting: $(tail -n 20 "$d/daemon.out")"
		fi
		sleep 0.05
	done
	fail "n$k: recfsd did not mount $mnt within 10 s"
}

# cluster_start N [--netns]: configs for N nodes, then the nodes in order.
cluster_start() {
	local n=$1 k
	shift
	[ "$CLUSTER_N" -eq 0 ] || fail "cluster_start: a cluster is running (cluster_destroy first)"
	case $n in [3-8]) ;; *) fail "cluster_start: 3 to 8 nodes, not '$n'" ;; esac
	CLUSTER_NETNS=no
	[ "${1:-}" = --netns ] && CLUSTER_NETNS=yes
	[ "$CLUSTER_NETNS" = yes ] || [ "$HAVE_PYTHON" = yes ] || fail "cluster_start needs python3 to pick free ports"
	CLUSTER_N=$n
	rm -rf "$CLUSTER_DIR"
	mkdir -p "$CLUSTER_DIR" || fail "mkdir $CLUSTER_DIR"
	printf 'itest-cluster-secret-%s\n' "$$-$RANDOM$RANDOM" >"$CLUSTER_DIR/secret"
	chmod 600 "$CLUSTER_DIR/secret"
	for ((k = 1; k <= n; k++)); do
		mkdir -p "$CLUSTER_DIR/n$k/mnt" "$CLUSTER_DIR/n$k/work"
		if [ "$CLUSTER_NETNS" = yes ]; then
			CL_ADDR[k]=$CLUSTER_SUBNET.$((k + 1)):$CLUSTER_NETNS_PORT
		else
			CL_ADDR[k]=127.0.0.1:$(cluster_free_port)
		fi
	done
	[ "$CLUSTER_NETNS" = yes ] && cluster_netns_setup
	for ((k = 1; k <= n; k++)); do
		cluster_write_config "$k"
	done
	for ((k = 1; k <= n; k++)); do
		cluster_start_node "n$k"
	done
}

# cluster_start_n4_away: four nodes started and agreed, then n4 stopped
# and n1-n3 agreed without it - a 3-node cluster that n4 (its config,
# id and port known) joins later with cluster_restart n4.
cluster_start_n4_away() {
	cluster_start 4
	cluster_wait_agree 4 || fail "no cluster of 4"
	cluster_down n4
	cluster_wait_agree 3 n1 n2 n3 || fail "no cluster of 3 after n4 stopped"
}

# cluster_add_node: a new node n(N+1) of a running cluster (at most 8), on
# loopback or in its own namespace like the others, seeding every node
# that runs now (unless CLUSTER_SEEDS_n(N+1) says otherwise); it is then
# n$CLUSTER_N (call it in the test's shell, not in $(...): the node is
# this shell's child).  The other nodes' configs are not rewritten: they
# learn it from its pulses.
cluster_add_node() {
	local k=$((CLUSTER_N + 1)) n seeds=""
	[ "$CLUSTER_N" -ge 3 ] || fail "cluster_add_node: no cluster running"
	[ "$k" -le 8 ] || fail "cluster_add_node: 8 nodes at most"
	for n in $(cluster_nodes); do
		[ -n "$(cluster_pid "$n")" ] && seeds="$seeds${seeds:+ }$n"
	done
	[ -n "$seeds" ] || fail "cluster_add_node: no running node to seed"
	mkdir -p "$CLUSTER_DIR/n$k/mnt" "$CLUSTER_DIR/n$k/work" || fail "mkdir for n$k"
	if [ "$CLUSTER_NETNS" = yes ]; then
		CL_ADDR[k]=$CLUSTER_SUBNET.$((k + 1)):$CLUSTER_NETNS_PORT
		cluster_netns_add "$k"
	else
		CL_ADDR[k]=127.0.0.1:$(cluster_free_port)
	fi
	CL_PID[k]=
	CLUSTER_N=$k
	local var=CLUSTER_SEEDS_n$k
	[ -n "${!var:-}" ] || declare -g "$var=$seeds"
	cluster_write_config "$k"
	cluster_start_node "n$k"
}

cluster_kill() {
	local k=$(cluster_k "$1") mnt
	mnt=$(cluster_mnt "$1")
	if [ -n "${CL_PID[k]}" ]; then
		kill -KILL "${CL_PID[k]}" 2>/dev/null
		wait "${CL_PID[k]}" 2>/dev/null
		CL_PID[k]=
		cluster_save_pids
	fi
	if grep -qF " $mnt fuse" /proc/self/mounts; then
		timeout 10 fusermount3 -u -z "$mnt" 2>/dev/null || timeout 10 umount -l "$mnt" 2>/dev/null
	fi
}
cluster_stop() { kill -STOP "$(cluster_pid "$1")"; }
cluster_cont() { kill -CONT "$(cluster_pid "$1")"; }

# cluster_down nK: a clean stop (unmount; TERM after 4 s, KILL after 10 s).
# Returns the daemon's exit status.
cluster_down() {
	local k=$(cluster_k "$1") mnt i rc=0 pid
	mnt=$(cluster_mnt "$1")
	pid=${CL_PID[k]}
	[ -n "$pid" ] && kill -CONT "$pid" 2>/dev/null
	if grep -qF " $mnt fuse" /proc/self/mounts; then
		timeout 10 fusermount3 -u "$mnt" 2>/dev/null ||
			timeout 10 umount -l "$mnt" 2>/dev/null ||
			timeout 10 fusermount3 -u -z "$mnt" 2>/dev/null
	fi
	if [ -n "$pid" ]; then
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 200 ]; do   # every 50 ms
			[ $i -eq 80 ] && kill -TERM "$pid" 2>/dev/null
			sleep 0.05
			i=$((i + 1))
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "# n$k: recfsd $pid did not exit: KILL" >&2
			kill -KILL "$pid" 2>/dev/null
		fi
		wait "$pid" 2>/dev/null
		rc=$?
		CL_PID[k]=
		cluster_save_pids
	fi
	if grep -qF " $mnt fuse" /proc/self/mounts; then
		timeout 10 umount -l "$mnt" 2>/dev/null || timeout 10 fusermount3 -u -z "$mnt" 2>/dev/null
	fi
	return $rc
}

# cluster_restart nK: its config is written anew from the CLUSTER_*
# settings of the moment (a restart with another secret, say).
cluster_restart() {
	local k=$(cluster_k "$1")
	[ -n "${CL_PID[k]}" ] && cluster_down "$1"
	cluster_write_config "$k"
	cluster_start_node "$1"
}

# ---- network faults (--netns) -------------------------------------------------------

cluster_need_netns() {
	[ "$CLUSTER_NETNS" = yes ] || fail "$1 needs a cluster started with --netns"
}

# cluster_isolate nK [--oneway]
cluster_isolate() {
	local ns
	cluster_need_netns cluster_isolate
	ns=$(cluster_ns "$1")
	if [ "${2:-}" = --oneway ]; then
		cluster_fw "$ns" add table inet recfs_isolate
		cluster_fw "$ns" add chain inet recfs_isolate input '{ type filter hook input priority 0; policy accept; }'
		cluster_fw "$ns" add rule inet recfs_isolate input iifname eth0 drop
	else
		ip -n "$ns" link set eth0 down
	fi
}

# cluster_heal nK: undoes cluster_isolate and cluster_split for nK.
cluster_heal() {
	local ns
	cluster_need_netns cluster_heal
	ns=$(cluster_ns "$1")
	ip -n "$ns" link set eth0 up
	cluster_fw "$ns" delete table inet recfs_isolate 2>/dev/null
	cluster_fw "$ns" delete table inet recfs_split 2>/dev/null
	return 0
}
cluster_heal_all() {
	local n
	for n in $(cluster_nodes); do cluster_heal "$n"; done
}

# cluster_split "GROUP A" "GROUP B" ...: every node drops what comes from
# or goes to a node of another group.
cluster_split() {
	local g h n m ns others
	cluster_need_netns cluster_split
	for g in "$@"; do
		others=""
		for h in "$@"; do
			[ "$h" = "$g" ] && continue
			for m in $h; do
				others="$others${others:+, }$(cluster_addr "$m" | cut -d: -f1)"
			done
		done
		[ -n "$others" ] || continue
		for n in $g; do
			ns=$(cluster_ns "$n")
			cluster_fw "$ns" add table inet recfs_split
			cluster_fw "$ns" add chain inet recfs_split input '{ type filter hook input priority 0; policy accept; }'
			cluster_fw "$ns" add chain inet recfs_split output '{ type filter hook output priority 0; policy accept; }'
			cluster_fw "$ns" add rule inet recfs_split input ip saddr "{ $others }" drop
			cluster_fw "$ns" add rule inet recfs_split output ip daddr "{ $others }" drop
		done
	done
}

# ---- waits -------------------------------------------------------------------------------

# cluster_wait_size K [nodes...]: every node (default all running ones)
# shows cluster_size=K in its .info/cluster.
cluster_wait_size() {
	local want=$1 n ok i nodes
	shift
	nodes=${*:-$(for n in $(cluster_nodes); do [ -n "$(cluster_pid "$n")" ] && echo "$n"; done)}
	for ((i = 0; i < CLUSTER_WAIT_S * 20; i++)); do   # every 50 ms
		ok=yes
		for n in $nodes; do
			[ "$(cluster_info "$n" cluster_size)" = "$want" ] || { ok=no; break; }
		done
		[ $ok = yes ] && return 0
		sleep 0.05
	done
	note "cluster_wait_size $want: $(for n in $nodes; do printf '%s=%s ' "$n" "$(cluster_info "$n" cluster_size)"; done)"
	return 1
}

# cluster_view nK: "size key principal" from one read of nK's .info/cluster
# (the row "principal", or "cluster_principal" while .info/cluster has that
# name).
cluster_view() {
	run cat "$(cluster_mnt "$1")/.info/cluster" 2>/dev/null |
		awk 'index($0, "=") { n = substr($0, 1, index($0, "=") - 1); v[n] = substr($0, index($0, "=") + 1) }
			END { p = ("principal" in v) ? v["principal"] : v["cluster_principal"];
				print v["cluster_size"] " " v["cluster_key"] " " p }'
}

# cluster_wait_agree K [nodes...]: every node (default all running ones)
# shows cluster_size=K and the same cluster_key and principal.  One read
# per node and round, rounds 50 ms apart, so that the moment of agreement
# is seen within about 100 ms (t_cluster_faults times formation with it).
cluster_wait_agree() {
	local want=$1 n views nodes end
	shift
	nodes=${*:-$(for n in $(cluster_nodes); do [ -n "$(cluster_pid "$n")" ] && echo "$n"; done)}
	end=$(($(date +%s%N) / 1000000 + CLUSTER_WAIT_S * 1000))
	for (( ; ; )); do
		views=$(for n in $nodes; do cluster_view "$n"; done | sort -u)
		[ "$(echo "$views" | wc -l)" -eq 1 ] && [ "${views%% *}" = "$want" ] && return 0
		[ "$(($(date +%s%N) / 1000000))" -ge "$end" ] && break
		sleep 0.05
	done
	note "cluster_wait_agree $want: $(echo "$views" | tr '\n' ';')"
	return 1
}

# cluster_mark nK: the number of lines in nK's log now, for
# cluster_wait_log's MARK.
cluster_mark() {
	local c
	c=$(wc -l <"$(cluster_log "$1")" 2>/dev/null)
	echo "${c:-0}"
}

# cluster_wait_log nK PATTERN [MARK]: a line of nK's log after its first
# MARK lines (0: any line) matches the extended regex PATTERN.
cluster_wait_log() {
	local log i
	log=$(cluster_log "$1")
	for ((i = 0; ; i++)); do
		tail -n +$((${3:-0} + 1)) "$log" 2>/dev/null | grep -qE -- "$2" && return 0
		[ $i -ge $((CLUSTER_WAIT_S * 10)) ] && return 1
		sleep 0.1
	done
}

# ---- cleanup ------------------------------------------------------------------------------

# cluster_destroy: every node stopped and unmounted, every namespace gone;
# a node that exits non-zero on its clean stop is a failure of the test.
cluster_destroy() {
	local k ns
	for ((k = 1; k <= CLUSTER_N; k++)); do
		[ -n "${CL_PID[k]}" ] && kill -CONT "${CL_PID[k]}" 2>/dev/null
	done
	for ((k = 1; k <= CLUSTER_N; k++)); do
		local was=${CL_PID[k]:-} rc
		cluster_down "n$k"
		rc=$?
		# a clean stop is exit 0 (an ASan report, a crash at exit is not)
		[ -n "$was" ] && [ $rc -ne 0 ] &&
			bad "n$k: recfsd exited $rc at its stop: $(tail -n 5 "$CLUSTER_DIR/n$k/daemon.out")"
	done
	if [ -s "$CLUSTER_DIR/netns" ]; then
		# nodes first, the bridge last; a node's veth and nft tables go with it
		for ns in $(tac "$CLUSTER_DIR/netns"); do
			ip netns del "$ns" 2>/dev/null || echo "# could not delete netns $ns" >&2
		done
		rm -f "$CLUSTER_DIR/netns"
	fi
	CLUSTER_N=0
	CL_PID=()
	CL_ADDR=()
}

itest_before_stop() {
	if type cluster_test_before_stop >/dev/null 2>&1; then
		cluster_test_before_stop
	fi
	# a failed check, or a FATAL (fail: FAILS stays 0, the exit status says it)
	if [ "$CLUSTER_N" -gt 0 ] && { [ "$FAILS" -ne 0 ] || [ "${ITEST_RC:-0}" -ne 0 ]; }; then
		local k
		for ((k = 1; k <= CLUSTER_N; k++)); do
			echo "---- n$k's last membership lines (clustering, heartbeat, fabric)"
			grep -E ' (clustering|heartbeat|fabric): ' "$CLUSTER_DIR/n$k/recfsd.log" 2>/dev/null | tail -n 12
			echo "---- last lines of n$k's log"
			tail -n 15 "$CLUSTER_DIR/n$k/recfsd.log" 2>/dev/null
		done
	fi
	cluster_destroy
}
