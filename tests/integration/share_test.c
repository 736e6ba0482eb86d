/*
 * share_test - several descriptors and processes on one file through the
 * mount: what "all handles of one record share one open-file state" (recfsd(8))
 * promises, checked as a program on a local file system would see it.
 *
 * Usage:
 *   share_test append FILE PROCS LINES   PROCS processes each open FILE
 *                                        O_APPEND|O_CREAT (odd ones
 *                                        O_WRONLY, even ones O_RDWR) once and
 *                                        write LINES lines, one write(2)
 *                                        each; then FILE must hold
 *                                        PROCS * LINES lines, each whole,
 *                                        each process's in its order
 *   share_test check-lines FILE PROCS LINES   only the check (for lines
 *                                        written by shell loops: "p<P> l<L>"
 *                                        padded to a fixed width)
 *   share_test see FILE                  two descriptors on FILE: bytes
 *                                        written through one are read
 *                                        through the other before any close
 *                                        (write-only + read-only, read-write
 *                                        + read-write, the reader opened
 *                                        before and after the write), and
 *                                        ftruncate through one is seen
 *                                        through the other (fstat, pread),
 *                                        and a truncate by path through a
 *                                        reader
 *   share_test see-cached FILE           the same for a reader that uses the
 *                                        page cache and read before the
 *                                        writer opened
 *   share_test hold FILE TEXT            write TEXT into FILE (O_TRUNC),
 *                                        print "written", then keep it open
 *                                        without closing until killed
 *   share_test errors FILE               store errors reach every writer:
 *                                        descriptors A and B write, R
 *                                        (read-write) does not; prints
 *                                        "written" and waits for a line on
 *                                        stdin (the caller makes stores
 *                                        fail meanwhile); then fsync(A),
 *                                        close(B), close(A) each fail with
 *                                        ENOSPC and close(R) succeeds;
 *                                        prints "closed", waits for a line
 *                                        (stores work again), and checks a
 *                                        new append is stored alone
 *   share_test ctime FILE                ftruncate + close through one
 *                                        descriptor moves the ctime that
 *                                        stat shows at once
 *
 * Prints one line per failed check and exits 1 if any; every loop is
 * bounded, every wait too.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LINE_LEN 32  /* "p<P> l<L>" padded with '.' to 31 bytes + '\n' */
#define MAX_PROCS 16

static int failures;

static void
bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
bad(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("share_test: FAIL: ", stdout);
	vprintf(fmt, ap);
	putchar('\n');
	va_end(ap);
	failures++;
}

static void
make_line(char *buf, int p, int l)
{
	int n = snprintf(buf, LINE_LEN + 1, "p%d l%d ", p, l);

	memset(buf + n, '.', LINE_LEN - 1 - (size_t)n);
	buf[LINE_LEN - 1] = '\n';
}

static int
appender(const char *path, int p, int lines)
{
	char line[LINE_LEN + 1];
	/* Odd processes write-only, even ones read-write (page-cached unless
	 * O_APPEND makes the daemon bypass the cache). */
	int fd = open(path, (p % 2 ? O_WRONLY : O_RDWR) | O_APPEND | O_CREAT, 0644);

	if (fd < 0) {
		fprintf(stderr, "share_test: process %d: open %s: %s\n", p, path, strerror(errno));
		return 1;
	}
	for (int l = 1; l <= lines; l++) {
		make_line(line, p, l);
		if (write(fd, line, LINE_LEN) != LINE_LEN) {
			fprintf(stderr, "share_test: process %d: write line %d: %s\n", p, l,
			    strerror(errno));
			close(fd);
			return 1;
		}
	}
	if (close(fd) < 0) {
		fprintf(stderr, "share_test: process %d: close: %s\n", p, strerror(errno));
		return 1;
	}
	return 0;
}

/* FILE holds procs * lines whole lines, each process's once and in order. */
static int
check_lines(const char *path, int procs, int lines)
{
	int next[MAX_PROCS + 1];
	char buf[LINE_LEN + 1], want[LINE_LEN + 1];
	long count = 0, torn = 0, order = 0;
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		bad("open %s: %s", path, strerror(errno));
		return 1;
	}
	for (int p = 1; p <= procs; p++)
		next[p] = 1;
	while (fgets(buf, sizeof(buf), f) != NULL) {
		int p, l;

		count++;
		if (strlen(buf) != LINE_LEN || sscanf(buf, "p%d l%d ", &p, &l) != 2 ||
		    p < 1 || p > procs) {
			if (torn++ < 3)
				bad("line %ld is not one whole line: '%.40s'", count, buf);
			continue;
		}
		make_line(want, p, l);
		if (memcmp(buf, want, LINE_LEN) != 0) {
			if (torn++ < 3)
				bad("line %ld is not one whole line: '%.40s'", count, buf);
			continue;
		}
		if (l != next[p] && order++ < 3)
			bad("line %ld: process %d line %d, expected its line %d", count, p, l, next[p]);
		next[p] = l + 1;
	}
	fclose(f);
	printf("share_test: %s: %ld lines (%d x %d expected), %ld torn, %ld out of order\n", path,
	    count, procs, lines, torn, order);
	if (count != (long)procs * lines)
		bad("%s has %ld lines, expected %d", path, count, procs * lines);
	return failures ? 1 : 0;
}

static int
do_append(const char *path, int procs, int lines)
{
	pid_t pids[MAX_PROCS];
	int rc = 0;

	for (int p = 0; p < procs; p++) {
		pids[p] = fork();
		if (pids[p] < 0) {
			perror("share_test: fork");
			return 1;
		}
		if (pids[p] == 0)
			_exit(appender(path, p + 1, lines));
	}
	for (int p = 0; p < procs; p++) {
		int st;

		if (waitpid(pids[p], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			bad("appending process %d failed", p + 1);
			rc = 1;
		}
	}
	return check_lines(path, procs, lines) || rc;
}

/* pread through fd expecting exactly want (len bytes). */
static void
expect_read(int fd, const char *what, const char *want, size_t len)
{
	char buf[256];
	ssize_t n = pread(fd, buf, sizeof(buf), 0);

	if (n < 0)
		bad("%s: pread: %s", what, strerror(errno));
	else if ((size_t)n != len || memcmp(buf, want, len) != 0)
		bad("%s: read %zd bytes '%.*s', expected %zu bytes '%.*s'", what, n, (int)(n > 0 ? n : 0),
		    buf, len, (int)len, want);
}

static void
expect_size(int fd, const char *what, off_t want)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		bad("%s: fstat: %s", what, strerror(errno));
	else if (st.st_size != want)
		bad("%s: size %lld, expected %lld", what, (long long)st.st_size, (long long)want);
}

static int
open_or_bad(const char *path, int flags)
{
	int fd = open(path, flags, 0644);

	if (fd < 0)
		bad("open %s (flags %#x): %s", path, flags, strerror(errno));
	return fd;
}

static int
do_see(const char *path)
{
	int w, r;

	/* A write-only writer, a reader opened before the write. */
	w = open_or_bad(path, O_WRONLY | O_CREAT | O_TRUNC);
	r = open_or_bad(path, O_RDONLY);
	if (w < 0 || r < 0)
		return 1;
	if (write(w, "hello", 5) != 5)
		bad("write hello: %s", strerror(errno));
	expect_read(r, "reader opened before the write, writer still open", "hello", 5);
	expect_size(r, "fstat through the reader", 5);
	/* ... and a second write, read again through the same reader. */
	if (pwrite(w, "HELLO world", 11, 0) != 11)
		bad("pwrite: %s", strerror(errno));
	expect_read(r, "second write, read through the same reader", "HELLO world", 11);
	/* A reader opened after the write. */
	{
		int r2 = open_or_bad(path, O_RDONLY);

		if (r2 >= 0) {
			expect_read(r2, "reader opened after the write", "HELLO world", 11);
			close(r2);
		}
	}
	/* ftruncate through the writer is seen through the reader. */
	if (ftruncate(w, 3) < 0)
		bad("ftruncate: %s", strerror(errno));
	expect_size(r, "fstat through the reader after ftruncate through the writer", 3);
	expect_read(r, "read after ftruncate through the writer", "HEL", 3);
	if (close(w) < 0)
		bad("close writer: %s", strerror(errno));
	expect_read(r, "after the writer's close", "HEL", 3);
	close(r);

	/* Two read-write descriptors (page-cached), each writes, each reads the other's bytes. */
	{
		int a = open_or_bad(path, O_RDWR), b = open_or_bad(path, O_RDWR);

		if (a < 0 || b < 0)
			return 1;
		if (pwrite(a, "abc", 3, 0) != 3)
			bad("pwrite a: %s", strerror(errno));
		expect_read(b, "read-write b reads a's write", "abc", 3);
		if (pwrite(b, "xyz", 3, 3) != 3)
			bad("pwrite b: %s", strerror(errno));
		expect_read(a, "read-write a reads b's write", "abcxyz", 6);
		if (ftruncate(b, 2) < 0)
			bad("ftruncate b: %s", strerror(errno));
		expect_size(a, "fstat a after ftruncate through b", 2);
		expect_read(a, "read a after ftruncate through b", "ab", 2);
		if (close(a) < 0)
			bad("close a: %s", strerror(errno));
		if (close(b) < 0)
			bad("close b: %s", strerror(errno));
	}
	/* What the last close stored: the content all of them saw. */
	r = open_or_bad(path, O_RDONLY);
	if (r >= 0) {
		expect_read(r, "after every close", "ab", 2);
		/* A truncate by path with no writer open: the reader sees it too. */
		if (truncate(path, 5) < 0)
			bad("truncate by path: %s", strerror(errno));
		expect_size(r, "fstat through a reader after a truncate by path", 5);
		expect_read(r, "read through a reader after a truncate by path", "ab\0\0\0", 5);
		close(r);
	}
	return failures ? 1 : 0;
}

/* A reader that uses the page cache (no writer for a second before its
 * open) and read the file, then a writer: the reader sees the new bytes. */
static int
do_see_cached(const char *path)
{
	struct timespec settle = { 1, 300 * 1000000 };
	int w = open_or_bad(path, O_WRONLY | O_CREAT | O_TRUNC), r;

	if (w < 0)
		return 1;
	if (write(w, "old content", 11) != 11)
		bad("write: %s", strerror(errno));
	if (close(w) < 0)
		bad("close: %s", strerror(errno));
	nanosleep(&settle, NULL);
	r = open_or_bad(path, O_RDONLY);
	if (r < 0)
		return 1;
	expect_read(r, "cached reader, before any writer", "old content", 11);
	w = open_or_bad(path, O_WRONLY);
	if (w < 0)
		return 1;
	if (pwrite(w, "NEW", 3, 0) != 3 || pwrite(w, "!", 1, 11) != 1)
		bad("pwrite: %s", strerror(errno));
	expect_size(r, "cached reader's fstat after the writer's writes", 12);
	expect_read(r, "cached reader after the writer's writes, writer open", "NEW content!", 12);
	if (close(w) < 0)
		bad("close: %s", strerror(errno));
	expect_read(r, "cached reader after the writer's close", "NEW content!", 12);
	close(r);
	return failures ? 1 : 0;
}

static int
do_hold(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	size_t len = strlen(text);

	if (fd < 0 || write(fd, text, len) != (ssize_t)len) {
		perror("share_test hold");
		return 1;
	}
	printf("written\n");
	fflush(stdout);
	/* Open until killed (bounded: 10 minutes). */
	for (int i = 0; i < 600; i++)
		sleep(1);
	return 0;
}

static void
expect_errno(const char *what, int rc, int want)
{
	int got = rc < 0 ? errno : 0;

	if (got != want)
		bad("%s: %s, expected %s", what, got ? strerror(got) : "success",
		    want ? strerror(want) : "success");
}

static bool
wait_line(void)
{
	char line[64];

	return fgets(line, sizeof(line), stdin) != NULL;
}

static int
do_errors(const char *path)
{
	int a = open_or_bad(path, O_WRONLY | O_CREAT | O_TRUNC);
	int b = open_or_bad(path, O_WRONLY);
	int r = open_or_bad(path, O_RDWR);

	if (a < 0 || b < 0 || r < 0)
		return 1;
	/* Stored empty first: the failed stores below must leave it so. */
	if (fsync(a) < 0)
		bad("first fsync: %s", strerror(errno));
	if (pwrite(a, "aaa", 3, 0) != 3 || pwrite(b, "bbb", 3, 3) != 3)
		bad("writes: %s", strerror(errno));
	printf("written\n");
	fflush(stdout);
	if (!wait_line())
		return 1;
	expect_errno("fsync of writer A while stores fail", fsync(a), ENOSPC);
	expect_errno("close of writer B (its bytes were in that store)", close(b), ENOSPC);
	expect_errno("close of writer A", close(a), ENOSPC);
	expect_errno("close of R, which wrote nothing", close(r), 0);
	printf("closed\n");
	fflush(stdout);
	if (!wait_line())
		return 1;
	a = open_or_bad(path, O_WRONLY | O_APPEND);
	if (a < 0)
		return 1;
	if (write(a, "x", 1) != 1)
		bad("append after the failure: %s", strerror(errno));
	expect_errno("close after stores work again", close(a), 0);
	r = open_or_bad(path, O_RDONLY);
	if (r >= 0) {
		expect_read(r, "content after the failed stores and a new append", "x", 1);
		close(r);
	}
	return failures ? 1 : 0;
}

static int
do_ctime(const char *path)
{
	struct stat before, after;
	struct timespec pause = { 0, 50 * 1000000 };
	int fd;

	if (stat(path, &before) < 0) {
		bad("stat %s: %s", path, strerror(errno));
		return 1;
	}
	nanosleep(&pause, NULL);
	fd = open_or_bad(path, O_RDWR);
	if (fd < 0)
		return 1;
	if (ftruncate(fd, 1) < 0)
		bad("ftruncate: %s", strerror(errno));
	if (close(fd) < 0)
		bad("close: %s", strerror(errno));
	if (stat(path, &after) < 0) {
		bad("stat %s: %s", path, strerror(errno));
		return 1;
	}
	printf("share_test: ctime %lld.%09ld -> %lld.%09ld, size %lld\n",
	    (long long)before.st_ctim.tv_sec, before.st_ctim.tv_nsec,
	    (long long)after.st_ctim.tv_sec, after.st_ctim.tv_nsec, (long long)after.st_size);
	if (after.st_size != 1)
		bad("size after ftruncate + close: %lld, expected 1", (long long)after.st_size);
	if (after.st_ctim.tv_sec == before.st_ctim.tv_sec &&
	    after.st_ctim.tv_nsec == before.st_ctim.tv_nsec)
		bad("ctime did not move after ftruncate + close");
	return failures ? 1 : 0;
}

int
main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "append") == 0) {
		int procs = atoi(argv[3]), lines = atoi(argv[4]);

		if (procs < 1 || procs > MAX_PROCS || lines < 1)
			goto usage;
		return do_append(argv[2], procs, lines);
	}
	if (argc == 5 && strcmp(argv[1], "check-lines") == 0) {
		int procs = atoi(argv[3]), lines = atoi(argv[4]);

		if (procs < 1 || procs > MAX_PROCS || lines < 1)
			goto usage;
		return check_lines(argv[2], procs, lines);
	}
	if (argc == 3 && strcmp(argv[1], "see") == 0)
		return do_see(argv[2]);
	if (argc == 3 && strcmp(argv[1], "see-cached") == 0)
		return do_see_cached(argv[2]);
	if (argc == 4 && strcmp(argv[1], "hold") == 0)
		return do_hold(argv[2], argv[3]);
	if (argc == 3 && strcmp(argv[1], "ctime") == 0)
		return do_ctime(argv[2]);
	if (argc == 3 && strcmp(argv[1], "errors") == 0)
		return do_errors(argv[2]);
usage:
	fprintf(stderr, "usage: share_test append|check-lines FILE PROCS LINES | see|see-cached FILE | "
	    "hold FILE TEXT | ctime FILE | errors FILE\n");
	return 2;
}
