/*
 * tree_posix.c - our POSIX conformance test of a tree inside a set
 * (t_tree.sh runs it as root on a mount with allow_other).
 *
 *   tree_posix DIR
 *
 * DIR is an empty directory inside a set.  Everything happens at depth 3
 * below it (DIR/a/b/c): mkdir, rmdir, rename, unlink, open, truncate,
 * chmod, chown, utimensat, symlink, readlink - the errno rules POSIX gives
 * (ENOENT, EEXIST, ENOTEMPTY, ENOTDIR, EISDIR, EINVAL, ENAMETOOLONG), the
 * times of the file and of its parent directory, and permissions for an
 * unprivileged user (setfsuid/setfsgid to 65534: the kernel checks the
 * mode bits we store, default_permissions).  The kinds refused by design
 * (hard links, device nodes, FIFOs, sockets) must fail with EPERM.
 * Prints "ok: ..." / "FAIL: ..." lines; exits 1 if any check failed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int fails;
static char base[1024];

static void
check(bool ok, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf("%s: ", ok ? "ok" : "FAIL");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	if (!ok)
		fails++;
}

/* rc must be -1 with errno e. */
static void
check_err(int rc, int e, const char *what)
{
	int got = errno;

	check(rc == -1 && got == e, "%s -> %s (got %d, %s)", what, strerrorname_np(e), rc,
	    rc == -1 ? strerrorname_np(got) : "success");
}

static void
check_ok(int rc, const char *what)
{
	int got = errno;

	check(rc == 0, "%s (got %d%s%s)", what, rc, rc != 0 ? ", " : "",
	    rc != 0 ? strerrorname_np(got) : "");
}

static const char *
p(const char *rel)
{
	static char buf[4][PATH_MAX + 1100];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", base, rel);
	return buf[i];
}

static int64_t
ns_of(struct timespec t)
{
	return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static struct stat
st_of(const char *path)
{
	struct stat st;

	memset(&st, 0, sizeof(st));
	if (lstat(path, &st) != 0)
		check(false, "lstat %s: %s", path, strerror(errno));
	return st;
}

/* Let the clock move past the last change (ctime has ms resolution). */
static void
tick(void)
{
	struct timespec ts = { 0, 20 * 1000 * 1000 };

	nanosleep(&ts, NULL);
}

static void
parent_moved(const char *dir, const struct stat *before, const char *what)
{
	struct stat now = st_of(dir);

	check(ns_of(now.st_mtim) > ns_of(before->st_mtim) &&
	    ns_of(now.st_ctim) > ns_of(before->st_ctim),
	    "%s moves the parent's mtime and ctime", what);
}

static int
write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, text, strlen(text));
	if (close(fd) != 0 || n != (ssize_t)strlen(text))
		return -1;
	return 0;
}

/* A name of n bytes. */
static const char *
longname(size_t n)
{
	static char b[300];

	memset(b, 'n', n);
	b[n] = '\0';
	return b;
}

static void
test_mkdir_rmdir(void)
{
	struct stat st, par;
	char name[320];

	check_ok(mkdir(p("a"), 0755), "mkdir a");
	check_ok(mkdir(p("a/b"), 0755), "mkdir a/b");
	check_ok(mkdir(p("a/b/c"), 0750), "mkdir a/b/c (depth 3)");
	st = st_of(p("a/b/c"));
	check(S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 0750, "a/b/c is a directory of mode 0750 (%o)",
	    st.st_mode);
	check(st.st_uid == getuid() && st.st_gid == getgid(), "a/b/c is owned by its creator");
	check_err(mkdir(p("a/b/c"), 0755), EEXIST, "mkdir of an existing directory");
	check_ok(write_file(p("a/b/c/f"), "x"), "create a/b/c/f");
	check_err(mkdir(p("a/b/c/f"), 0755), EEXIST, "mkdir over a file");
	check_err(mkdir(p("a/nope/d"), 0755), ENOENT, "mkdir in a missing directory");
	check_err(mkdir(p("a/b/c/f/d"), 0755), ENOTDIR, "mkdir below a file");
	/* Names: 236 bytes inside a nested directory, longer is refused. */
	snprintf(name, sizeof(name), "a/b/c/%s", longname(236));
	check_ok(mkdir(p(name), 0755), "mkdir of a 236-byte name at depth 3");
	check_ok(rmdir(p(name)), "rmdir of it");
	snprintf(name, sizeof(name), "a/b/c/%s", longname(237));
	check_err(mkdir(p(name), 0755), ENAMETOOLONG, "mkdir of a 237-byte name at depth 3");
	check_err(open(p(name), O_CREAT | O_WRONLY, 0644), ENAMETOOLONG, "create of a 237-byte name");
	snprintf(name, sizeof(name), "a/b/c/%s", longname(256));
	check_err(mkdir(p(name), 0755), ENAMETOOLONG, "mkdir of a 256-byte name");

	par = st_of(p("a/b/c"));
	tick();
	check_ok(mkdir(p("a/b/c/d"), 0755), "mkdir a/b/c/d");
	parent_moved(p("a/b/c"), &par, "mkdir");
	check_ok(write_file(p("a/b/c/d/g"), "y"), "create a/b/c/d/g");
	check_err(rmdir(p("a/b/c/d")), ENOTEMPTY, "rmdir of a non-empty directory");
	check(access(p("a/b/c/d/g"), F_OK) == 0, "its file is still there");
	check_err(rmdir(p("a/b/c/d/g")), ENOTDIR, "rmdir of a file");
	check_err(rmdir(p("a/b/c/none")), ENOENT, "rmdir of a missing name");
	check_err(rmdir(p("a/b/c/d/.")), EINVAL, "rmdir of .");
	check_ok(unlink(p("a/b/c/d/g")), "unlink a/b/c/d/g");
	par = st_of(p("a/b/c"));
	tick();
	check_ok(rmdir(p("a/b/c/d")), "rmdir of the emptied directory");
	parent_moved(p("a/b/c"), &par, "rmdir");
	check_err(access(p("a/b/c/d"), F_OK), ENOENT, "it is gone");
}

static void
test_unlink_open_truncate(void)
{
	struct stat st, st2, par;
	int fd;

	par = st_of(p("a/b/c"));
	tick();
	fd = open(p("a/b/c/o"), O_WRONLY | O_CREAT | O_EXCL, 0640);
	check(fd >= 0, "open O_CREAT|O_EXCL creates a/b/c/o");
	if (fd >= 0)
		close(fd);
	parent_moved(p("a/b/c"), &par, "create");
	st = st_of(p("a/b/c/o"));
	check(S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0640 && st.st_size == 0,
	    "it is an empty regular file of mode 0640");
	check_err(open(p("a/b/c/o"), O_WRONLY | O_CREAT | O_EXCL, 0644), EEXIST,
	    "open O_CREAT|O_EXCL of an existing file");
	check_err(open(p("a/b/c/missing"), O_RDONLY), ENOENT, "open of a missing file");
	check_err(open(p("a/b/c"), O_WRONLY), EISDIR, "open of a directory for writing");
	check_err(open(p("a/b/c/o/x"), O_RDONLY), ENOTDIR, "open below a file");
	check_err(open(p("a/b/c/o"), O_RDONLY | O_DIRECTORY), ENOTDIR, "O_DIRECTORY on a file");

	check_ok(write_file(p("a/b/c/o"), "hello world"), "write a/b/c/o");
	st = st_of(p("a/b/c/o"));
	tick();
	check_ok(truncate(p("a/b/c/o"), 5), "truncate to 5");
	st2 = st_of(p("a/b/c/o"));
	check(st2.st_size == 5, "its size is 5 (%lld)", (long long)st2.st_size);
	check(ns_of(st2.st_mtim) > ns_of(st.st_mtim) && ns_of(st2.st_ctim) > ns_of(st.st_ctim),
	    "truncate moves the file's mtime and ctime");
	check_ok(truncate(p("a/b/c/o"), 100), "truncate to 100 (extend)");
	st2 = st_of(p("a/b/c/o"));
	check(st2.st_size == 100, "its size is 100");
	fd = open(p("a/b/c/o"), O_RDONLY);
	if (fd >= 0) {
		char buf[100];
		ssize_t n = read(fd, buf, sizeof(buf));

		check(n == 100 && memcmp(buf, "hello", 5) == 0 && buf[5] == 0 && buf[99] == 0,
		    "the extension reads as zeros");
		close(fd);
	}
	check_err(truncate(p("a/b/c"), 0), EISDIR, "truncate of a directory");
	check_err(truncate(p("a/b/c/nope"), 0), ENOENT, "truncate of a missing file");
	fd = open(p("a/b/c/o"), O_WRONLY | O_TRUNC);
	check(fd >= 0, "open O_TRUNC");
	if (fd >= 0)
		close(fd);
	check(st_of(p("a/b/c/o")).st_size == 0, "O_TRUNC empties it");

	par = st_of(p("a/b/c"));
	tick();
	check_ok(unlink(p("a/b/c/o")), "unlink a/b/c/o");
	parent_moved(p("a/b/c"), &par, "unlink");
	check_err(unlink(p("a/b/c/o")), ENOENT, "unlink of a missing file");
	check_err(unlink(p("a/b/c")), EISDIR, "unlink of a directory");
}

static void
test_rename(void)
{
	struct stat st, st2, par, par2;

	check_ok(mkdir(p("a/b/c/r1"), 0755), "mkdir r1");
	check_ok(mkdir(p("a/b/c/r1/in"), 0755), "mkdir r1/in");
	check_ok(write_file(p("a/b/c/r1/in/f"), "content"), "create r1/in/f");
	st = st_of(p("a/b/c/r1"));
	par = st_of(p("a/b/c"));
	par2 = st_of(p("a/b"));
	tick();
	check_ok(rename(p("a/b/c/r1"), p("a/b/r2")), "rename of a directory to another parent");
	parent_moved(p("a/b/c"), &par, "rename (old parent)");
	parent_moved(p("a/b"), &par2, "rename (new parent)");
	st2 = st_of(p("a/b/r2"));
	check(st2.st_ino == st.st_ino, "the directory keeps its inode number");
	check(access(p("a/b/r2/in/f"), F_OK) == 0 && access(p("a/b/c/r1"), F_OK) != 0,
	    "its subtree moved with it");
	check_err(rename(p("a/b/r2"), p("a/b/r2/in/x")), EINVAL, "rename into its own subtree");
	check_err(rename(p("a/b/missing"), p("a/b/x")), ENOENT, "rename of a missing name");
	check_ok(mkdir(p("a/b/full"), 0755), "mkdir full");
	check_ok(write_file(p("a/b/full/f"), "z"), "create full/f");
	check_err(rename(p("a/b/r2"), p("a/b/full")), ENOTEMPTY, "rename over a non-empty directory");
	check_ok(mkdir(p("a/b/empty"), 0755), "mkdir empty");
	check_ok(rename(p("a/b/r2"), p("a/b/empty")), "rename over an empty directory");
	check(access(p("a/b/empty/in/f"), F_OK) == 0, "it replaced the empty one");
	check_err(rename(p("a/b/empty"), p("a/b/full/f")), ENOTDIR, "rename of a directory over a file");
	check_err(rename(p("a/b/full/f"), p("a/b/empty")), EISDIR, "rename of a file over a directory");
	check_ok(rename(p("a/b/full/f"), p("a/b/c/moved")), "rename of a file to another directory");
	check(access(p("a/b/c/moved"), F_OK) == 0 && access(p("a/b/full/f"), F_OK) != 0,
	    "the file moved");
	check_ok(write_file(p("a/b/c/other"), "other"), "create other");
	check_ok(rename(p("a/b/c/other"), p("a/b/c/moved")), "rename of a file over a file");
	{
		char buf[16] = { 0 };
		int fd = open(p("a/b/c/moved"), O_RDONLY);

		check(fd >= 0 && read(fd, buf, sizeof(buf)) == 5 && strcmp(buf, "other") == 0,
		    "the target holds the moved file's content");
		if (fd >= 0)
			close(fd);
	}
}

static void
test_attrs(void)
{
	struct stat st, st2;
	struct timespec ts[2];

	check_ok(write_file(p("a/b/c/t"), "t"), "create a/b/c/t");
	st = st_of(p("a/b/c/t"));
	tick();
	check_ok(chmod(p("a/b/c/t"), 0600), "chmod 0600");
	st2 = st_of(p("a/b/c/t"));
	check((st2.st_mode & 07777) == 0600 && S_ISREG(st2.st_mode), "mode is 0600, still a file");
	check(ns_of(st2.st_ctim) > ns_of(st.st_ctim), "chmod moves the ctime");
	check(ns_of(st2.st_mtim) == ns_of(st.st_mtim), "chmod keeps the mtime");
	check_ok(chmod(p("a/b/c"), 0711), "chmod of a directory");
	st2 = st_of(p("a/b/c"));
	check(S_ISDIR(st2.st_mode) && (st2.st_mode & 07777) == 0711, "the directory is 0711, still a directory");
	check_ok(chmod(p("a/b/c"), 0755), "chmod it back");
	check_ok(chown(p("a/b/c/t"), 1234, 5678), "chown 1234:5678");
	st2 = st_of(p("a/b/c/t"));
	check(st2.st_uid == 1234 && st2.st_gid == 5678, "owner is 1234:5678");
	check_ok(chown(p("a/b/c"), 4321, 8765), "chown of a directory");
	st2 = st_of(p("a/b/c"));
	check(st2.st_uid == 4321 && st2.st_gid == 8765 && S_ISDIR(st2.st_mode),
	    "the directory's owner is 4321:8765");
	check_ok(chown(p("a/b/c"), 0, 0), "chown it back");
	check_err(chmod(p("a/b/c/none"), 0644), ENOENT, "chmod of a missing file");

	ts[0] = (struct timespec){ 1000000000, 111 };
	ts[1] = (struct timespec){ 981173106, 123456789 };
	check_ok(utimensat(AT_FDCWD, p("a/b/c/t"), ts, 0), "utimensat of a file");
	st2 = st_of(p("a/b/c/t"));
	check(ns_of(st2.st_mtim) == ns_of(ts[1]) && ns_of(st2.st_atim) == ns_of(ts[0]),
	    "its mtime and atime are the ones given");
	ts[0].tv_nsec = UTIME_OMIT;
	ts[1] = (struct timespec){ 981173107, 0 };
	check_ok(utimensat(AT_FDCWD, p("a/b/c"), ts, 0), "utimensat of a directory (atime omitted)");
	st2 = st_of(p("a/b/c"));
	check(ns_of(st2.st_mtim) == ns_of(ts[1]), "the directory's mtime is the one given");
	ts[0].tv_nsec = UTIME_NOW;
	ts[1].tv_nsec = UTIME_NOW;
	st = st_of(p("a/b/c/t"));
	check_ok(utimensat(AT_FDCWD, p("a/b/c/t"), ts, 0), "utimensat UTIME_NOW");
	st2 = st_of(p("a/b/c/t"));
	check(ns_of(st2.st_mtim) > ns_of(st.st_mtim), "UTIME_NOW moves the mtime");
	check_err(utimensat(AT_FDCWD, p("a/b/c/none"), NULL, 0), ENOENT, "utimensat of a missing file");
}

static void
test_links(void)
{
	char target[PATH_MAX + 16], buf[PATH_MAX];
	struct stat st;
	ssize_t n;

	check_ok(symlink("../c/t", p("a/b/c/l")), "symlink");
	st = st_of(p("a/b/c/l"));
	check(S_ISLNK(st.st_mode) && st.st_size == 6, "lstat: a link of size 6");
	n = readlink(p("a/b/c/l"), buf, sizeof(buf));
	check(n == 6 && memcmp(buf, "../c/t", 6) == 0, "readlink gives the target");
	check(stat(p("a/b/c/l"), &st) == 0 && S_ISREG(st.st_mode), "stat follows it");
	check_err(symlink("x", p("a/b/c/l")), EEXIST, "symlink over an existing name");
	memset(target, 'x', sizeof(target));
	target[PATH_MAX] = '\0';
	check_err(symlink(target, p("a/b/c/long")), ENAMETOOLONG, "symlink target of PATH_MAX bytes");
	target[PATH_MAX - 1] = '\0';
	check_ok(symlink(target, p("a/b/c/long")), "symlink target of PATH_MAX - 1 bytes");
	n = readlink(p("a/b/c/long"), buf, sizeof(buf));
	check(n == PATH_MAX - 1, "readlink gives all of it back");
	check_err(readlink(p("a/b/c/t"), buf, sizeof(buf)), EINVAL, "readlink of a file");
	check_ok(unlink(p("a/b/c/long")), "unlink a link");
	check(access(p("a/b/c/t"), F_OK) == 0, "its target is untouched");
	check_ok(rename(p("a/b/c/l"), p("a/b/l2")), "rename of a link");
	n = readlink(p("a/b/l2"), buf, sizeof(buf));
	check(n == 6, "the renamed link keeps its target");
	/* Refused by design: hard links, device nodes, FIFOs, sockets. */
	check_err(link(p("a/b/c/t"), p("a/b/c/hard")), EPERM, "link (hard link)");
	check_err(mknod(p("a/b/c/dev"), S_IFCHR | 0600, makedev(1, 3)), EPERM, "mknod of a device");
	check_err(mkfifo(p("a/b/c/fifo"), 0600), EPERM, "mkfifo");
	{
		int s = socket(AF_UNIX, SOCK_STREAM, 0);
		struct sockaddr_un sa = { .sun_family = AF_UNIX };

		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", p("a/b/c/sock"));
		if (strlen(p("a/b/c/sock")) < sizeof(sa.sun_path))
			check_err(bind(s, (struct sockaddr *)&sa, sizeof(sa)), EPERM, "bind of a socket");
		close(s);
	}
}

/* An unprivileged user meets the modes we store. */
static void
test_other_user(void)
{
	check_ok(mkdir(p("a/b/c/private"), 0700), "mkdir private 0700");
	check_ok(write_file(p("a/b/c/private/secret"), "s"), "create private/secret");
	check_ok(mkdir(p("a/b/c/public"), 0755), "mkdir public 0755");
	check_ok(write_file(p("a/b/c/public/r"), "r"), "create public/r");
	check_ok(chmod(p("a/b/c/public/r"), 0644), "chmod public/r 0644");
	check_ok(mkdir(p("a/b/c/shared"), 0777), "mkdir shared 0777");
	check_ok(chmod(p("a/b/c/shared"), 0777), "chmod shared 0777");

	setfsgid(65534);
	setfsuid(65534);
	check((int)setfsuid((uid_t)-1) == 65534, "now acting as uid 65534");
	check_err(open(p("a/b/c/private/secret"), O_RDONLY), EACCES, "other user: open inside a 0700 directory");
	check_err(mkdir(p("a/b/c/public/x"), 0755), EACCES, "other user: mkdir in a 0755 directory of root");
	check_err(open(p("a/b/c/public/r"), O_WRONLY), EACCES, "other user: open a 0644 file of root for writing");
	{
		int fd = open(p("a/b/c/public/r"), O_RDONLY);

		check(fd >= 0, "other user: open a 0644 file for reading");
		if (fd >= 0)
			close(fd);
	}
	check_err(rmdir(p("a/b/c/public")), EACCES, "other user: rmdir in a directory of root");
	check_err(chmod(p("a/b/c/public/r"), 0666), EPERM, "other user: chmod of root's file");
	check_ok(mkdir(p("a/b/c/shared/mine"), 0700), "other user: mkdir in a 0777 directory");
	{
		struct stat st = st_of(p("a/b/c/shared/mine"));

		check(st.st_uid == 65534 && st.st_gid == 65534, "it is owned by uid/gid 65534");
	}
	setfsuid(0);
	setfsgid(0);
	check_ok(rmdir(p("a/b/c/shared/mine")), "root: rmdir of it");
}

int
main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: tree_posix DIR\n");
		return 2;
	}
	snprintf(base, sizeof(base), "%s", argv[1]);
	umask(0);
	test_mkdir_rmdir();
	test_unlink_open_truncate();
	test_rename();
	test_attrs();
	test_links();
	if (getuid() == 0)
		test_other_user();
	else
		printf("# not root: the other-user checks need setfsuid\n");
	printf("# %d check(s) failed\n", fails);
	return fails ? 1 : 0;
}
