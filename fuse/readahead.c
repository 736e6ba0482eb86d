/*
 * readahead.c - the mount's read-ahead window (see readahead.h).
 *
 * The kernel gives a FUSE mount the read-ahead of a fresh backing device
 * (128 KiB) and, when it processes the INIT reply, lowers it to the reply's
 * max_readahead if that is smaller; it never raises it to max_readahead.
 * So every read of a sequential reader using smaller buffers (cat, cp,
 * cmp: 128 KiB) was one FUSE request, answered before the next was sent.
 * The only knob is the device's read_ahead_kb in sysfs, writable by root.
 * It is written here after the mount and before the session loop answers
 * INIT (recfsd.c), and ops_init asks for the same max_readahead, so the
 * kernel's minimum of the two is the configured window.
 *
 * The device is found in /proc/self/mountinfo (the last mount on the mount
 * point), not with stat(2): a request to the mount would wait for the INIT
 * that only the session loop answers.
 *
 * Rejected: writing the window after INIT from a thread of its own (a
 * thread, and a window of a few milliseconds with the kernel's 128 KiB, for
 * nothing the ordering above does not give).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "readahead.h"

/* "MAJOR:MINOR" of the mount, "" until found; written by main() before the
 * session loop starts its threads, read-only after. */
static char mount_dev[32];

/* Undo mountinfo's octal escapes (space, tab, newline, backslash) in place. */
static void
unescape(char *s)
{
	char *o = s;

	for (; *s != '\0'; s++, o++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*o = *s;
		}
	}
	*o = '\0';
}

/* The device numbers of the last FUSE mount on path into dev; -ENOENT if none. */
static int
mount_find(const char *path, char *dev, size_t dev_size)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	int rc = -ENOENT;

	if (f == NULL)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		/* id parent MAJ:MIN root mountpoint options ... - fstype source ... */
		char *save = NULL, *field[5], *sep = strstr(line, " - ");
		int n = 0;

		if (sep == NULL || strncmp(sep + 3, "fuse", 4) != 0)
			continue;
		for (char *t = strtok_r(line, " ", &save); t != NULL && n < 5; t = strtok_r(NULL, " ", &save))
			field[n++] = t;
		if (n < 5)
			continue;
		unescape(field[4]);
		if (strcmp(field[4], path) == 0 && strlen(field[2]) < dev_size) {
			memcpy(dev, field[2], strlen(field[2]) + 1);
			rc = 0;  /* the last one wins: mounts stack */
		}
	}
	free(line);
	fclose(f);
	return rc;
}

static int
sysfs_path(char *out, size_t size)
{
	if (mount_dev[0] == '\0')
		return -ENOENT;
	return snprintf(out, size, "/sys/class/bdi/%s/read_ahead_kb", mount_dev) < (int)size ? 0 : -ENAMETOOLONG;
}

int
readahead_set(const char *mountpoint, uint64_t bytes)
{
	char real[PATH_MAX], path[96], text[32];
	int fd, rc, len;

	if (realpath(mountpoint, real) == NULL)
		snprintf(real, sizeof(real), "%s", mountpoint);
	rc = mount_find(real, mount_dev, sizeof(mount_dev));
	if (rc != 0) {
		mount_dev[0] = '\0';
		log_warn("fuse", "read-ahead: mount on %s not found in /proc/self/mountinfo: %s; "
		    "the kernel's read-ahead stays", real, strerror(-rc));
		return rc;
	}
	if (bytes == 0)
		return 0;
	if ((rc = sysfs_path(path, sizeof(path))) != 0)
		return rc;
	len = snprintf(text, sizeof(text), "%llu\n", (unsigned long long)(bytes >> 10));
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, text, (size_t)len) != len) {
		rc = -errno;
		if (fd >= 0)
			close(fd);
		log_info("fuse", "read-ahead: cannot write %s (%s; only root may write it): the kernel's "
		    "%llu KiB stays instead of fuse.read-ahead's %llu KiB", path, strerror(-rc),
		    (unsigned long long)(readahead_bytes() >> 10), (unsigned long long)(bytes >> 10));
		return rc;
	}
	close(fd);
	log_info("fuse", "read-ahead: %llu KiB set in %s", (unsigned long long)(bytes >> 10), path);
	return 0;
}

uint64_t
readahead_bytes(void)
{
	char path[96], text[32];
	ssize_t n;
	int fd;

	if (sysfs_path(path, sizeof(path)) != 0 || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	text[n] = '\0';
	return strtoull(text, NULL, 10) << 10;
}
