/*
 * fault.h - fault points for tests.
 *
 * FAULT_POINT("name") evaluates to a negative errno when the named fault is
 * armed (environment RECFS_FAULT=name[:errno[:path]][,name...]), else 0.
 * Without --enable-fault-injection it compiles to 0.
 *
 * errno is a number or a name such as ENOSPC; it defaults to EIO.  With an
 * absolute path the fault is armed only while that file exists.  The
 * environment is read once, on the first check, so arm faults before the
 * process starts.
 */
#ifndef RECFS_BASE_FAULT_H
#define RECFS_BASE_FAULT_H

/*
 * RECFS_FAULT_INJECTION comes from config.h; pull it in here so a file that
 * forgets to include config.h first does not silently lose its fault points.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#ifdef RECFS_FAULT_INJECTION
int fault_check(const char *name);
#define FAULT_POINT(name) fault_check(name)
#else
#define FAULT_POINT(name) 0
#endif

#endif
