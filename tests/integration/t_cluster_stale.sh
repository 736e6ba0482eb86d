#!/bin/bash
# t_cluster_stale: a name this node's kernel still holds (entry-timeout)
# whose record another node deleted.  Three nodes on 127.0.0.1, RF 2.
#
# Through n2 a file is written (its store has n2's kernel ask for the
# attributes again), deleted through n1, and at once (within n2's
# entry-timeout, 1 s) opened through n2 with O_CREAT|O_TRUNC as the fault
# test's clients do.  n2's kernel still has a positive entry, so it opens
# the inode it has; with default_permissions it first asks for the
# attributes (GETATTR), which find no record.  That must not be ENOENT (an
# open with O_CREAT of a name in an existing directory never is): the
# daemon answers ESTALE, the kernel looks the name up again and creates it.
# The fault test's clients saw such a write fail with ENOENT after 0.3 ms.
#
# The same stale entry under the other calls that check attributes first:
# stat, an open without O_CREAT, truncate(2) and access(2) still say
# ENOENT (the kernel's retry finds no name), never ESTALE; and fstat of a
# file open on n2 while another node deletes it is not answered ESTALE
# (fstat is not retried).
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/cluster_lib.sh"

[ "$HAVE_PYTHON" = yes ] || { echo "SKIP: $ITEST_NAME needs python3"; exit 77; }

CLUSTER_RF=2
cluster_start 3
cluster_wait_agree 3 || fail "no cluster of 3"

M1=$(cluster_mnt n1)/test
M2=$(cluster_mnt n2)/test
expect_ok "mkdir the set" mkdir "$M1/s"

# Each round: a fresh name, written through n2, deleted through n1, then the
# call under test through n2 at once.  Prints one line per call kind:
# "KIND ok=N <errno>=N ...".
out=$(run python3 - "$M1/s" "$M2/s" <<'PY'
import ctypes, errno, os, sys, time
m1, m2 = sys.argv[1], sys.argv[2]
ROUNDS = 20

def stale(i, kind):
    name = "%s%03d" % (kind, i)
    with open(os.path.join(m2, name), "w") as f:
        f.write("first\n")
    os.unlink(os.path.join(m1, name))
    return os.path.join(m2, name), os.path.join(m1, name)

def create(p2, p1):
    fd = os.open(p2, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, b"second\n")
    os.fsync(fd)
    os.close(fd)
    with open(p1) as f:
        if f.read() != "second\n":
            raise OSError(errno.EIO, "n1 reads another content")

def overwrite(p2, p1):
    os.close(os.open(p2, os.O_WRONLY | os.O_TRUNC))

def stat(p2, p1):
    os.stat(p2)

def truncate(p2, p1):
    os.truncate(p2, 0)

libc = ctypes.CDLL(None, use_errno=True)

def access(p2, p1):
    if libc.access(p2.encode(), os.W_OK) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))

for kind, fn in (("create", create), ("overwrite", overwrite), ("stat", stat),
                 ("truncate", truncate), ("access", access)):
    counts = {}
    for i in range(ROUNDS):
        p2, p1 = stale(i, kind)
        try:
            fn(p2, p1)
            r = "ok"
        except OSError as e:
            r = errno.errorcode.get(e.errno, str(e.errno))
        counts[r] = counts.get(r, 0) + 1
    print(kind, " ".join("%s=%d" % kv for kv in sorted(counts.items())))

# A file open on n2, deleted through n1: fstat with the handle.
p2 = os.path.join(m2, "held")
with open(p2, "w") as f:
    f.write("x\n")
fd = os.open(p2, os.O_RDONLY)
os.unlink(os.path.join(m1, "held"))
time.sleep(1.2)  # attr-timeout: fstat asks the daemon
try:
    os.fstat(fd)
    r = "ok"
except OSError as e:
    r = errno.errorcode.get(e.errno, str(e.errno))
os.close(fd)
print("fstat", r)
PY
)
note "$(printf '%s' "$out" | tr '\n' ';')"
line() { printf '%s\n' "$out" | awk -v k="$1" '$1 == k { $1 = ""; sub(/^ /, ""); print }'; }
check_eq "open O_CREAT|O_TRUNC through n2 of a name n1 deleted: created every time" "$(line create)" "ok=20"
check_eq "open O_TRUNC (no O_CREAT) of it: ENOENT" "$(line overwrite)" "ENOENT=20"
check_eq "stat of it: ENOENT" "$(line stat)" "ENOENT=20"
check_eq "truncate of it: ENOENT" "$(line truncate)" "ENOENT=20"
check_eq "access of it: not there" "$(line access)" "ENOENT=20"
check_true "fstat of a file open on n2 that n1 deleted: not ESTALE (not retried)" "$(line fstat)" != ESTALE
finish
