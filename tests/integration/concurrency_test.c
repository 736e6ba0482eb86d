/*
 * concurrency_test - threads (and, run several times at once, processes)
 * writing and reading the same and different records through the mount.
 *
 * Usage: concurrency_test [-t THREADS] [-i ITERS] [-d SECONDS] [-s SEED] [-m MODE] DIR
 *        concurrency_test -c DIR        check DIR/shared is one whole version
 *
 * MODE says how DIR/shared is written: "rename" (each version written to a
 * private temp name, then renamed over shared - the rsync way), "inplace"
 * (open, flock, truncate, write, close - several writers at once on one
 * record, coordinated as on a local file system) or "both" (the default).
 *
 * All handles of one record share one open-file state (recfsd(8)): in-place
 * writers that did not coordinate would interleave into a mix, as on any
 * local file system, and readers would see a version being written.  So
 * in-place writers hold an exclusive flock(2) from before their truncate
 * until after their close, and readers of DIR/shared a shared one while
 * they read: what the mount must give is then exactly one whole version
 * per read, never a mix, a part, or an empty file.
 *
 * Every thread loops ITERS times (stopping early after SECONDS) over:
 *   - writing a new version of DIR/shared, in place (flock, ftruncate,
 *     several write() calls, close) or through a temp name and rename();
 *   - reading DIR/shared whole and checking it is exactly one version
 *     (a header names writer, sequence and length; the body is derived from
 *     them), never a mix or a part of one, never empty;
 *   - writing, re-reading and deleting its own records DIR/own-<tag>-<t>-<k>,
 *     which must read back exactly what that thread wrote.
 * At the end each thread checks its own records, the process prints
 * "files N" (its records left) and exits 1 if anything was wrong.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HDR 48
#define MAX_LEN (160 * 1024)
#define OWN_FILES 8

struct thread {
	pthread_t tid;
	int id;
	uint64_t rng;
	long writes, renames, reads, empty_reads, own_ops;
	long errors;
	bool own_exists[OWN_FILES];
	uint32_t own_seq[OWN_FILES];
	uint32_t own_len[OWN_FILES];
};

static const char *dir;
static int n_threads = 4;
static long iters = 200;
static time_t deadline;
static unsigned proc_tag;
static int write_mode; /* 0 both, 1 rename only, 2 in place only */
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t rnd(struct thread *t)
{
	uint64_t z = (t->rng += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static void report(struct thread *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(struct thread *t, const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&out_lock);
	fprintf(stderr, "concurrency_test[%u.%d]: ", proc_tag, t ? t->id : -1);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	pthread_mutex_unlock(&out_lock);
	if (t)
		t->errors++;
}

/* A version: "RECFSV w=XXXXXXXX s=XXXXXXXX n=XXXXXXXX\n" padded to HDR
 * bytes, then a body that depends on (writer, seq, offset). */
static void version_make(uint8_t *buf, uint32_t writer, uint32_t seq, uint32_t len)
{
	char hdr[HDR + 1];
	memset(hdr, ' ', HDR);
	int n = snprintf(hdr, sizeof(hdr), "RECFSV w=%08x s=%08x n=%08x", writer, seq, len);
	hdr[n] = ' ';
	hdr[HDR - 1] = '\n';
	memcpy(buf, hdr, HDR);
	uint32_t h = writer * 2654435761u ^ seq * 40503u;
	for (uint32_t i = HDR; i < len; i++)
		buf[i] = (uint8_t)(h + i * 131u + (i >> 8) * 7u);
}

/* 0 if buf[0..len) is one whole version; else a reason. */
static const char *version_check(const uint8_t *buf, size_t len, uint32_t *writer, uint32_t *seq)
{
	static __thread char why[160];
	unsigned w, s, n;
	char hdr[HDR + 1];
	if (len < HDR)
		return "shorter than a header";
	memcpy(hdr, buf, HDR);
	hdr[HDR] = 0;
	if (sscanf(hdr, "RECFSV w=%x s=%x n=%x", &w, &s, &n) != 3) {
		size_t zeros = 0;
		while (zeros < len && buf[zeros] == 0)
			zeros++;
		snprintf(why, sizeof(why), "no version header at offset 0 (%zu bytes, %zu leading zero bytes, "
		    "first bytes %02x %02x %02x %02x)", len, zeros, buf[0], buf[1], buf[2], buf[3]);
		return why;
	}
	if (n != len) {
		snprintf(why, sizeof(why), "version w=%x s=%x has %zu bytes, header says %u", w, s, len, n);
		return why;
	}
	uint32_t h = (uint32_t)w * 2654435761u ^ (uint32_t)s * 40503u;
	for (uint32_t i = HDR; i < len; i++)
		if (buf[i] != (uint8_t)(h + i * 131u + (i >> 8) * 7u)) {
			snprintf(why, sizeof(why), "version w=%x s=%x differs at byte %u of %zu (mixed?)", w, s, i, len);
			return why;
		}
	if (writer)
		*writer = w;
	if (seq)
		*seq = s;
	return NULL;
}

static int write_all(int fd, const uint8_t *buf, size_t len, struct thread *t)
{
	size_t off = 0;
	while (off < len) {
		size_t chunk = 1 + (t ? rnd(t) % 32768 : 65536);
		if (chunk > len - off)
			chunk = len - off;
		ssize_t r = write(fd, buf + off, chunk);
		if (r <= 0)
			return -1;
		off += (size_t)r;
	}
	return 0;
}

/* Read a whole file (under a shared flock with lock): returns length or -1 (errno set). */
static ssize_t read_file(const char *path, uint8_t *buf, size_t size, bool lock)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	if (lock && flock(fd, LOCK_SH) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	size_t got = 0;
	for (int i = 0; i < 100000; i++) {
		if (got == size)
			break;
		ssize_t r = read(fd, buf + got, size - got);
		if (r < 0) {
			int e = errno;
			close(fd);
			errno = e;
			return -1;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	if (got == 0) {
		/* Say what the kernel believed of the file read empty. */
		struct stat st;
		if (fstat(fd, &st) == 0)
			fprintf(stderr, "concurrency_test: %s read empty: inode %llu, st_size %lld\n", path,
			    (unsigned long long)st.st_ino, (long long)st.st_size);
	}
	if (close(fd) < 0)
		return -1;
	return (ssize_t)got;
}

static void shared_write(struct thread *t, uint8_t *buf, uint32_t seq)
{
	char path[4096], tmp[4096];
	uint32_t writer = (proc_tag << 8) | (uint32_t)t->id;
	uint32_t len = HDR + (uint32_t)(rnd(t) % (MAX_LEN - HDR));
	version_make(buf, writer, seq, len);
	snprintf(path, sizeof(path), "%s/shared", dir);
	bool via_rename = write_mode == 1 || (write_mode == 0 && rnd(t) % 2);
	if (via_rename)
		snprintf(tmp, sizeof(tmp), "%s/.tmp-%u-%d", dir, proc_tag, t->id);
	const char *target = via_rename ? tmp : path;
	int fd = open(target, O_WRONLY | O_CREAT | (via_rename ? O_TRUNC : 0), 0644);
	if (fd < 0) {
		report(t, "open %s for writing: %s", target, strerror(errno));
		return;
	}
	/* In place: alone from the truncate to the close (which stores the
	 * record before the lock goes with the last reference). */
	if (!via_rename && (flock(fd, LOCK_EX) < 0 || ftruncate(fd, 0) < 0))
		report(t, "flock + ftruncate %s: %s", target, strerror(errno));
	if (write_all(fd, buf, len, t) < 0)
		report(t, "write %s: %s", target, strerror(errno));
	if (close(fd) < 0)
		report(t, "close %s: %s", target, strerror(errno));
	if (via_rename) {
		if (rename(tmp, path) < 0)
			report(t, "rename %s -> shared: %s", tmp, strerror(errno));
		t->renames++;
	}
	t->writes++;
}

static void shared_read(struct thread *t, uint8_t *buf)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/shared", dir);
	ssize_t n = read_file(path, buf, MAX_LEN + 1, true);
	t->reads++;
	if (n < 0) {
		report(t, "read %s: %s", path, strerror(errno));
		return;
	}
	if (n == 0) {
		t->empty_reads++;
		/* in-place writers truncate only under their exclusive lock */
		report(t, "empty read of shared, which is never empty between versions");
		return;
	}
	const char *why = version_check(buf, (size_t)n, NULL, NULL);
	if (why)
		report(t, "torn read of shared: %s", why);
}

static void own_op(struct thread *t, uint8_t *buf)
{
	int k = (int)(rnd(t) % OWN_FILES);
	char path[4096];
	snprintf(path, sizeof(path), "%s/own-%u-%d-%d", dir, proc_tag, t->id, k);
	uint32_t writer = (proc_tag << 8) | (uint32_t)t->id;
	t->own_ops++;
	if (t->own_exists[k] && rnd(t) % 4 == 0) {
		if (unlink(path) < 0)
			report(t, "unlink %s: %s", path, strerror(errno));
		t->own_exists[k] = false;
		struct stat st;
		if (stat(path, &st) == 0 || errno != ENOENT)
			report(t, "%s still there after unlink", path);
		return;
	}
	uint32_t seq = t->own_seq[k] + 1;
	uint32_t len = HDR + (uint32_t)(rnd(t) % 20000);
	version_make(buf, writer, seq, len);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		report(t, "open %s: %s", path, strerror(errno));
		return;
	}
	if (write_all(fd, buf, len, t) < 0)
		report(t, "write %s: %s", path, strerror(errno));
	if (close(fd) < 0)
		report(t, "close %s: %s", path, strerror(errno));
	t->own_exists[k] = true;
	t->own_seq[k] = seq;
	t->own_len[k] = len;
	/* read back at once: only this thread writes it */
	ssize_t n = read_file(path, buf, MAX_LEN, false);
	uint32_t w, s;
	const char *why;
	if (n < 0)
		report(t, "read back %s: %s", path, strerror(errno));
	else if ((why = version_check(buf, (size_t)n, &w, &s)))
		report(t, "read back %s: %s", path, why);
	else if (w != writer || s != seq)
		report(t, "read back %s: version w=%x s=%x, wrote w=%x s=%x", path, w, s, writer, seq);
}

static void own_verify(struct thread *t, uint8_t *buf)
{
	uint32_t writer = (proc_tag << 8) | (uint32_t)t->id;
	for (int k = 0; k < OWN_FILES; k++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/own-%u-%d-%d", dir, proc_tag, t->id, k);
		ssize_t n = read_file(path, buf, MAX_LEN, false);
		if (!t->own_exists[k]) {
			if (n >= 0 || errno != ENOENT)
				report(t, "final: %s should not exist", path);
			continue;
		}
		uint32_t w, s;
		const char *why;
		if (n < 0)
			report(t, "final: read %s: %s", path, strerror(errno));
		else if ((why = version_check(buf, (size_t)n, &w, &s)))
			report(t, "final: %s: %s", path, why);
		else if (w != writer || s != t->own_seq[k] || (uint32_t)n != t->own_len[k])
			report(t, "final: %s holds w=%x s=%x (%zd bytes), last written s=%x (%u bytes)", path,
			    w, s, n, t->own_seq[k], t->own_len[k]);
	}
}

static void *thread_main(void *arg)
{
	struct thread *t = arg;
	uint8_t *buf = malloc(MAX_LEN + 1);
	if (!buf) {
		report(t, "out of memory");
		return NULL;
	}
	uint32_t seq = 0;
	for (long i = 0; i < iters && time(NULL) < deadline; i++) {
		unsigned r = (unsigned)(rnd(t) % 10);
		if (r < 3)
			shared_write(t, buf, ++seq);
		else if (r < 6)
			shared_read(t, buf);
		else
			own_op(t, buf);
	}
	own_verify(t, buf);
	free(buf);
	return NULL;
}

static int check_shared(void)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/shared", dir);
	uint8_t *buf = malloc(MAX_LEN + 1);
	ssize_t n = read_file(path, buf, MAX_LEN + 1, true);
	if (n < 0) {
		fprintf(stderr, "concurrency_test: read %s: %s\n", path, strerror(errno));
		return 1;
	}
	uint32_t w, s;
	const char *why = version_check(buf, (size_t)n, &w, &s);
	if (why) {
		fprintf(stderr, "concurrency_test: final %s is not one whole version: %s\n", path, why);
		return 1;
	}
	struct stat st;
	if (stat(path, &st) < 0 || st.st_size != n) {
		fprintf(stderr, "concurrency_test: stat size of %s is %lld, read %zd\n", path,
		    (long long)st.st_size, n);
		return 1;
	}
	printf("shared: whole version w=%x s=%x, %zd bytes\n", w, s, n);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	int opt, seconds = 30;
	bool check = false;
	uint64_t seed = (uint64_t)getpid();
	while ((opt = getopt(argc, argv, "t:i:d:s:m:c")) != -1) {
		switch (opt) {
		case 't': n_threads = atoi(optarg); break;
		case 'i': iters = atol(optarg); break;
		case 'd': seconds = atoi(optarg); break;
		case 's': seed = strtoull(optarg, NULL, 0); break;
		case 'c': check = true; break;
		case 'm':
			if (strcmp(optarg, "both") == 0)
				write_mode = 0;
			else if (strcmp(optarg, "rename") == 0)
				write_mode = 1;
			else if (strcmp(optarg, "inplace") == 0)
				write_mode = 2;
			else
				goto usage;
			break;
		default: goto usage;
		}
	}
	if (optind != argc - 1 || n_threads < 1 || n_threads > 64)
		goto usage;
	dir = argv[optind];
	if (check)
		return check_shared();

	proc_tag = (unsigned)(seed % 100000);
	deadline = time(NULL) + seconds;
	/* The shared record exists, whole, before anyone reads it: the first
	 * process to get there writes it under a temp name and renames it into
	 * place without replacing (a plain O_CREAT|O_EXCL would let the others
	 * read it empty between the create and the write, as on any file
	 * system). */
	{
		char path[4096], tmp[4096];
		uint8_t *buf = malloc(MAX_LEN);
		snprintf(path, sizeof(path), "%s/shared", dir);
		snprintf(tmp, sizeof(tmp), "%s/.tmp-init-%u", dir, proc_tag);
		int fd = buf ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644) : -1;
		if (fd < 0) {
			perror("create initial shared");
			return 1;
		}
		version_make(buf, 0xffffff, 0, 1000);
		if (write_all(fd, buf, 1000, NULL) < 0 || close(fd) < 0) {
			perror("write initial shared");
			return 1;
		}
		if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) < 0) {
			if (errno != EEXIST) {
				perror("rename initial shared");
				return 1;
			}
			if (unlink(tmp) < 0) {
				perror("unlink initial temp");
				return 1;
			}
		}
		free(buf);
	}
	struct thread *th = calloc((size_t)n_threads, sizeof(*th));
	for (int i = 0; i < n_threads; i++) {
		th[i].id = i;
		th[i].rng = seed * 1000003u + (uint64_t)i;
		if (pthread_create(&th[i].tid, NULL, thread_main, &th[i]) != 0) {
			perror("pthread_create");
			return 1;
		}
	}
	long writes = 0, renames = 0, reads = 0, empty = 0, own = 0, errors = 0, files = 0;
	for (int i = 0; i < n_threads; i++) {
		pthread_join(th[i].tid, NULL);
		writes += th[i].writes;
		renames += th[i].renames;
		reads += th[i].reads;
		empty += th[i].empty_reads;
		own += th[i].own_ops;
		errors += th[i].errors;
		for (int k = 0; k < OWN_FILES; k++)
			files += th[i].own_exists[k];
	}
	printf("proc %u: shared writes %ld (%ld by rename), shared reads %ld (%ld empty), own ops %ld, errors %ld, files %ld\n",
	    proc_tag, writes, renames, reads, empty, own, errors, files);
	free(th);
	return errors ? 1 : 0;
usage:
	fprintf(stderr, "usage: concurrency_test [-t THREADS] [-i ITERS] [-d SECONDS] [-s SEED] [-m both|rename|inplace] DIR | -c DIR\n");
	return 2;
}
