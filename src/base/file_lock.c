/*
 * file_lock.c - exclusive locks on the files of a store (see file_lock.h
 * for the three lock bytes and why).
 *
 * The order in file_lock_try matters: the OFD lock first (it decides), then
 * the pid byte; a holder seen between the two has no pid yet and is
 * reported as "pid unknown", never as free.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "file_lock.h"
#include "log.h"

#define LOCK_BYTE_HELD 0
#define LOCK_BYTE_PID 1
#define LOCK_BYTE_CLOSING 2
#define LOCK_POLL_NS (20 * 1000000L)

static struct flock
lock_byte(short type, off_t byte)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));   /* l_pid must be 0 for the OFD commands */
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = byte;
	fl.l_len = 1;
	return fl;
}

/* Is byte locked by someone else?  For the OFD bytes (owner-less). */
static int
ofd_locked(int fd, off_t byte, bool *locked)
{
	struct flock fl = lock_byte(F_WRLCK, byte);

	if (fcntl(fd, F_OFD_GETLK, &fl) != 0)
		return -errno;
	*locked = fl.l_type != F_UNLCK;
	return 0;
}

int
file_lock_query(int fd, struct file_lock_holder *h)
{
	struct flock fl = lock_byte(F_WRLCK, LOCK_BYTE_PID);
	int rc;

	memset(h, 0, sizeof(*h));
	rc = ofd_locked(fd, LOCK_BYTE_HELD, &h->held);
	if (rc != 0 || !h->held)
		return rc;
	/* A classic lock: F_GETLK names its owner (0 if not visible here). */
	if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK && fl.l_pid > 0)
		h->pid = fl.l_pid;
	return ofd_locked(fd, LOCK_BYTE_CLOSING, &h->closing);
}

int
file_lock_try(int fd, struct file_lock_holder *h)
{
	struct flock fl = lock_byte(F_WRLCK, LOCK_BYTE_HELD);

	memset(h, 0, sizeof(*h));
	if (fcntl(fd, F_OFD_SETLK, &fl) != 0) {
		int err = errno;

		if (err != EAGAIN && err != EACCES)
			return -err;
		/* Released between the two calls: the caller tries again. */
		if (file_lock_query(fd, h) == 0 && !h->held)
			return -EAGAIN;
		h->held = true;
		return -EBUSY;
	}
	fl = lock_byte(F_WRLCK, LOCK_BYTE_PID);
	if (fcntl(fd, F_SETLK, &fl) != 0)
		log_debug("lock", "pid lock byte: %s (the pid will show as unknown)", strerror(errno));
	return 0;
}

int
file_lock_acquire(int fd, const char *path, unsigned wait_s, file_lock_exiting_fn exiting,
    void *arg, struct file_lock_holder *h)
{
	uint64_t deadline = clock_mono_ns() + (uint64_t)wait_s * 1000000000ULL;
	bool said = false;

	for (;;) {
		int rc = file_lock_try(fd, h);

		if (rc == -EAGAIN)
			continue;
		if (rc != -EBUSY)
			return rc;
		if (!h->closing && (exiting == NULL || !exiting(arg, h)))
			return -EBUSY;
		if (clock_mono_ns() >= deadline)
			return -EBUSY;
		if (!said) {
			struct file_lock_holder plain = *h;
			char who[64];

			plain.closing = false;
			log_warn("lock", "%s: held by %s, which is shutting down: waiting up to %u s "
			    "(lock-wait) for it to finish", path,
			    file_lock_holder_text(&plain, who, sizeof(who)), wait_s);
			said = true;
		}
		struct timespec ts = { 0, LOCK_POLL_NS };
		nanosleep(&ts, NULL);
	}
}

int
file_lock_mark_closing(int fd)
{
	struct flock fl = lock_byte(F_WRLCK, LOCK_BYTE_CLOSING);

	return fcntl(fd, F_OFD_SETLK, &fl) == 0 ? 0 : -errno;
}

const char *
file_lock_holder_text(const struct file_lock_holder *h, char *buf, size_t size)
{
	if (h->pid > 0)
		snprintf(buf, size, "pid %ld%s", (long)h->pid, h->closing ? ", shutting down" : "");
	else
		snprintf(buf, size, "pid unknown%s", h->closing ? ", shutting down" : "");
	return buf;
}
