#!/bin/bash
# t_examples: what examples/ promises works as written - memory.yaml loads
# and mounts, shell-session.sh, stats.sh and records run against that mount
# and print what their comments say (stats.sh under mawk too); device.yaml
# and memory-shadow.yaml pass --check-config and mount with our paths, and a
# file written there is still there after a restart; every example's
# "Start:" line works on a fresh root; cluster.yaml passes --check-config
# and cluster-demo.sh forms its cluster of 3, shows a file written through
# node 1 read through node 3, and leaves nothing behind.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

EX=$top_srcdir/examples
REC=$top_builddir/examples/records
[ -x "$REC" ] || fail "$REC not built (make check builds it)"

# ---- the "Start:" line of every example works on a fresh machine -------------------------------
# Run as written, in a fresh root where none of the example's directories
# exist yet (/var/lib/recfs, /var/log/recfs, /tmp/recfs-work, the mount
# point): the commands before recfsd run with the paths moved under that
# root, and recfsd starts with the example's own arguments and paths (RAM
# sizes cut down for the test).  "sudo " is dropped: the test runs as is.
for ex in memory memory-shadow device; do
	FR=$T/fresh-$ex
	mkdir -p "$FR/tmp" "$FR/var/lib" "$FR/var/log" "$FR/mnt" || fail "mkdir $FR"
	line=$(sed -n 's/^# Start: *//p' "$EX/$ex.yaml")
	check_true "examples/$ex.yaml has a Start: line" -n "$line"
	# fresh-root paths, then the mount point is our $MNT
	moved=$(printf '%s\n' "$line" | sed -e 's/sudo //g' \
		-e "s|/tmp/recfs-work|$FR/tmp/recfs-work|g; s|/var/lib/recfs|$FR/var/lib/recfs|g" \
		-e "s|/var/log/recfs|$FR/var/log/recfs|g")
	mnt=$(printf '%s\n' "$moved" | sed -n 's/.*recfsd -f -c [^ ]* \([^ ]*\)$/\1/p')
	cfg=$(printf '%s\n' "$moved" | sed -n 's/.*recfsd -f -c \([^ ]*\) [^ ]*$/\1/p')
	check_eq "examples/$ex.yaml: Start: runs recfsd -f -c on this file" "$cfg" "$ex.yaml"
	pre=$(printf '%s\n' "$moved" | sed -n 's/^\(.*\) && recfsd -f -c .*$/\1/p')
	case $mnt in /tmp/recfs | /mnt/recfs) ;; *) bad "examples/$ex.yaml: mount point '$mnt'"; continue ;; esac
	pre=$(printf '%s\n' "$pre" | sed "s|$mnt\\b|$MNT|g")
	expect_ok "examples/$ex.yaml: the commands before recfsd ($pre)" sh -c "$pre"
	sed -e "s|/tmp/recfs-work|$FR/tmp/recfs-work|g; s|/var/lib/recfs|$FR/var/lib/recfs|g" \
		-e "s|/var/log/recfs|$FR/var/log/recfs|g; s|data-size: 1G|data-size: 128M|" \
		"$EX/$ex.yaml" >"$FR/$ex.yaml"
	start_daemon "$FR/$ex.yaml"
	check_true "examples/$ex.yaml: started from its Start: line on a fresh root" -d "$MNT/.info"
	stop_daemon || bad "examples/$ex.yaml: clean stop"
done

# ---- device.yaml and memory-shadow.yaml: valid, persistent --------------------------------
for ex in device memory-shadow; do
	run "$RECFSD" --check-config -c "$EX/$ex.yaml" >/dev/null 2>&1
	check_eq "examples/$ex.yaml passes --check-config" $? 0
	# Our temp paths for the work directory and the storage files.
	sed -e "s|/var/lib/recfs|$T/$ex|g; s|/var/log/recfs|$T/$ex|g; s|/tmp/recfs-work|$T/$ex|g" "$EX/$ex.yaml" >"$T/$ex.yaml"
	mkdir -p "$T/$ex"
	start_daemon "$T/$ex.yaml"
	ns=$(ls "$MNT" | head -1)
	echo persistent >"$MNT/$ns/kept" || fail "$ex: write"
	stop_daemon || fail "$ex: clean stop"
	start_daemon "$T/$ex.yaml"
	check_eq "examples/$ex.yaml: a file survives a restart" "$(cat "$MNT/$ns/kept" 2>&1)" persistent
	# stats.sh under mawk (Debian's default awk): byte counts past 2^31
	# (the device files are 2 x 16G) print as digits, not 3.43597e+10
	if [ "$ex" = device ]; then
		if command -v mawk >/dev/null 2>&1; then
			mkdir -p "$T/mawk" && ln -sf "$(command -v mawk)" "$T/mawk/awk"
			total=$(run cat "$MNT/.info/namespace/$ns" | sed -n 's/^data_total_bytes=//p')
			got=$(PATH=$T/mawk:$PATH run sh "$EX/stats.sh" "$MNT" 2>&1 | awk -v ns="$ns" '$1 == ns { print $4 }')
			check_eq "stats.sh under mawk: total_bytes of $ns as digits" "$got" "$total"
			check_true "... and past 2^31 ($total)" "${total:-0}" -gt 2147483648
		else
			note "no mawk: stats.sh under mawk not checked (scripts/install-deps.sh installs it)"
		fi
	fi
	stop_daemon
done

# ---- memory.yaml: valid as shipped, and mounts with our paths -------------------------------
out=$(run "$RECFSD" --check-config -c "$EX/memory.yaml" 2>&1)
check_eq "examples/memory.yaml passes --check-config" $? 0
check_true "memory.yaml defines namespace cache" "$(printf '%s' "$out" | grep -cE 'name: *cache')" -ge 1
sed -e "s|work-directory: .*|work-directory: $WORK|" \
	-e "s|file: stderr .*|file: $LOG|" \
	-e "s|data-size: 1G .*|data-size: 128M|" \
	"$EX/memory.yaml" >"$CONF"
start_daemon
check_eq "memory.yaml mounts namespace cache" "$(ls "$MNT")" cache

# ---- shell-session.sh -------------------------------------------------------------------------
out=$(run sh "$EX/shell-session.sh" "$MNT" cache 2>&1)
rc=$?
check_eq "shell-session.sh exit status" $rc 0
[ $rc -ne 0 ] && printf '%s\n' "$out" | tail -n 20
for want in 'hello, recfs' 'second line' '25 bytes' 'user.lang="en"' 'r1' 'renamed' \
	'objects=' 'Operation not permitted' 'Permission denied' 'done.'; do
	check_true "shell-session.sh shows '$want'" "$(printf '%s' "$out" | grep -cF -- "$want")" -ge 1
done
check_true "shell-session.sh shows a 40-hex digest" "$(printf '%s' "$out" | grep -cxE '[0-9a-fA-F]{40}')" -ge 1
check_true "shell-session.sh shows a TTL near 86400" "$(printf '%s' "$out" | grep -cxE '86[34][0-9][0-9]')" -ge 1
check_eq "shell-session.sh cleaned up its set" "$(ls "$MNT/cache" | grep -c '^demo-')" 0

# ---- records (examples/records.c) ------------------------------------------------------------------
mkdir "$MNT/cache/users" || fail "mkdir users"
out=$(run "$REC" "$MNT/cache/users" 5 2>&1)
rc=$?
check_eq "records exit status" $rc 0
printf '%s\n' "$out"
check_eq "records prints one line per record" "$(printf '%s\n' "$out" | grep -c '^user-[0-9]*: ')" 5
check_true "records line for user-3" "$(printf '%s\n' "$out" | grep -cF 'user-3: 22 bytes "name=user-3 visits=30" email=user-3@example.com generation=')" -eq 1
check_eq "records: generation=3 as its comment says (create, close, setxattr)" \
	"$(printf '%s\n' "$out" | grep -cE 'generation=3 bins=1$')" 5
check_true "records' comment says generation=3" "$(grep -c 'generation=3 bins=1' "$top_srcdir/examples/records.c")" -ge 1
check_eq "records last line" "$(printf '%s\n' "$out" | tail -n 1)" "ok: 5 records written and read back (user-1 is 22 bytes)"
check_eq "records left 5 files" "$(ls "$MNT/cache/users" | wc -l)" 5
check_eq "records' bin seen from the shell" "$(getx user.email "$MNT/cache/users/user-2")" user-2@example.com
expect_err "records on a missing dir fails" "No such file or directory" "$REC" "$MNT/cache/nosuchset" 1

# ---- stats.sh -----------------------------------------------------------------------------------------
out=$(run sh "$EX/stats.sh" "$MNT" 2>&1)
rc=$?
check_eq "stats.sh exit status" $rc 0
printf '%s\n' "$out"
check_true "stats.sh header" "$(printf '%s\n' "$out" | head -n 1 | grep -c '^namespace  *objects  *used_bytes')" -eq 1
line=$(printf '%s\n' "$out" | awk '$1 == "cache"')
check_eq "stats.sh: objects of cache" "$(printf '%s' "$line" | awk '{ print $2 }')" 5
check_true "stats.sh: used bytes > 0" "$(printf '%s' "$line" | awk '{ print $3 }')" -gt 0
check_true "stats.sh: total bytes >= 128M" "$(printf '%s' "$line" | awk '{ print $4 }')" -ge 134217728
check_eq "stats.sh: defrag_q of cache" "$(printf '%s' "$line" | awk '{ print $7 }')" 0
check_true "stats.sh: uptime line" "$(printf '%s\n' "$out" | grep -cE '^uptime: [0-9]+ s, objects: 5$')" -eq 1
expect_err "stats.sh on a non-recfs dir" "not a recfs mount" sh "$EX/stats.sh" "$T"

assert_serving
# ---- cluster.yaml and cluster-demo.sh -----------------------------------------------------------
printf 'example-secret-0123456789abcdef\n' >"$T/secret" && chmod 600 "$T/secret"
sed -e "s|cluster-secret-file: .*|cluster-secret-file: $T/secret|" "$EX/cluster.yaml" >"$T/cluster.yaml"
run "$RECFSD" --check-config -c "$T/cluster.yaml" >/dev/null 2>&1
check_eq "examples/cluster.yaml passes --check-config (with a secret file)" $? 0
before=$(ls -d /tmp/recfs-demo.* 2>/dev/null | wc -l)
out=$(PATH=$(dirname "$RECFSD"):$PATH run timeout 60 sh "$EX/cluster-demo.sh" "$RECFSD" 2>&1)
check_eq "cluster-demo.sh exits 0" $? 0
check_true "cluster-demo.sh: a cluster of 3 ($out)" "$(printf '%s\n' "$out" | grep -c '^cluster_size=3$')" -eq 1
check_true "cluster-demo.sh: node 3 reads what node 1 wrote" \
	"$(printf '%s\n' "$out" | grep -c '^read through node 3: *written through node 1$')" -eq 1
check_true "cluster-demo.sh: node 2 lists it" "$(printf '%s\n' "$out" | grep -c '^ls through node 2: *hello$')" -eq 1
check_eq "cluster-demo.sh leaves no directory behind" "$(ls -d /tmp/recfs-demo.* 2>/dev/null | wc -l)" "$before"
check_eq "cluster-demo.sh leaves no mount behind" "$(grep -c ' /tmp/recfs-demo\.' /proc/mounts)" 0

finish
