/*
 * fault.c - fault points armed from the environment (see fault.h).
 *
 * RECFS_FAULT=name[:errno[:path]][,...] is parsed once, under
 * pthread_once, into a small fixed table; fault_check() then only reads it,
 * so it is safe from any thread without locks.  Tests arm faults per
 * process (the daemon or a unit test binary started with the variable set).
 * A fault given a path (absolute) is armed only while that file exists: a
 * test lets the failure pass without restarting the process (a retry in the
 * same process must then succeed), at one access() per check of it.
 *
 * Rejected: re-reading the environment on every check (getenv races with
 * setenv in other threads and costs a scan per call); a runtime arming API
 * (not needed yet: integration tests start a fresh daemon per scenario).
 *
 * Without --enable-fault-injection the whole unit is empty and FAULT_POINT()
 * is the constant 0, so production builds carry no trace of it.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#ifdef RECFS_FAULT_INJECTION

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault.h"
#include "log.h"

#define FAULT_MAX 32
#define FAULT_NAME_MAX 63

struct fault {
	char name[FAULT_NAME_MAX + 1];
	int err; /* positive errno */
	char *path; /* armed only while this file exists, or NULL: always */
};

/* Written once under fault_once, read-only afterwards. */
static struct fault fault_table[FAULT_MAX];
static int fault_count;
static pthread_once_t fault_once = PTHREAD_ONCE_INIT;

static const struct {
	const char *name;
	int err;
} fault_errno_names[] = {
	{ "EIO", EIO }, { "ENOSPC", ENOSPC }, { "ENOMEM", ENOMEM },
	{ "EROFS", EROFS }, { "EFBIG", EFBIG }, { "EAGAIN", EAGAIN },
	{ "EINTR", EINTR }, { "EBADF", EBADF }, { "EINVAL", EINVAL },
	{ "ENOENT", ENOENT }, { "EEXIST", EEXIST }, { "EPERM", EPERM },
	{ "EACCES", EACCES }, { "EDQUOT", EDQUOT }, { "ETIMEDOUT", ETIMEDOUT },
	{ "ECONNRESET", ECONNRESET }, { "ENODATA", ENODATA },
};

static void fault_parse(void);
static int fault_parse_errno(const char *s);

int
fault_check(const char *name)
{
	pthread_once(&fault_once, fault_parse);
	for (int i = 0; i < fault_count; i++)
		if (strcmp(fault_table[i].name, name) == 0)
			return fault_table[i].path != NULL && access(fault_table[i].path, F_OK) != 0 ? 0 :
			    -fault_table[i].err;
	return 0;
}

static void
fault_parse(void)
{
	const char *env = getenv("RECFS_FAULT");
	char *copy, *item, *save = NULL;

	if (env == NULL || *env == '\0')
		return;
	copy = strdup(env);
	if (copy == NULL)
		abort(); /* start-up path: a test with no memory cannot run anyway */
	for (item = strtok_r(copy, ",", &save); item != NULL;
	    item = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(item, ':'), *path = NULL;
		int err = EIO;

		if (colon != NULL) {
			*colon = '\0';
			path = strchr(colon + 1, ':');
			if (path != NULL) {
				*path++ = '\0';
				if (*path != '/') {
					log_warn("fault", "RECFS_FAULT: '%s' for '%s' is not an absolute path, "
					    "the fault is always armed", path, item);
					path = NULL;
				}
			}
			err = fault_parse_errno(colon + 1);
			if (err <= 0) {
				log_warn("fault", "RECFS_FAULT: bad errno '%s' for '%s', using EIO",
				    colon + 1, item);
				err = EIO;
			}
		}
		if (*item == '\0' || strlen(item) > FAULT_NAME_MAX) {
			log_warn("fault", "RECFS_FAULT: ignoring fault name '%s'", item);
			continue;
		}
		if (fault_count == FAULT_MAX) {
			log_warn("fault", "RECFS_FAULT: more than %d faults, ignoring the rest",
			    FAULT_MAX);
			break;
		}
		strcpy(fault_table[fault_count].name, item);
		fault_table[fault_count].err = err;
		if (path != NULL && (fault_table[fault_count].path = strdup(path)) == NULL)
			abort();
		fault_count++;
	}
	free(copy);
}

/* A positive errno from "28" or "ENOSPC", or -1. */
static int
fault_parse_errno(const char *s)
{
	char *end;
	long v;

	for (size_t i = 0; i < sizeof(fault_errno_names) / sizeof(fault_errno_names[0]); i++)
		if (strcmp(s, fault_errno_names[i].name) == 0)
			return fault_errno_names[i].err;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v <= 0 || v > 4095)
		return -1;
	return (int)v;
}

#else /* !RECFS_FAULT_INJECTION */

/* ISO C forbids an empty translation unit. */
typedef int fault_injection_disabled;

#endif
