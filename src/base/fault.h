/*
 * fault.h - fault points for tests.
 *
 * FAULT_POINT("name") evaluates to a negative errno when the named fault is
 * armed (environment RECFS_FAULT=name[:errno][,name...]), else 0.  Without
 * --enable-fault-injection it compiles to 0.
 */
#ifndef RECFS_BASE_FAULT_H
#define RECFS_BASE_FAULT_H

#ifdef RECFS_FAULT_INJECTION
int fault_check(const char *name);
#define FAULT_POINT(name) fault_check(name)
#else
#define FAULT_POINT(name) 0
#endif

#endif
