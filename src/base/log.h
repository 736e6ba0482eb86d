/*
 * log.h - the daemon's log.
 *
 * One process-wide sink: stderr, syslog or a file (reopened on SIGHUP with
 * log_reopen()).  Lines look like
 *   2026-11-21T06:40:12.123Z INFO namespace: test: loaded 10 records
 * Thread-safe; a line is written with one write(2).
 */
#ifndef RECFS_BASE_LOG_H
#define RECFS_BASE_LOG_H

#include <stdbool.h>

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* target: "stderr", "syslog" or a path.  Returns 0 or -errno. */
int log_open(const char *target, enum log_level level);
void log_close(void);
int log_reopen(void);
/*
 * While on, errors and warnings are also written to stderr when the log
 * goes elsewhere: the daemon's start-up, so that a failure names its file
 * on the terminal whatever the log target.  Off by default.
 */
void log_echo_stderr(bool on);
void log_set_level(enum log_level level);
/* "error" | "warn"/"warning" | "info" | "debug" -> level; -1 if unknown. */
int log_level_parse(const char *name);
const char *log_level_name(enum log_level level);

void log_msg(enum log_level level, const char *module, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

extern enum log_level log_current_level;

#define log_error(mod, ...) log_msg(LOG_LEVEL_ERROR, mod, __VA_ARGS__)
#define log_warn(mod, ...)  log_msg(LOG_LEVEL_WARN, mod, __VA_ARGS__)
/* log_set_level may run beside them (an atomic store): an atomic load */
#define log_level_now() __atomic_load_n(&log_current_level, __ATOMIC_RELAXED)
#define log_info(mod, ...)  do { if (log_level_now() >= LOG_LEVEL_INFO) log_msg(LOG_LEVEL_INFO, mod, __VA_ARGS__); } while (0)
#define log_debug(mod, ...) do { if (log_level_now() >= LOG_LEVEL_DEBUG) log_msg(LOG_LEVEL_DEBUG, mod, __VA_ARGS__); } while (0)

#endif
