/*
 * records.c - writing and reading recfs records with plain POSIX calls.
 *
 * Build:  cc -o records records.c
 * Run:    ./records MOUNTPOINT/NAMESPACE/SET [COUNT]
 *
 * A record is a file: open/write/close stores it (one record write at
 * close, whose return value is the write's outcome - check it), open/read
 * reads it back.  Other bins of the record are user.* extended attributes,
 * and the record's metadata is read by name as user.recfs.* (generation,
 * ttl, digest, partition; listxattr lists only the bins).  Nothing here is
 * recfs-specific API: the same program works on any Linux file system with
 * user xattrs.
 *
 * Output, one line per record:
 *   user-1: 22 bytes "name=user-1 visits=10" email=user-1@example.com generation=3 bins=1
 * (generation 3: every record write is a generation - the create stores the
 * empty record, close stores the content, setxattr stores the bin)
 * and a last line "ok: COUNT records written and read back (user-1 is 22 bytes)".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

/* Write a whole record.  close() reports the outcome of the record write
 * (EFBIG for a record over max-record-size, ENOSPC in stop-writes). */
static int record_put(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -errno;
	const char *p = data;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			int e = errno;
			close(fd);
			return -e;
		}
		p += n;
		len -= (size_t)n;
	}
	if (close(fd) < 0)
		return -errno;
	return 0;
}

/* Read a whole record into buf (NUL-terminated); returns its length. */
static ssize_t record_get(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	size_t got = 0;
	while (got + 1 < size) {
		ssize_t n = read(fd, buf + got, size - 1 - got);
		if (n < 0) {
			int e = errno;
			close(fd);
			return -e;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	buf[got] = 0;
	close(fd);
	return (ssize_t)got;
}

/* A bin as text (values are stored as given). */
static int bin_get(const char *path, const char *name, char *buf, size_t size)
{
	ssize_t n = getxattr(path, name, buf, size - 1);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	return 0;
}

static int fail(const char *what, const char *path, int err)
{
	fprintf(stderr, "records: %s %s: %s\n", what, path, strerror(-err));
	return 1;
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: records DIR [COUNT]\n");
		return 2;
	}
	const char *dir = argv[1];
	int count = argc > 2 ? atoi(argv[2]) : 5;
	if (count < 1 || count > 100000) {
		fprintf(stderr, "records: COUNT must be 1..100000\n");
		return 2;
	}
	char path[4096], data[256], got[256], email[128], gen[32], names[1024];

	for (int i = 1; i <= count; i++) {
		/* write: content, then a bin */
		snprintf(path, sizeof(path), "%s/user-%d", dir, i);
		int len = snprintf(data, sizeof(data), "name=user-%d visits=%d\n", i, i * 10);
		int err = record_put(path, data, (size_t)len);
		if (err)
			return fail("write", path, err);
		snprintf(email, sizeof(email), "user-%d@example.com", i);
		if (setxattr(path, "user.email", email, strlen(email), 0) < 0)
			return fail("setxattr user.email", path, -errno);

		/* read back: content, the bin, the record's generation */
		ssize_t n = record_get(path, got, sizeof(got));
		if (n < 0)
			return fail("read", path, (int)n);
		if (n != len || memcmp(got, data, (size_t)len) != 0) {
			fprintf(stderr, "records: %s reads back differently\n", path);
			return 1;
		}
		if ((err = bin_get(path, "user.email", email, sizeof(email))))
			return fail("getxattr user.email", path, err);
		if ((err = bin_get(path, "user.recfs.generation", gen, sizeof(gen))))
			snprintf(gen, sizeof(gen), "n/a"); /* not recfs: no metadata names */

		/* list the bins: a NUL-separated list of names (recfs lists no
		 * user.recfs.* names; other file systems may list other ones) */
		ssize_t ln = listxattr(path, names, sizeof(names));
		if (ln < 0)
			return fail("listxattr", path, -errno);
		int bins = 0;
		for (ssize_t off = 0; off < ln; off += (ssize_t)strlen(names + off) + 1)
			if (strncmp(names + off, "user.", 5) == 0 && strncmp(names + off, "user.recfs.", 11) != 0)
				bins++;
		got[strcspn(got, "\n")] = 0;
		printf("user-%d: %zd bytes \"%s\" email=%s generation=%s bins=%d\n", i, n, got, email, gen, bins);
	}

	/* stat gives the size without reading the record */
	struct stat st;
	snprintf(path, sizeof(path), "%s/user-1", dir);
	if (stat(path, &st) < 0)
		return fail("stat", path, -errno);
	printf("ok: %d records written and read back (user-1 is %lld bytes)\n", count, (long long)st.st_size);
	return 0;
}
