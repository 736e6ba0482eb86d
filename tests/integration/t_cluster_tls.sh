#!/bin/bash
# t_cluster_tls: the fabric over TLS (network.tls: certificate, key, ca).
# Certificates are made here by the openssl command: a CA, a node
# certificate it signs (shared by n1..n3), and another CA with its own node
# certificate.  n1..n3 with TLS form one cluster of 3; n4 without TLS and
# n5 with a certificate of the other CA both dial n1 and are refused:
# n1 counts them in fabric_refused_tls (a reason of its own) and logs the
# address once, n5 counts n1's certificate as refused too, n4 and n5 stay
# alone, and the cluster of 3 does not change.  A node whose
# network.tls.key file is missing does not start and says which file.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/cluster_lib.sh"

[ "$HAVE_PYTHON" = yes ] || { echo "SKIP: $ITEST_NAME needs python3 to pick free ports"; exit 77; }
command -v openssl >/dev/null || fail "the openssl command is missing (scripts/install-deps.sh installs it)"

# ---- certificates ----------------------------------------------------------------
D=$T/tls
mkdir -p "$D" || fail "mkdir"
for ca in ca ca2; do
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$D/$ca.key" \
		-out "$D/$ca.crt" -days 2 -subj "/CN=recfs-itest-$ca" >/dev/null 2>&1 || fail "openssl: $ca"
done
for n in node:ca node2:ca2; do
	k=${n%%:*}
	c=${n#*:}
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$D/$k.key" \
		-out "$D/$k.csr" -subj "/CN=recfs-itest-$k" >/dev/null 2>&1 &&
		openssl x509 -req -in "$D/$k.csr" -CA "$D/$c.crt" -CAkey "$D/$c.key" -CAcreateserial \
			-out "$D/$k.crt" -days 2 >/dev/null 2>&1 || fail "openssl: $k"
done
chmod 600 "$D"/*.key

stat_of() {
	run cat "$(cluster_mnt "$1")/.info/statistics" | awk -F= -v k="$2" '$1 == k { print $2 }'
}
wait_for() {
	local d=$1 c=$2 i
	for ((i = 0; i < 100; i++)); do
		if eval "$c"; then pass "$d"; return 0; fi
		sleep 0.1
	done
	bad "$d (not within 10 s)"
}

CLUSTER_EXTRA_YAML="  tls: { certificate: $D/node.crt, key: $D/node.key, ca: $D/ca.crt }"
CLUSTER_EXTRA_YAML_n4=""
CLUSTER_EXTRA_YAML_n5="  tls: { certificate: $D/node2.crt, key: $D/node2.key, ca: $D/ca2.crt }"
CLUSTER_SEEDS_n1="n3"
CLUSTER_SEEDS_n4="n1"
CLUSTER_SEEDS_n5="n1"
cluster_start 5
cluster_wait_agree 3 n1 n2 n3 || bad "n1..n3 with TLS: no cluster of 3"
check_eq "n1: TLS connections to n2 and n3 (fabric_peers_connected)" "$(stat_of n1 fabric_peers_connected)" 2
key=$(cluster_info n1 cluster_key)

# ---- n4 without TLS, n5 with another CA: refused, counted, alone --------------------
wait_for "n1 refused n4 and n5 (fabric_refused_tls >= 2)" '[ "$(stat_of n1 fabric_refused_tls)" -ge 2 ]'
wait_for "n5 refused n1's certificate (fabric_refused_tls >= 1)" '[ "$(stat_of n5 fabric_refused_tls)" -ge 1 ]'
sleep 1
check_eq "n4 (no TLS) is alone" "$(cluster_info n4 cluster_size)" 1
check_eq "n5 (another CA) is alone" "$(cluster_info n5 cluster_size)" 1
for n in n1 n2 n3; do
	check_eq "$n: still a cluster of 3" "$(cluster_info $n cluster_size)" 3
	check_eq "$n: cluster_key unchanged" "$(cluster_info $n cluster_key)" "$key"
	check_eq "$n: no auth or MAC failure inside TLS" \
		"$(( $(stat_of $n fabric_refused_auth) + $(stat_of $n fabric_refused_mac) ))" 0
done
check_eq "n4 and n5 have no peer" "$(stat_of n4 fabric_peers_connected)$(stat_of n5 fabric_peers_connected)" 00
# logged once per address (n4 and n5 both dial from 127.0.0.1), with the reason
lines=$(grep -c 'dropped connection from 127.0.0.1:[0-9]*: tls (TLS handshake' "$(cluster_log n1)")
check_eq "n1 logged the TLS refusals of 127.0.0.1 once" "$lines" 1
note "n1: fabric_refused_tls=$(stat_of n1 fabric_refused_tls); n5: $(stat_of n5 fabric_refused_tls); $(grep -m1 'tls (TLS' "$(cluster_log n1)" | sed 's/.*dropped/dropped/')"

# ---- a missing key file: n3 does not start, and says which file --------------------
cluster_down n3 || bad "n3: clean stop failed"
CLUSTER_EXTRA_YAML_n3="  tls: { certificate: $D/node.crt, key: $D/missing.key, ca: $D/ca.crt }"
cluster_write_config 3
if timeout 20 "$RECFSD" -f -c "$CLUSTER_DIR/n3/recfs.yaml" "$(cluster_mnt n3)" >"$T/n3.out" 2>&1; then
	bad "n3 started with a missing network.tls.key file"
	fusermount3 -u "$(cluster_mnt n3)" 2>/dev/null
fi
check_true "n3 names the missing key file" \
	"$(cat "$T/n3.out" "$(cluster_log n3)" 2>/dev/null | grep -c "network.tls.key $D/missing.key: No such file")" -ge 1
finish
