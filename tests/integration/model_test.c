/*
 * model_test - seeded randomized test of the mount against an in-memory model.
 *
 * Usage: model_test [-s SEED] [-n OPS] [-k NAMES] [-x CLASSES] [-v] DIR...
 *
 * Applies OPS random operations to files named m<SEED>_<i> spread over the
 * given directories (sets of one namespace, or the namespace itself for the
 * null set): create, open, pwrite at random offsets (holes included),
 * O_APPEND writes, ftruncate and truncate, pread, fsync, close, rename
 * (within a dir, across dirs, onto an existing file, of an open file),
 * unlink (also while open), setxattr / removexattr / getxattr / listxattr of
 * user.* names, stat and readdir.  After every close the file is re-read
 * completely (size, every byte, xattrs) and compared with the model; at the
 * end every file and every listing is.
 *
 * The model is what a local file system does (recfsd(8): all handles of one
 * record share one open-file state): a file's content lives in a model
 * inode that its name and every handle opened on it share, so a write or
 * truncate through any handle, or a truncate by path, is what every other
 * handle reads and fstat shows at once, and several handles may be open on
 * one file.  xattrs are independent of content handles; a handle follows
 * its record across rename and keeps its inode (reads and writes work,
 * close stores nothing) when the record is unlinked or replaced.  Run it
 * against a local directory to check the model itself.
 *
 * -x takes letters of op classes to leave out (to isolate a bug):
 *   r rename, u unlink, x xattrs, t truncate(path), o ops on open files'
 *   names (rename/unlink of a file that has a handle), l listings (the
 *   final check of every listing too).
 *
 * Deterministic: its own PRNG, seeded from -s; every loop is bounded.  On a
 * mismatch it prints the seed, the op number, the op and the last ops, and
 * exits 1.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

#define MAX_DIRS 8
#define MAX_NAMES 64
#define MAX_SLOTS (MAX_DIRS * MAX_NAMES)
#define MAX_HANDLES 6
#define N_XATTRS 6
#define MAX_FILE (240 * 1024)
#define MAX_XVAL 5000
#define HISTORY 24

struct xattr {
	bool present;
	size_t len;
	uint8_t val[MAX_XVAL];
};

/* A file's content, shared by its name and its open handles. */
struct minode {
	int refs;               /* the name that holds it + open handles; 0 = free */
	uint8_t *data;
	size_t len;
};

struct mfile {
	bool exists;
	int ino;                /* index into inodes[] while it exists */
	struct xattr x[N_XATTRS];
};

struct handle {
	bool used;
	int fd;
	int ino;                /* its inode (orphaned when no name holds it) */
	bool rd, wr, append;
};

static const char *xnames[N_XATTRS] = {
	"user.a", "user.bb", "user.color", "user.d4", "user.empty", "user.long_name_15"
};

static uint64_t seed, rng_state;
static long op_no;
static bool verbose;
static unsigned n_dirs, n_names;
static const char *dirs[MAX_DIRS];
static struct mfile files[MAX_SLOTS];
static struct handle handles[MAX_HANDLES];
static struct minode inodes[MAX_SLOTS + MAX_HANDLES];
static char history[HISTORY][600];
static char cur_op[512];
static char exclude[32];
static long n_checked_bytes, n_verifies;

/* ---- PRNG (splitmix64) ------------------------------------------------------------ */

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static uint64_t rnd_below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static bool chance(unsigned pct)
{
	return rnd_below(100) < pct;
}

static void rnd_fill(uint8_t *p, size_t n)
{
	/* runs of repeated bytes and random bytes, so offsets errors show */
	uint8_t b = (uint8_t)rnd();
	for (size_t i = 0; i < n; i++) {
		if ((i & 63) == 0)
			b = (uint8_t)rnd();
		p[i] = (i & 1) ? b : (uint8_t)rnd();
	}
}

/* ---- reporting ---------------------------------------------------------------------- */

static void op_begin(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void op_begin(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cur_op, sizeof(cur_op), fmt, ap);
	va_end(ap);
	snprintf(history[op_no % HISTORY], sizeof(history[0]), "#%ld %s", op_no, cur_op);
	if (verbose)
		fprintf(stderr, "#%ld %s\n", op_no, cur_op);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "model_test: MISMATCH seed %" PRIu64 " op #%ld: %s\n  ", seed, op_no, cur_op);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n  last ops:\n");
	for (long i = op_no - HISTORY + 1; i <= op_no; i++)
		if (i >= 0)
			fprintf(stderr, "    %s\n", history[i % HISTORY]);
	fprintf(stderr, "  reproduce: model_test -s %" PRIu64 " -n %ld ... (-v prints every op)\n",
	    seed, op_no + 1);
	exit(1);
}

static const char *errname(int e)
{
	static char buf[32];
	switch (e) {
	case 0: return "OK";
	case ENOENT: return "ENOENT";
	case EEXIST: return "EEXIST";
	case ENODATA: return "ENODATA";
	case EIO: return "EIO";
	case EPERM: return "EPERM";
	case EACCES: return "EACCES";
	case EINVAL: return "EINVAL";
	case EXDEV: return "EXDEV";
	case ENOSPC: return "ENOSPC";
	case EFBIG: return "EFBIG";
	case ERANGE: return "ERANGE";
	case EBADF: return "EBADF";
	case ENOTSUP: return "ENOTSUP";
	case ENAMETOOLONG: return "ENAMETOOLONG";
	case ENOTCONN: return "ENOTCONN";
	case ESTALE: return "ESTALE";
	default:
		snprintf(buf, sizeof(buf), "errno %d", e);
		return buf;
	}
}

/* expect: rc < 0 means the call failed with errno; want 0 = success. */
static void expect(const char *call, long rc, int want)
{
	int got = rc < 0 ? errno : 0;
	if (got != want)
		die("%s: expected %s, got %s (rc %ld)", call, errname(want), errname(got), rc);
}

/* ---- model helpers --------------------------------------------------------------------- */

static void slot_path(int slot, char *out, size_t size)
{
	snprintf(out, size, "%s/m%" PRIu64 "_%02d", dirs[slot / n_names], seed % 100000, slot % n_names);
}

static void buf_resize(uint8_t **p, size_t *len, size_t nlen)
{
	if (nlen > *len || !*p) {
		uint8_t *n = realloc(*p, nlen ? nlen : 1);
		if (!n) {
			perror("realloc");
			exit(2);
		}
		*p = n;
		if (nlen > *len)
			memset(n + *len, 0, nlen - *len);
	}
	*len = nlen;
}

static bool excluded(char c)
{
	return strchr(exclude, c) != NULL;
}

static int ino_new(void)
{
	for (int i = 0; i < MAX_SLOTS + MAX_HANDLES; i++)
		if (inodes[i].refs == 0) {
			inodes[i].refs = 1;
			inodes[i].len = 0;
			return i;
		}
	fprintf(stderr, "model_test: out of model inodes\n");
	exit(2);
}

static void ino_unref(int i)
{
	if (--inodes[i].refs == 0) {
		free(inodes[i].data);
		inodes[i].data = NULL;
		inodes[i].len = 0;
	}
}

/* the slot whose name holds inode i, or -1 (orphaned) */
static int ino_slot(int i)
{
	for (unsigned s = 0; s < n_dirs * n_names; s++)
		if (files[s].exists && files[s].ino == i)
			return (int)s;
	return -1;
}

static bool slot_open(int slot)
{
	if (!files[slot].exists)
		return false;
	for (int h = 0; h < MAX_HANDLES; h++)
		if (handles[h].used && handles[h].ino == files[slot].ino)
			return true;
	return false;
}

/* the size stat shows: the shared content's, open or not */
static size_t expected_size(int slot)
{
	return files[slot].exists ? inodes[files[slot].ino].len : 0;
}

static int pick_slot(void)
{
	return (int)rnd_below(n_dirs * n_names);
}

static int pick_handle(void)
{
	int start = (int)rnd_below(MAX_HANDLES);
	for (int i = 0; i < MAX_HANDLES; i++) {
		int h = (start + i) % MAX_HANDLES;
		if (handles[h].used)
			return h;
	}
	return -1;
}

static int free_handle(void)
{
	for (int h = 0; h < MAX_HANDLES; h++)
		if (!handles[h].used)
			return h;
	return -1;
}


/* ---- verification ------------------------------------------------------------------------ */

static uint8_t *scratch;
static size_t scratch_size;

static void verify_xattrs(int slot, const char *path)
{
	struct mfile *f = &files[slot];
	char list[8192];
	ssize_t n = listxattr(path, list, sizeof(list));
	if (n < 0)
		die("listxattr %s: %s", path, strerror(errno));
	bool seen[N_XATTRS] = { false };
	for (ssize_t off = 0; off < n; off += (ssize_t)strlen(list + off) + 1) {
		const char *name = list + off;
		if (strncmp(name, "user.recfs.", 11) == 0)
			continue;
		int i;
		for (i = 0; i < N_XATTRS; i++)
			if (strcmp(name, xnames[i]) == 0)
				break;
		if (i == N_XATTRS)
			die("listxattr %s: unexpected name '%s'", path, name);
		if (seen[i])
			die("listxattr %s: '%s' listed twice", path, name);
		if (!f->x[i].present)
			die("listxattr %s: '%s' listed but was removed/never set", path, name);
		seen[i] = true;
	}
	for (int i = 0; i < N_XATTRS; i++) {
		if (f->x[i].present && !seen[i])
			die("listxattr %s: '%s' missing", path, xnames[i]);
		uint8_t v[MAX_XVAL + 16];
		ssize_t r = getxattr(path, xnames[i], v, sizeof(v));
		if (!f->x[i].present) {
			if (r >= 0 || errno != ENODATA)
				die("getxattr %s %s: expected ENODATA, got %s (rc %zd)", path, xnames[i],
				    r < 0 ? errname(errno) : "a value", r);
			continue;
		}
		if (r < 0)
			die("getxattr %s %s: %s", path, xnames[i], strerror(errno));
		if ((size_t)r != f->x[i].len || memcmp(v, f->x[i].val, f->x[i].len) != 0)
			die("getxattr %s %s: value differs (got %zd bytes, want %zu)", path, xnames[i], r,
			    f->x[i].len);
	}
}

static void verify_content(const char *what, const char *path, int fd, const uint8_t *want,
    size_t want_len)
{
	if (scratch_size < want_len + 65536) {
		scratch_size = want_len + 65536;
		scratch = realloc(scratch, scratch_size);
		if (!scratch) {
			perror("realloc");
			exit(2);
		}
	}
	size_t got = 0;
	for (int iter = 0; iter < 100000; iter++) {
		size_t chunk = 1 + rnd_below(chance(50) ? 4096 : 65536);
		if (got + chunk > scratch_size)
			chunk = scratch_size - got;
		if (chunk == 0)
			break;
		ssize_t r = read(fd, scratch + got, chunk);
		if (r < 0)
			die("%s: read %s: %s", what, path, strerror(errno));
		if (r == 0)
			break;
		got += (size_t)r;
	}
	if (got != want_len)
		die("%s: %s has %zu bytes, model %zu", what, path, got, want_len);
	for (size_t i = 0; i < want_len; i++)
		if (scratch[i] != want[i])
			die("%s: %s differs at byte %zu of %zu: got 0x%02x, want 0x%02x", what, path, i,
			    want_len, scratch[i], want[i]);
	n_checked_bytes += (long)got;
}

static void verify_slot(int slot)
{
	char path[4096];
	struct stat st;
	struct mfile *f = &files[slot];
	slot_path(slot, path, sizeof(path));
	n_verifies++;
	int r = stat(path, &st);
	if (!f->exists) {
		if (r == 0 || errno != ENOENT)
			die("stat %s: expected ENOENT, got %s", path, r == 0 ? "a file" : strerror(errno));
		return;
	}
	if (r < 0)
		die("stat %s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		die("stat %s: not a regular file (mode %o)", path, st.st_mode);
	if (st.st_nlink != 1)
		die("stat %s: nlink %lu", path, (unsigned long)st.st_nlink);
	if ((size_t)st.st_size != expected_size(slot))
		die("stat %s: size %lld, model %zu", path, (long long)st.st_size, expected_size(slot));
	{
		/* open or not: a new reader reads the shared content */
		int fd = open(path, O_RDONLY);
		if (fd < 0)
			die("open %s for verify: %s", path, strerror(errno));
		verify_content("verify", path, fd, inodes[f->ino].data, inodes[f->ino].len);
		if (close(fd) < 0)
			die("close %s after verify: %s", path, strerror(errno));
	}
	if (!excluded('x'))
		verify_xattrs(slot, path);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void verify_listing(unsigned d)
{
	char prefix[32];
	snprintf(prefix, sizeof(prefix), "m%" PRIu64 "_", seed % 100000);
	DIR *dp = opendir(dirs[d]);
	if (!dp)
		die("opendir %s: %s", dirs[d], strerror(errno));
	char *names[MAX_NAMES * 2];
	size_t n = 0;
	struct dirent *de;
	for (int iter = 0; iter < 1000000 && (errno = 0, de = readdir(dp)) != NULL; iter++) {
		if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
			continue;
		if (n == MAX_NAMES * 2)
			die("readdir %s: too many entries", dirs[d]);
		names[n++] = strdup(de->d_name);
	}
	if (errno)
		die("readdir %s: %s", dirs[d], strerror(errno));
	closedir(dp);
	qsort(names, n, sizeof(names[0]), cmp_str);
	for (size_t i = 1; i < n; i++)
		if (strcmp(names[i], names[i - 1]) == 0)
			die("readdir %s: '%s' listed twice", dirs[d], names[i]);
	size_t want = 0;
	for (unsigned k = 0; k < n_names; k++) {
		int slot = (int)(d * n_names + k);
		char path[4096], *base;
		slot_path(slot, path, sizeof(path));
		base = strrchr(path, '/') + 1;
		bool listed = bsearch(&base, names, n, sizeof(names[0]), cmp_str) != NULL;
		if (listed != files[slot].exists)
			die("readdir %s: '%s' %s", dirs[d], base,
			    listed ? "listed but does not exist" : "exists but not listed");
		want += files[slot].exists;
	}
	if (want != n)
		die("readdir %s: %zu entries, model %zu", dirs[d], n, want);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
}

/* ---- operations ----------------------------------------------------------------------------- */

static void op_open(void)
{
	int h = free_handle();
	int slot = pick_slot();
	if (h < 0)
		return;
	/* often a file that is open already: several handles on one file */
	int other = pick_handle();
	if (other >= 0 && ino_slot(handles[other].ino) >= 0 && chance(40))
		slot = ino_slot(handles[other].ino);
	struct mfile *f = &files[slot];
	char path[4096];
	slot_path(slot, path, sizeof(path));
	int kind = (int)rnd_below(7), flags;
	const char *desc;
	switch (kind) {
	case 0: flags = O_RDONLY; desc = "O_RDONLY"; break;
	case 1: flags = O_RDWR; desc = "O_RDWR"; break;
	case 2: flags = O_WRONLY | O_APPEND; desc = "O_WRONLY|O_APPEND"; break;
	case 3: flags = O_RDWR | O_CREAT; desc = "O_RDWR|O_CREAT"; break;
	case 4: flags = O_WRONLY | O_CREAT | O_TRUNC; desc = "O_WRONLY|O_CREAT|O_TRUNC"; break;
	case 5: flags = O_RDWR | O_CREAT | O_EXCL; desc = "O_RDWR|O_CREAT|O_EXCL"; break;
	default: flags = O_RDWR | O_APPEND | O_CREAT; desc = "O_RDWR|O_APPEND|O_CREAT"; break;
	}
	op_begin("open %s %s", path, desc);
	int want = 0;
	if (!f->exists && !(flags & O_CREAT))
		want = ENOENT;
	else if (f->exists && (flags & O_EXCL))
		want = EEXIST;
	int fd = open(path, flags, 0644);
	expect("open", fd, want);
	if (fd < 0)
		return;
	struct handle *hp = &handles[h];
	memset(hp, 0, sizeof(*hp));
	hp->used = true;
	hp->fd = fd;
	hp->rd = (flags & O_ACCMODE) != O_WRONLY;
	hp->wr = (flags & O_ACCMODE) != O_RDONLY;
	hp->append = flags & O_APPEND;
	if (!f->exists) {
		/* creat(): the record exists (empty) at once */
		f->exists = true;
		f->ino = ino_new();
		memset(f->x, 0, sizeof(f->x));
	}
	hp->ino = f->ino;
	inodes[f->ino].refs++;
	if (flags & O_TRUNC) /* every handle of the file sees it at once */
		buf_resize(&inodes[f->ino].data, &inodes[f->ino].len, 0);
}

static void op_write(int h, bool use_append)
{
	struct handle *hp = &handles[h];
	struct minode *in = &inodes[hp->ino];
	if (!hp->wr)
		return;
	size_t n = 1 + rnd_below(chance(85) ? 4096 : 32768);
	size_t off;
	if (hp->append) {
		off = in->len; /* the end of the shared content, whoever wrote last */
	} else if (use_append || chance(30)) {
		off = in->len; /* write at the end through lseek */
	} else if (chance(10)) {
		off = rnd_below(MAX_FILE / 2); /* far: a hole */
	} else {
		off = rnd_below(in->len + 1);
	}
	if (off + n > MAX_FILE) {
		if (off >= MAX_FILE)
			return;
		n = MAX_FILE - off;
	}
	uint8_t *data = malloc(n);
	rnd_fill(data, n);
	op_begin("%s h%d(slot %d) off %zu len %zu (len %zu)", hp->append ? "append" : "pwrite", h,
	    ino_slot(hp->ino), off, n, in->len);
	ssize_t r;
	if (hp->append) {
		r = write(hp->fd, data, n);
	} else if (chance(50)) {
		r = pwrite(hp->fd, data, n, (off_t)off);
	} else {
		if (lseek(hp->fd, (off_t)off, SEEK_SET) != (off_t)off)
			die("lseek: %s", strerror(errno));
		r = write(hp->fd, data, n);
	}
	if (r < 0)
		die("write: %s", strerror(errno));
	if ((size_t)r != n)
		die("write: short write %zd of %zu", r, n);
	if (off + n > in->len)
		buf_resize(&in->data, &in->len, off + n);
	memcpy(in->data + off, data, n);
	free(data);
}

static void op_read(int h)
{
	struct handle *hp = &handles[h];
	struct minode *in = &inodes[hp->ino];
	if (!hp->rd)
		return;
	size_t off = rnd_below(in->len + 100);
	size_t n = 1 + rnd_below(chance(70) ? 4096 : 65536);
	op_begin("pread h%d(slot %d) off %zu len %zu (len %zu)", h, ino_slot(hp->ino), off, n,
	    in->len);
	uint8_t *buf = malloc(n);
	ssize_t r = pread(hp->fd, buf, n, (off_t)off);
	if (r < 0)
		die("pread: %s", strerror(errno));
	size_t want = off >= in->len ? 0 : (in->len - off < n ? in->len - off : n);
	if ((size_t)r != want)
		die("pread: got %zd bytes, want %zu", r, want);
	for (size_t i = 0; i < want; i++)
		if (buf[i] != in->data[off + i])
			die("pread: byte %zu (offset %zu) got 0x%02x want 0x%02x", i, off + i, buf[i],
			    in->data[off + i]);
	n_checked_bytes += r;
	free(buf);
}

static void op_ftruncate(int h)
{
	struct handle *hp = &handles[h];
	struct minode *in = &inodes[hp->ino];
	if (!hp->wr)
		return;
	size_t len = chance(20) ? 0 : rnd_below(in->len + 8192);
	if (len > MAX_FILE)
		len = MAX_FILE;
	op_begin("ftruncate h%d(slot %d) %zu (len %zu)", h, ino_slot(hp->ino), len, in->len);
	expect("ftruncate", ftruncate(hp->fd, (off_t)len), 0);
	buf_resize(&in->data, &in->len, len);
}

static void op_fsync(int h)
{
	struct handle *hp = &handles[h];
	op_begin("fsync h%d(slot %d)", h, ino_slot(hp->ino));
	/* fsync of a read-only handle is fine too; nothing changes */
	expect("fsync", fsync(hp->fd), 0);
}

static void op_fstat(int h)
{
	struct handle *hp = &handles[h];
	struct stat st;
	op_begin("fstat h%d(slot %d)", h, ino_slot(hp->ino));
	expect("fstat", fstat(hp->fd, &st), 0);
	size_t want = inodes[hp->ino].len;
	if ((size_t)st.st_size != want)
		die("fstat: size %lld, want %zu", (long long)st.st_size, want);
}

static void op_close(int h)
{
	struct handle *hp = &handles[h];
	int slot = ino_slot(hp->ino);
	op_begin("close h%d(slot %d)%s", h, slot, slot < 0 ? " orphan" : "");
	expect("close", close(hp->fd), 0);
	ino_unref(hp->ino);
	memset(hp, 0, sizeof(*hp));
	if (slot >= 0)
		verify_slot(slot);
}

static void op_truncate_path(void)
{
	if (excluded('t'))
		return;
	int slot = pick_slot();
	struct mfile *f = &files[slot];
	if (excluded('o') && slot_open(slot))
		return;
	char path[4096];
	slot_path(slot, path, sizeof(path));
	size_t len = chance(20) ? 0 : rnd_below(expected_size(slot) + 8192);
	op_begin("truncate %s %zu (len %zu)%s", path, len, expected_size(slot),
	    slot_open(slot) ? " (open)" : "");
	expect("truncate", truncate(path, (off_t)len), f->exists ? 0 : ENOENT);
	if (f->exists) /* its open handles see it too */
		buf_resize(&inodes[f->ino].data, &inodes[f->ino].len, len);
}

static void op_rename(void)
{
	if (excluded('r'))
		return;
	int from = pick_slot(), to = pick_slot();
	if (from == to)
		return;
	if (excluded('o') && (slot_open(from) || slot_open(to)))
		return;
	char pf[4096], pt[4096];
	slot_path(from, pf, sizeof(pf));
	slot_path(to, pt, sizeof(pt));
	op_begin("rename %s -> %s%s%s", pf, pt, slot_open(from) ? " (source open)" : "",
	    files[to].exists ? " (onto existing)" : "");
	expect("rename", rename(pf, pt), files[from].exists ? 0 : ENOENT);
	if (!files[from].exists)
		return;
	/* the replaced file's open handles keep its inode */
	if (files[to].exists)
		ino_unref(files[to].ino);
	files[to] = files[from];
	files[from].exists = false;
	memset(files[from].x, 0, sizeof(files[from].x));
}

static void op_unlink(void)
{
	if (excluded('u'))
		return;
	int slot = pick_slot();
	struct mfile *f = &files[slot];
	if (excluded('o') && slot_open(slot))
		return;
	char path[4096];
	slot_path(slot, path, sizeof(path));
	op_begin("unlink %s%s", path, slot_open(slot) ? " (open)" : "");
	expect("unlink", unlink(path), f->exists ? 0 : ENOENT);
	if (!f->exists)
		return;
	ino_unref(f->ino); /* its open handles keep it */
	f->exists = false;
	memset(f->x, 0, sizeof(f->x));
}

static void op_setxattr(void)
{
	if (excluded('x'))
		return;
	int slot = pick_slot();
	struct mfile *f = &files[slot];
	int i = (int)rnd_below(N_XATTRS);
	char path[4096];
	slot_path(slot, path, sizeof(path));
	size_t len = i == 4 ? 0 : (chance(95) ? rnd_below(300) : rnd_below(MAX_XVAL + 1));
	uint8_t val[MAX_XVAL];
	rnd_fill(val, len);
	int flags = chance(70) ? 0 : (chance(50) ? XATTR_CREATE : XATTR_REPLACE);
	op_begin("setxattr %s %s len %zu%s", path, xnames[i], len,
	    flags == XATTR_CREATE ? " CREATE" : flags == XATTR_REPLACE ? " REPLACE" : "");
	int want = 0;
	if (!f->exists)
		want = ENOENT;
	else if (flags == XATTR_CREATE && f->x[i].present)
		want = EEXIST;
	else if (flags == XATTR_REPLACE && !f->x[i].present)
		want = ENODATA;
	expect("setxattr", setxattr(path, xnames[i], val, len, flags), want);
	if (want == 0) {
		f->x[i].present = true;
		f->x[i].len = len;
		memcpy(f->x[i].val, val, len);
	}
}

static void op_removexattr(void)
{
	if (excluded('x'))
		return;
	int slot = pick_slot();
	struct mfile *f = &files[slot];
	int i = (int)rnd_below(N_XATTRS);
	char path[4096];
	slot_path(slot, path, sizeof(path));
	op_begin("removexattr %s %s", path, xnames[i]);
	int want = !f->exists ? ENOENT : (f->x[i].present ? 0 : ENODATA);
	expect("removexattr", removexattr(path, xnames[i]), want);
	if (want == 0)
		f->x[i].present = false;
}

static void op_stat(void)
{
	int slot = pick_slot();
	char path[4096];
	slot_path(slot, path, sizeof(path));
	op_begin("stat %s", path);
	struct stat st;
	int r = stat(path, &st);
	expect("stat", r, files[slot].exists ? 0 : ENOENT);
	if (r == 0 && (size_t)st.st_size != expected_size(slot))
		die("stat: size %lld, model %zu", (long long)st.st_size, expected_size(slot));
}

static void op_verify(void)
{
	int slot = pick_slot();
	char path[4096];
	slot_path(slot, path, sizeof(path));
	op_begin("verify %s", path);
	verify_slot(slot);
}

static void op_listing(void)
{
	if (excluded('l'))
		return;
	unsigned d = (unsigned)rnd_below(n_dirs);
	op_begin("readdir %s", dirs[d]);
	verify_listing(d);
}

static void step(void)
{
	unsigned r = (unsigned)rnd_below(100);
	snprintf(history[op_no % HISTORY], sizeof(history[0]), "#%ld (nothing to do)", op_no);
	cur_op[0] = 0;
	int h = pick_handle();
	if (r < 14 || (r < 66 && h < 0))
		op_open();
	else if (r < 32 && h >= 0)
		op_write(h, false);
	else if (r < 38 && h >= 0)
		op_write(h, true);
	else if (r < 46 && h >= 0)
		op_read(h);
	else if (r < 50 && h >= 0)
		op_ftruncate(h);
	else if (r < 52 && h >= 0)
		op_fsync(h);
	else if (r < 54 && h >= 0)
		op_fstat(h);
	else if (r < 66 && h >= 0)
		op_close(h);
	else if (r < 70)
		op_truncate_path();
	else if (r < 78)
		op_rename();
	else if (r < 82)
		op_unlink();
	else if (r < 90)
		op_setxattr();
	else if (r < 93)
		op_removexattr();
	else if (r < 96)
		op_stat();
	else if (r < 98)
		op_verify();
	else if (r < 100)
		op_listing();
}

static void usage(void)
{
	fprintf(stderr, "usage: model_test [-s SEED] [-n OPS] [-k NAMES] [-x CLASSES] [-v] DIR...\n");
	exit(2);
}

int main(int argc, char **argv)
{
	long ops = 4000;
	int opt;
	seed = 1;
	n_names = 17;
	while ((opt = getopt(argc, argv, "s:n:k:x:v")) != -1) {
		switch (opt) {
		case 's': seed = strtoull(optarg, NULL, 0); break;
		case 'n': ops = strtol(optarg, NULL, 0); break;
		case 'k': n_names = (unsigned)strtoul(optarg, NULL, 0); break;
		case 'x': snprintf(exclude, sizeof(exclude), "%s", optarg); break;
		case 'v': verbose = true; break;
		default: usage();
		}
	}
	if (optind >= argc || argc - optind > MAX_DIRS || n_names < 1 || n_names > MAX_NAMES || ops < 0)
		usage();
	for (int i = optind; i < argc; i++)
		dirs[n_dirs++] = argv[i];
	rng_state = seed;

	/* start clean: none of our names may exist */
	for (unsigned s = 0; s < n_dirs * n_names; s++) {
		char path[4096];
		slot_path((int)s, path, sizeof(path));
		if (unlink(path) < 0 && errno != ENOENT) {
			fprintf(stderr, "model_test: cannot remove %s: %s\n", path, strerror(errno));
			return 2;
		}
	}

	for (op_no = 0; op_no < ops; op_no++)
		step();

	/* the end: close every handle (each close verifies), then everything */
	for (int h = 0; h < MAX_HANDLES; h++)
		if (handles[h].used) {
			op_no++;
			op_close(h);
		}
	op_no++;
	op_begin("final verify");
	for (unsigned s = 0; s < n_dirs * n_names; s++)
		verify_slot((int)s);
	for (unsigned d = 0; d < n_dirs && !excluded('l'); d++)
		verify_listing(d);
	unsigned live = 0;
	for (unsigned s = 0; s < n_dirs * n_names; s++)
		live += files[s].exists;
	printf("model_test: seed %" PRIu64 ": %ld ops OK, %u files live, %ld verifies, %ld bytes compared\n",
	    seed, ops, live, n_verifies, n_checked_bytes);
	return 0;
}
