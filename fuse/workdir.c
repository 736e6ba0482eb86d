/*
 * workdir.c - the lock on the daemon's work directory (see workdir.h).
 *
 * Recognising a holder on its way out: the holder writes "state closing"
 * (and marks the lock closing) as soon as its session loop ends, but
 * fusermount3 -u returns before that: for a moment the holder is past its
 * unmount and still says "serving".  So a serving holder whose mount point
 * is no longer a FUSE mount in /proc/self/mountinfo counts as closing too.
 * A holder in another mount namespace is then also waited for (its mount
 * is invisible here) and refused after lock-wait: slower, never wrong.
 * Rejected: waiting lock-wait for any holder (two daemons started on one
 * config by mistake would hang 30 s before the error), and a fixed grace
 * period (a loaded machine can take longer than any guess).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/file_lock.h"
#include "base/log.h"
#include "config/config.h"
#include "workdir.h"

static int workdir_fd = -1;
static char workdir_path[CONFIG_PATH_MAX + 32];

/* The lock file's text: what the holder said about itself. */
struct workdir_text {
	char state[16];
	char mount[CONFIG_PATH_MAX];
};

static void
text_read(int fd, struct workdir_text *t)
{
	char buf[CONFIG_PATH_MAX + 128];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	memset(t, 0, sizeof(*t));
	if (n <= 0)
		return;
	buf[n] = '\0';
	for (char *line = buf, *next; line != NULL && *line != '\0'; line = next) {
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		if (strncmp(line, "state ", 6) == 0)
			snprintf(t->state, sizeof(t->state), "%s", line + 6);
		else if (strncmp(line, "mount ", 6) == 0)
			snprintf(t->mount, sizeof(t->mount), "%s", line + 6);
	}
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void
unescape(char *s)
{
	char *o = s;

	for (; *s != '\0'; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

/* Is path a FUSE mount in this mount namespace?  (Unknown: yes.) */
static bool
fuse_mounted(const char *path)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	bool found = false;

	if (f == NULL)
		return true;
	while (!found && getline(&line, &cap, f) > 0) {
		char mnt[CONFIG_PATH_MAX + 1], *dash = strstr(line, " - ");

		/* id parent maj:min root MOUNTPOINT ... - FSTYPE ... */
		if (dash == NULL || sscanf(line, "%*s %*s %*s %*s %4096s", mnt) != 1)
			continue;
		unescape(mnt);
		found = strcmp(mnt, path) == 0 && strncmp(dash + 3, "fuse", 4) == 0;
	}
	free(line);
	fclose(f);
	return found;
}

static bool
holder_exiting(void *arg, const struct file_lock_holder *h)
{
	struct workdir_text t;

	(void)h;
	text_read(*(int *)arg, &t);
	return strcmp(t.state, "closing") == 0 || strcmp(t.state, "stopped") == 0 ||
	    (strcmp(t.state, "serving") == 0 && t.mount[0] != '\0' && !fuse_mounted(t.mount));
}

static void
text_write(const char *state, const char *mountpoint)
{
	char buf[CONFIG_PATH_MAX + 128];
	int n;

	if (workdir_fd < 0)
		return;
	n = snprintf(buf, sizeof(buf), "pid %ld\nstate %s\n%s%s%s", (long)getpid(), state,
	    mountpoint != NULL ? "mount " : "", mountpoint != NULL ? mountpoint : "",
	    mountpoint != NULL ? "\n" : "");
	if (n < 0 || (size_t)n >= sizeof(buf) || pwrite(workdir_fd, buf, (size_t)n, 0) != n ||
	    ftruncate(workdir_fd, n) != 0)
		log_warn("recfsd", "%s: cannot write the state %s: %s", workdir_path, state,
		    strerror(errno));
}

int
workdir_lock(const char *dir, unsigned wait_s, char *err, size_t err_size)
{
	struct file_lock_holder h;
	struct workdir_text t;
	char who[64];
	int fd, rc;

	snprintf(workdir_path, sizeof(workdir_path), "%s/%s", dir, WORKDIR_LOCK_NAME);
	fd = open(workdir_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, err_size, "%s: %s", workdir_path, strerror(-rc));
		return rc;
	}
	rc = file_lock_acquire(fd, workdir_path, wait_s, holder_exiting, &fd, &h);
	if (rc != 0 && rc != -EBUSY) {
		/* A file system without record locks: say so, run unprotected
		 * (as the storage files do, device_open.c). */
		log_warn("recfsd", "%s: cannot lock it (%s): nothing stops a second recfsd here",
		    workdir_path, strerror(-rc));
		rc = 0;
	}
	if (rc != 0) {
		text_read(fd, &t);
		snprintf(err, err_size, "work directory %s is in use: %s is held by recfsd %s%s%s%s%s",
		    dir, workdir_path, file_lock_holder_text(&h, who, sizeof(who)),
		    t.state[0] != '\0' ? ", " : "", t.state, t.mount[0] != '\0' ? " on " : "", t.mount);
		if (h.closing || strcmp(t.state, "closing") == 0)
			snprintf(err + strlen(err), err_size - strlen(err),
			    ", still shutting down after lock-wait (%u s)", wait_s);
		close(fd);
		return rc;
	}
	workdir_fd = fd;
	text_write("starting", NULL);
	return 0;
}

void
workdir_set_state(const char *state, const char *mountpoint)
{
	text_write(state, mountpoint);
	if (workdir_fd >= 0 && strcmp(state, "closing") == 0)
		(void)file_lock_mark_closing(workdir_fd);
}

void
workdir_unlock(void)
{
	if (workdir_fd < 0)
		return;
	text_write("stopped", NULL);
	close(workdir_fd);
	workdir_fd = -1;
}
