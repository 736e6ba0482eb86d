/*
 * log.c - process-wide log sink (see log.h).
 *
 * The file descriptor is swapped atomically on reopen so writers never take
 * a lock: each line is formatted into a stack buffer and written with a
 * single write(2), which keeps lines from different threads whole.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "atomic.h"
#include "log.h"

enum log_level log_current_level = LOG_LEVEL_INFO;

static int log_fd = 2;            /* -1 = syslog */
static bool log_echo;             /* errors and warnings also to stderr (start-up) */
static char *log_path;            /* NULL unless logging to a file */
static pthread_mutex_t log_reopen_lock = PTHREAD_MUTEX_INITIALIZER;
/* Held shared around each write(2) of a line, exclusive while log_reopen
 * swaps the file: the old descriptor is closed only once no line is being
 * written to it (closing it under a writer could let the number be reused
 * by another file meanwhile; the TSan run of t_service saw the race).
 * Writer-preferring, so a steady stream of lines cannot hold off a reopen. */
static pthread_rwlock_t log_fd_lock = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;

static const char *const level_names[] = { "ERROR", "WARN", "INFO", "DEBUG" };

const char *
log_level_name(enum log_level level)
{
	return level <= LOG_LEVEL_DEBUG ? level_names[level] : "?";
}

int
log_level_parse(const char *name)
{
	if (strcasecmp(name, "error") == 0)
		return LOG_LEVEL_ERROR;
	if (strcasecmp(name, "warn") == 0 || strcasecmp(name, "warning") == 0)
		return LOG_LEVEL_WARN;
	if (strcasecmp(name, "info") == 0)
		return LOG_LEVEL_INFO;
	if (strcasecmp(name, "debug") == 0)
		return LOG_LEVEL_DEBUG;
	return -1;
}

void
log_set_level(enum log_level level)
{
	atomic_store_relaxed(&log_current_level, level);
}

int
log_open(const char *target, enum log_level level)
{
	log_set_level(level);
	if (target == NULL || strcmp(target, "stderr") == 0) {
		log_fd = 2;
		return 0;
	}
	if (strcmp(target, "syslog") == 0) {
		openlog("recfsd", LOG_PID, LOG_DAEMON);
		log_fd = -1;
		return 0;
	}
	int fd = open(target, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	free(log_path);
	log_path = strdup(target);
	if (log_path == NULL) {
		close(fd);
		return -ENOMEM;
	}
	log_fd = fd;
	return 0;
}

int
log_reopen(void)
{
	int rc = 0;

	pthread_mutex_lock(&log_reopen_lock);
	if (log_path != NULL) {
		int fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0) {
			rc = -errno;
		} else {
			pthread_rwlock_wrlock(&log_fd_lock);
			int old = atomic_exchange_acq_rel(&log_fd, fd);
			pthread_rwlock_unlock(&log_fd_lock);
			if (old > 2)
				close(old);
		}
	}
	pthread_mutex_unlock(&log_reopen_lock);
	return rc;
}

void
log_close(void)
{
	if (log_fd > 2)
		close(log_fd);
	if (log_fd == -1)
		closelog();
	log_fd = 2;
	free(log_path);
	log_path = NULL;
}

void
log_echo_stderr(bool on)
{
	atomic_store_release(&log_echo, on);
}

/* The start-up echo: "recfsd: ERROR device: ..." on stderr. */
static void
log_echo_line(enum log_level level, const char *module, const char *msg, size_t len)
{
	char line[2200];
	int n = snprintf(line, sizeof(line), "recfsd: %s %s: %.*s\n", level_names[level], module,
	    (int)len, msg);

	if (n > 0) {
		ssize_t w = write(2, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
		(void)w;
	}
}

void
log_msg(enum log_level level, const char *module, const char *fmt, ...)
{
	char line[2048];
	size_t n = 0;
	va_list ap;
	int fd = atomic_load_acquire(&log_fd);

	if (level > atomic_load_relaxed(&log_current_level))
		return;
	if (fd >= 0) {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
		n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ %s %s: ",
		    ts.tv_nsec / 1000000, level_names[level], module);
	} else {
		n = (size_t)snprintf(line, sizeof(line), "%s: ", module);
	}
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	size_t body = n;
	n += (size_t)m;
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	if (level <= LOG_LEVEL_WARN && fd != 2 && atomic_load_acquire(&log_echo))
		log_echo_line(level, module, line + body, n - body);
	if (fd < 0) {
		static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
		line[n] = '\0';
		syslog(prio[level], "%s", line);
		return;
	}
	line[n++] = '\n';
	pthread_rwlock_rdlock(&log_fd_lock);
	/* The file may have been reopened since fd was read (only a file
	 * replaces a file: never syslog or stderr). */
	fd = atomic_load_acquire(&log_fd);
	ssize_t w = write(fd, line, n);
	pthread_rwlock_unlock(&log_fd_lock);
	(void)w;
}
