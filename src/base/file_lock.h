/*
 * file_lock.h - "one daemon per store": an exclusive lock on a file
 * (the work directory's lock file, a storage or shadow file, a raw device)
 * that also tells others who holds it and whether that holder is shutting
 * down.  See docs/operations.md, "One daemon per store".
 *
 * A file's lock is three advisory record locks on its first bytes (advisory
 * locks never touch the data, and may lie past the end of a file):
 *   byte 0  an OFD write lock: the lock itself.  It belongs to the open
 *           file description, so it conflicts with a second open in the
 *           same process too, and it lasts until the descriptor is closed
 *           (or the process ends): nothing else the process does drops it;
 *   byte 1  a classic (POSIX) write lock: only there so that F_GETLK tells
 *           others the holder's pid (an OFD lock has no owner pid).  The
 *           process drops it if it closes any other descriptor of the same
 *           file; then the pid is reported as unknown, the lock still holds;
 *   byte 2  an OFD write lock taken by file_lock_mark_closing(): the holder
 *           is past its last client request and only flushing.  A starting
 *           daemon waits for such a holder (lock-wait), and refuses at once
 *           on a holder that is not closing.
 * Rejected: flock (no pid, and no place for the closing state in a raw
 * device), a pid file beside each storage file (a raw device has no
 * writable directory beside it; a stale pid file can name a live stranger).
 *
 * Functions return 0 or -errno; any thread.
 */
#ifndef RECFS_BASE_FILE_LOCK_H
#define RECFS_BASE_FILE_LOCK_H

#include <stdbool.h>
#include <sys/types.h>

/* Who holds a lock, as far as the lock says. */
struct file_lock_holder {
	bool held;        /* someone else holds it */
	pid_t pid;        /* its pid; 0 = unknown (another pid namespace, or lost) */
	bool closing;     /* it marked itself closing */
};

/*
 * Try to take the lock on fd (open for writing) once.  0: taken, held
 * until fd is closed.  -EBUSY: someone holds it, *h says who.  Other
 * -errno: locks not supported here (the caller decides; see device_open.c).
 */
int file_lock_try(int fd, struct file_lock_holder *h);

/*
 * Why a holder that is not marked closing may still be on its way out
 * (the daemon's work-directory lock: its mount is gone already); NULL = no
 * such knowledge.  Called between attempts.
 */
typedef bool (*file_lock_exiting_fn)(void *arg, const struct file_lock_holder *h);

/*
 * Take the lock on fd, waiting up to wait_s seconds while the holder is
 * closing (or exiting() says it is on its way out); logs once, naming
 * path, when it starts to wait.  0: taken.  -EBUSY: held by a process that
 * is not closing, or still held after wait_s; *h says by whom.  Polls every
 * 20 ms: a restart waits at most that long after the holder exits.
 */
int file_lock_acquire(int fd, const char *path, unsigned wait_s, file_lock_exiting_fn exiting,
    void *arg, struct file_lock_holder *h);

/* Mark a lock taken on fd as closing (best effort: 0 or -errno). */
int file_lock_mark_closing(int fd);

/* Who holds the lock of the file fd is open on (any mode): 0 or -errno. */
int file_lock_query(int fd, struct file_lock_holder *h);

/* "pid 1234", "pid 1234, shutting down" or "pid unknown" into buf. */
const char *file_lock_holder_text(const struct file_lock_holder *h, char *buf, size_t size);

#endif
