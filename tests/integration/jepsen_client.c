/*
 * jepsen_client - one client of the fault-injection test
 * (t_cluster_jepsen.sh; docs/cluster.md, "Fault-injection test").
 *
 * Usage: jepsen_client -c ID -n NODE -s SEED -d SECONDS -o LOG
 *            [-k KEYS] [-t OP_TIMEOUT_MS] [-p PAUSE_MS] DIR
 *
 * Works, until SECONDS have passed, on the names k000 .. k<KEYS-1> of DIR
 * (a set directory seen through one node's mount), which the other
 * clients share.  Each operation is one of, picked with the seeded PRNG:
 *   write      open(O_WRONLY|O_CREAT|O_TRUNC), write, fsync, close
 *   overwrite  the same without O_CREAT (ENOENT when the name is absent)
 *   delete     unlink
 * A write stores a value no other operation stores: the value id
 * "<client>.<op>" in a line that also names the file, so a read tells
 * which write it got (and the content is never empty once it completed).
 *
 * LOG (a local file) gets one line when an operation starts and one when
 * it ends, each written with one write(2) to an O_APPEND descriptor, so a
 * client killed between the two leaves a "begin" without its "end":
 *   client ID node NODE seed SEED keys KEYS pid PID
 *   begin ID OP NAME KIND VALUE START_NS
 *   end ID OP NAME KIND VALUE START_NS END_NS OUTCOME
 *   note ID TEXT
 * VALUE is the value id ("-" for a delete), times are CLOCK_REALTIME ns
 * (the checker compares the clients' times, all on one host), OUTCOME is
 * ok, fail:ERRNO (the errno's name) or unknown:timeout.  Every operation
 * is bounded: a watchdog thread writes "unknown:timeout" for one that
 * takes longer than OP_TIMEOUT_MS (default 15000; a node paused longer
 * than that holds a call that nothing can end) and ends the process with
 * exit status 3; opening DIR is bounded the same way (a "note" line).
 *
 * The mount of a node that was killed is detached: its descriptors answer
 * ENOTCONN, and its path shows the empty directory under it.  The client
 * then opens DIR again before each operation until DIR is on a FUSE mount
 * again (the node restarted), and never creates a file anywhere else.
 *
 * Exit: 0 when SECONDS ran out, 3 on a timed out operation, 1 on a usage
 * or log error.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#define FUSE_SUPER_MAGIC 0x65735546
#define MAX_KEYS 100000

enum kind { K_WRITE, K_OVERWRITE, K_DELETE };
static const char *const kind_name[] = { "write", "overwrite", "delete" };

static int log_fd = -1;
static int client_id;

/* The operation in flight, for the watchdog; protected by op_lock. */
static pthread_mutex_t op_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t op_cond = PTHREAD_COND_INITIALIZER;
static bool op_busy;
static uint64_t op_deadline_ns;         /* CLOCK_MONOTONIC */
static char op_line[256];               /* the "end" line up to its outcome */

static uint64_t rng_state;

static uint64_t clock_ns(clockid_t c);

/* Arms the watchdog for one call; line is the "end" line up to its
 * outcome, "" for opening the directory. */
static void
watch_begin(long timeout_ms, const char *line)
{
	pthread_mutex_lock(&op_lock);
	snprintf(op_line, sizeof(op_line), "%s", line);
	op_busy = true;
	op_deadline_ns = clock_ns(CLOCK_MONOTONIC) + (uint64_t)timeout_ms * 1000000ULL;
	pthread_cond_signal(&op_cond);
	pthread_mutex_unlock(&op_lock);
}

static void
watch_end(void)
{
	pthread_mutex_lock(&op_lock);
	op_busy = false;
	pthread_mutex_unlock(&op_lock);
}

static uint64_t
rng_next(void)
{
	/* splitmix64: deterministic from the seed, good enough for a schedule */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t
clock_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void
die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "jepsen_client: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

/* One line, one write(2): a kill never leaves half a line. */
static void
log_line(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		die("log line too long");
	if (write(log_fd, buf, (size_t)n) != n)
		die("write to the log: %s", strerror(errno));
}

static const char *
errno_name(int e)
{
	switch (e) {
	case ENOENT: return "ENOENT";
	case EIO: return "EIO";
	case ENOTCONN: return "ENOTCONN";
	case ENOSPC: return "ENOSPC";
	case EAGAIN: return "EAGAIN";
	case EEXIST: return "EEXIST";
	case EINTR: return "EINTR";
	case ETIMEDOUT: return "ETIMEDOUT";
	case EBUSY: return "EBUSY";
	case ENODEV: return "ENODEV";
	case EBADF: return "EBADF";
	case ENOMEM: return "ENOMEM";
	case EROFS: return "EROFS";
	case EACCES: return "EACCES";
	case ESTALE: return "ESTALE";
	case ECONNABORTED: return "ECONNABORTED";
	case ECONNREFUSED: return "ECONNREFUSED";
	default: return NULL;
	}
}

static void *
watchdog_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&op_lock);
	for (;;) {
		if (!op_busy) {
			pthread_cond_wait(&op_cond, &op_lock);
			continue;
		}
		uint64_t now = clock_ns(CLOCK_MONOTONIC);
		if (now >= op_deadline_ns) {
			/* the call may still complete: its effect is unknown */
			if (op_line[0])
				log_line("%s %" PRIu64 " unknown:timeout\n", op_line, clock_ns(CLOCK_REALTIME));
			else
				log_line("note %d opening the directory timed out\n", client_id);
			_exit(3);
		}
		struct timespec ts;
		uint64_t wake = clock_ns(CLOCK_REALTIME) + (op_deadline_ns - now);
		ts.tv_sec = (time_t)(wake / 1000000000ULL);
		ts.tv_nsec = (long)(wake % 1000000000ULL);
		pthread_cond_timedwait(&op_cond, &op_lock, &ts);
	}
	return NULL;
}

/* DIR opened again, only when it is a FUSE mount; -errno otherwise. */
static int
dir_open(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct statfs sf;
	if (fstatfs(fd, &sf) != 0 || sf.f_type != FUSE_SUPER_MAGIC) {
		close(fd);
		return -ENOTCONN;
	}
	return fd;
}

/* Runs one operation; 0 or -errno. */
static int
op_run(int dfd, enum kind kind, const char *name, const char *value)
{
	if (kind == K_DELETE)
		return unlinkat(dfd, name, 0) == 0 ? 0 : -errno;
	int flags = O_WRONLY | O_TRUNC | O_CLOEXEC | (kind == K_WRITE ? O_CREAT : 0);
	int fd = openat(dfd, name, flags, 0644);
	if (fd < 0)
		return -errno;
	char buf[128];
	int n = snprintf(buf, sizeof(buf), "jepsen value %s name %s\n", value, name);
	int rc = 0;
	ssize_t w = write(fd, buf, (size_t)n);
	if (w != n)
		rc = w < 0 ? -errno : -EIO;
	if (rc == 0 && fsync(fd) != 0)
		rc = -errno;
	if (close(fd) != 0 && rc == 0)
		rc = -errno;
	return rc;
}

int
main(int argc, char **argv)
{
	const char *node = NULL, *log_path = NULL;
	uint64_t seed = 1;
	long seconds = 10, keys = 200, timeout_ms = 15000, pause_ms = 5;
	int c;
	client_id = -1;
	while ((c = getopt(argc, argv, "c:n:s:d:o:k:t:p:")) != -1) {
		switch (c) {
		case 'c': client_id = atoi(optarg); break;
		case 'n': node = optarg; break;
		case 's': seed = strtoull(optarg, NULL, 10); break;
		case 'd': seconds = atol(optarg); break;
		case 'o': log_path = optarg; break;
		case 'k': keys = atol(optarg); break;
		case 't': timeout_ms = atol(optarg); break;
		case 'p': pause_ms = atol(optarg); break;
		default: die("usage: jepsen_client -c ID -n NODE -s SEED -d SECONDS -o LOG "
			    "[-k KEYS] [-t OP_TIMEOUT_MS] [-p PAUSE_MS] DIR");
		}
	}
	if (optind + 1 != argc || client_id < 0 || !node || !log_path)
		die("usage: jepsen_client -c ID -n NODE -s SEED -d SECONDS -o LOG "
		    "[-k KEYS] [-t OP_TIMEOUT_MS] [-p PAUSE_MS] DIR");
	if (keys < 1 || keys > MAX_KEYS || seconds < 0 || seconds > 86400 ||
	    timeout_ms < 10 || pause_ms < 0 || pause_ms > 10000)
		die("an argument is out of range");
	const char *dir = argv[optind];

	log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (log_fd < 0)
		die("%s: %s", log_path, strerror(errno));
	rng_state = seed * 1000003ULL + (uint64_t)client_id;
	log_line("client %d node %s seed %" PRIu64 " keys %ld pid %ld\n", client_id, node, seed, keys,
	    (long)getpid());

	pthread_t wd;
	if (pthread_create(&wd, NULL, watchdog_main, NULL) != 0)
		die("pthread_create failed");

	uint64_t end = clock_ns(CLOCK_MONOTONIC) + (uint64_t)seconds * 1000000000ULL;
	int dfd = -1;
	uint64_t op = 0, ok = 0, failed = 0;
	while (clock_ns(CLOCK_MONOTONIC) < end) {
		if (dfd < 0) {
			/* bounded like an operation (a stopped node's mount) */
			watch_begin(timeout_ms, "");
			dfd = dir_open(dir);
			watch_end();
			if (dfd < 0) {
				/* the node is down: wait for its mount to come back */
				usleep(100 * 1000);
				continue;
			}
		}
		uint64_t r = rng_next();
		char name[16], value[48];
		snprintf(name, sizeof(name), "k%03ld", (long)(r % (uint64_t)keys));
		unsigned pick = (unsigned)((r >> 32) % 100);
		enum kind kind = pick < 50 ? K_WRITE : pick < 75 ? K_OVERWRITE : K_DELETE;
		op++;
		if (kind == K_DELETE)
			snprintf(value, sizeof(value), "-");
		else
			snprintf(value, sizeof(value), "%d.%" PRIu64, client_id, op);

		uint64_t start = clock_ns(CLOCK_REALTIME);
		log_line("begin %d %" PRIu64 " %s %s %s %" PRIu64 "\n", client_id, op, name, kind_name[kind], value,
		    start);
		char line[sizeof(op_line)];
		snprintf(line, sizeof(line), "end %d %" PRIu64 " %s %s %s %" PRIu64, client_id, op, name,
		    kind_name[kind], value, start);
		watch_begin(timeout_ms, line);

		int rc = op_run(dfd, kind, name, value);

		pthread_mutex_lock(&op_lock);
		op_busy = false;
		uint64_t stop = clock_ns(CLOCK_REALTIME);
		if (rc == 0) {
			log_line("%s %" PRIu64 " ok\n", op_line, stop);
			ok++;
		} else {
			const char *en = errno_name(-rc);
			if (en)
				log_line("%s %" PRIu64 " fail:%s\n", op_line, stop, en);
			else
				log_line("%s %" PRIu64 " fail:%d\n", op_line, stop, -rc);
			failed++;
		}
		pthread_mutex_unlock(&op_lock);
		if (rc == -ENOTCONN || rc == -EBADF || rc == -ENODEV) {
			close(dfd);
			dfd = -1;
		}
		if (pause_ms > 0)
			usleep((useconds_t)(rng_next() % (uint64_t)(2 * pause_ms + 1)) * 1000);
	}
	if (dfd >= 0)
		close(dfd);
	printf("client %d (%s): %" PRIu64 " operations, %" PRIu64 " ok, %" PRIu64 " failed\n", client_id, node, op,
	    ok, failed);
	return 0;
}
