/*
 * bench_util.c - the measuring machinery of recfs-bench: latency
 * histograms, phases of worker threads, child processes, mounts and
 * temp-dir removal.
 *
 * Histograms are log-linear (16 buckets per power of two of nanoseconds,
 * as HdrHistogram does with 4 significant bits), so one is a flat array a
 * worker owns and bumps without locks, and merging is a sum.  Rejected:
 * storing every sample (memory grows with the run, and sorting a few
 * million samples per phase costs more than the phase) and reservoir
 * sampling (tails are exactly what it loses).
 *
 * Children (recfsd, passthrough_ll, the compiler) go into their own
 * process group so a Ctrl-C at the terminal reaches only recfs-bench, which
 * unmounts first and then stops them by pid.  The recfsd helpers (config
 * written by the caller, start, wait for the mount or a cluster, stop) serve
 * every group that runs real nodes (bench_cluster.c, bench_migrate.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include "base/atomic.h"
#include "bench.h"

/* ---- histograms ---------------------------------------------------------- */

static unsigned
hist_index(uint64_t v)
{
	unsigned msb, shift;

	if (v < (1u << BENCH_HIST_SUB_BITS))
		return (unsigned)v;
	msb = 63 - (unsigned)__builtin_clzll(v);
	shift = msb - BENCH_HIST_SUB_BITS;
	return ((shift + 1) << BENCH_HIST_SUB_BITS) |
	    (unsigned)((v >> shift) & ((1u << BENCH_HIST_SUB_BITS) - 1));
}

/* The middle of a bucket: the error is at most half a bucket (~3%). */
static double
hist_value(unsigned idx)
{
	unsigned shift, sub;
	double lower, width;

	if (idx < (1u << BENCH_HIST_SUB_BITS))
		return idx;
	shift = (idx >> BENCH_HIST_SUB_BITS) - 1;
	sub = idx & ((1u << BENCH_HIST_SUB_BITS) - 1);
	lower = (double)((1ull << BENCH_HIST_SUB_BITS) + sub) * (double)(1ull << shift);
	width = (double)(1ull << shift);
	return lower + width / 2;
}

void
bench_hist_add(struct bench_hist *h, uint64_t ns)
{
	h->buckets[hist_index(ns)]++;
	h->count++;
	h->sum_ns += ns;
}

void
bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src)
{
	for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++)
		dst->buckets[i] += src->buckets[i];
	dst->count += src->count;
	dst->sum_ns += src->sum_ns;
}

double
bench_hist_mean_us(const struct bench_hist *h)
{
	return h->count ? (double)h->sum_ns / (double)h->count / 1000.0 : 0;
}

static double
hist_percentile_ns(const struct bench_hist *h, double pct)
{
	/* The smallest value with at least pct% of samples at or below it. */
	uint64_t want = (uint64_t)((double)h->count * pct / 100.0 + 0.999999);
	uint64_t seen = 0;

	if (want == 0)
		want = 1;
	for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen >= want)
			return hist_value(i);
	}
	return 0;
}

struct bench_latency
bench_hist_latency(const struct bench_hist *h)
{
	struct bench_latency l = { 0 };

	if (h->count == 0)
		return l;
	l.valid = true;
	l.samples = h->count;
	l.p50_us = hist_percentile_ns(h, 50) / 1000.0;
	l.p99_us = hist_percentile_ns(h, 99) / 1000.0;
	l.p999_us = hist_percentile_ns(h, 99.9) / 1000.0;
	return l;
}

uint64_t
bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- phases --------------------------------------------------------------- */

/* The start gate: workers wait until every one is ready, so the phase
 * measures them running together, not the thread start-up. */
struct phase_gate {
	pthread_mutex_t lock;
	pthread_cond_t cv;
	unsigned ready;           /* protected by lock */
	bool go;                  /* protected by lock */
};

struct phase_thread {
	pthread_t tid;
	struct phase_gate *gate;
	struct bench_worker w;
	bool started;
};

static void *
phase_thread_main(void *arg)
{
	struct phase_thread *t = arg;
	struct bench_phase *p = t->w.phase;

	pthread_mutex_lock(&t->gate->lock);
	t->gate->ready++;
	pthread_cond_broadcast(&t->gate->cv);
	while (!t->gate->go)
		pthread_cond_wait(&t->gate->cv, &t->gate->lock);
	pthread_mutex_unlock(&t->gate->lock);
	t->w.start_ns = bench_now_ns();
	p->fn(&t->w, p->arg);
	t->w.end_ns = bench_now_ns();
	return NULL;
}

/* Sleep until the duration is over, the workers finished (all joined
 * threads are polled with pthread_tryjoin_np) or the deadline passed. */
static void
phase_supervise(struct bench_phase *p, struct phase_thread *threads, unsigned n)
{
	uint64_t start = bench_now_ns();
	unsigned joined = 0;
	bool stuck_called = false;

	while (joined < n) {
		double elapsed = (double)(bench_now_ns() - start) / 1e9;
		struct timespec nap = { 0, 2 * 1000 * 1000 };

		if ((p->duration_s > 0 && elapsed >= p->duration_s) || bench_interrupted)
			atomic_store_relaxed(&p->stop, 1);
		if (!stuck_called && p->deadline_s > 0 && elapsed >= p->deadline_s) {
			/* A worker blocked in a FUSE call never sees the stop
			 * flag: the caller's hook (killing the daemon) makes the
			 * call fail so the thread can be joined. */
			stuck_called = true;
			if (p->on_stuck != NULL)
				p->on_stuck(p->stuck_arg);
		}
		joined = 0;
		for (unsigned i = 0; i < n; i++) {
			if (!threads[i].started) {
				joined++;
			} else if (pthread_tryjoin_np(threads[i].tid, NULL) == 0) {
				threads[i].started = false;
				joined++;
			}
		}
		if (joined < n)
			nanosleep(&nap, NULL);
	}
}

int
bench_phase_run(struct bench_phase *p)
{
	struct phase_gate gate = {
		.lock = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER,
	};
	struct phase_thread *threads;
	sigset_t block, saved;
	uint64_t first = UINT64_MAX, last = 0;
	unsigned n = p->n_threads, created = 0;
	int rc = 0;

	if (n == 0 || n > BENCH_THREADS_MAX)
		return -EINVAL;
	/* Worker structs hold 8 KiB histograms: one heap block, cache-line
	 * aligned, so no two workers' counters share a line. */
	threads = aligned_alloc(64, (sizeof(*threads) * n + 63) / 64 * 64);
	if (threads == NULL)
		return -ENOMEM;
	memset(threads, 0, sizeof(*threads) * n);
	p->stop = 0;
	/* Workers start with interrupts blocked (they inherit the mask), so
	 * a signal reaches the supervising thread: a worker must not have a
	 * FUSE call cut short by EINTR and count it as the daemon's error. */
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &block, &saved);
	for (unsigned i = 0; i < n; i++) {
		threads[i].gate = &gate;
		threads[i].w.id = i;
		threads[i].w.phase = p;
		rc = -pthread_create(&threads[i].tid, NULL, phase_thread_main, &threads[i]);
		if (rc != 0)
			break;
		threads[i].started = true;
		created++;
	}
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	/* On a failed create the started workers are released with stop
	 * already set, so they return at once and can be joined. */
	if (rc != 0)
		atomic_store_relaxed(&p->stop, 1);
	pthread_mutex_lock(&gate.lock);
	while (gate.ready < created)
		pthread_cond_wait(&gate.cv, &gate.lock);
	gate.go = true;
	pthread_cond_broadcast(&gate.cv);
	pthread_mutex_unlock(&gate.lock);
	phase_supervise(p, threads, n);

	p->ops = p->bytes = p->errors = 0;
	p->first_error = 0;
	memset(&p->hist, 0, sizeof(p->hist));
	for (unsigned i = 0; i < created; i++) {
		struct bench_worker *w = &threads[i].w;

		p->ops += w->ops;
		p->bytes += w->bytes;
		p->errors += w->errors;
		if (p->first_error == 0)
			p->first_error = w->first_error;
		bench_hist_merge(&p->hist, &w->hist);
		if (w->start_ns < first)
			first = w->start_ns;
		if (w->end_ns > last)
			last = w->end_ns;
	}
	p->seconds = last > first ? (double)(last - first) / 1e9 : 0;
	free(threads);
	return rc;
}

void
bench_row_from_phase(struct bench_row *row, const struct bench_phase *p)
{
	row->threads = p->n_threads;
	row->ops = p->ops;
	row->seconds = p->seconds;
	row->unit = "ops/s";
	row->value = p->seconds > 0 ? (double)p->ops / p->seconds : 0;
	row->mb_per_s = p->seconds > 0 ? (double)p->bytes / p->seconds / 1e6 : 0;
	row->lat = bench_hist_latency(&p->hist);
}

void
bench_acc_add(struct bench_acc *a, const struct bench_phase *p)
{
	a->ops += p->ops;
	a->bytes += p->bytes;
	a->seconds += p->seconds;
	bench_hist_merge(&a->hist, &p->hist);
}

void
bench_acc_merge(struct bench_acc *a, const struct bench_acc *b)
{
	a->ops += b->ops;
	a->bytes += b->bytes;
	a->seconds += b->seconds;
	a->cpu_s += b->cpu_s;
	bench_hist_merge(&a->hist, &b->hist);
}

double
bench_acc_rate(const struct bench_acc *a)
{
	return a->seconds > 0 ? (double)a->ops / a->seconds : 0;
}

struct bench_row *
bench_acc_row(struct bench_ctx *ctx, const struct bench_acc *a, const char *id, const char *label,
    unsigned threads)
{
	struct bench_row *row = bench_row_add(ctx, id, label);

	if (row == NULL)
		return NULL;
	row->threads = threads;
	row->ops = a->ops;
	row->seconds = a->seconds;
	row->unit = "ops/s";
	row->value = bench_acc_rate(a);
	row->mb_per_s = a->seconds > 0 ? (double)a->bytes / a->seconds / 1e6 : 0;
	row->lat = bench_hist_latency(&a->hist);
	return row;
}

#define BENCH_CHILD_NOFILE (1u << 20)   /* the default fs.nr_open */

/* ---- processes ------------------------------------------------------------ */

pid_t
bench_spawn(char *const argv[], const char *out_path)
{
	pid_t pid;
	int fd = open(out_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

	if (fd < 0)
		return -errno;
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);

		setpgid(0, 0);
		/* passthrough_ll holds an O_PATH fd per inode the kernel knows,
		 * i.e. per file created: give both daemons room for every file
		 * of a run (best effort: only root may raise the hard limit). */
		{
			struct rlimit rl = { BENCH_CHILD_NOFILE, BENCH_CHILD_NOFILE };

			if (setrlimit(RLIMIT_NOFILE, &rl) != 0 && getrlimit(RLIMIT_NOFILE, &rl) == 0) {
				rl.rlim_cur = rl.rlim_max;
				setrlimit(RLIMIT_NOFILE, &rl);
			}
		}
		if (null >= 0)
			dup2(null, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		execv(argv[0], argv);
		dprintf(STDERR_FILENO, "recfs-bench: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	/* Also from the parent, so the group exists before any signal. */
	setpgid(pid, pid);
	close(fd);
	return pid;
}

static int
reap_wait(pid_t pid, double timeout_s, int *status)
{
	uint64_t end = bench_now_ns() + (uint64_t)(timeout_s * 1e9);

	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);
		struct timespec nap = { 0, 20 * 1000 * 1000 };

		if (r == pid)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (bench_now_ns() >= end)
			return -ETIMEDOUT;
		nanosleep(&nap, NULL);
	}
}

int
bench_reap(pid_t pid, double timeout_s)
{
	int status = 0, rc;

	if (pid <= 0)
		return -ESRCH;
	rc = reap_wait(pid, timeout_s, &status);
	if (rc == -ETIMEDOUT) {
		kill(pid, SIGTERM);
		rc = reap_wait(pid, 5, &status);
	}
	if (rc == -ETIMEDOUT) {
		kill(pid, SIGKILL);
		rc = reap_wait(pid, 5, &status);
	}
	return rc < 0 ? rc : status;
}

int
bench_system(const char *cmd, const char *out_path)
{
	char *argv[] = { "/bin/sh", "-c", (char *)cmd, NULL };
	pid_t pid = bench_spawn(argv, out_path);
	int status = 0, rc;

	if (pid < 0)
		return pid;
	/* The compiler is not interruptible by our own Ctrl-C (own group):
	 * poll so an interrupt stops it. */
	for (;;) {
		rc = reap_wait(pid, 0.2, &status);
		if (rc != -ETIMEDOUT)
			break;
		if (bench_interrupted) {
			kill(-pid, SIGTERM);
			rc = reap_wait(pid, 5, &status);
			break;
		}
	}
	return rc < 0 ? rc : status;
}

double
bench_process_cpu_s(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long utime, stime;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* comm may hold spaces: fields count from the last ')'. */
	p = strrchr(buf, ')');
	if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
	    &utime, &stime) != 2)
		return -1;
	return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* ---- mounts and files ---------------------------------------------------- */

bool
bench_is_mounted(const char *path, const char *fstype_prefix)
{
	FILE *f = fopen("/proc/self/mounts", "re");
	char line[4096];
	bool found = false;

	if (f == NULL)
		return false;
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		char dev[1024], dir[2048], type[256];

		/* Our paths hold no spaces, so no octal escapes to undo. */
		if (sscanf(line, "%1023s %2047s %255s", dev, dir, type) != 3)
			continue;
		found = strcmp(dir, path) == 0 &&
		    strncmp(type, fstype_prefix, strlen(fstype_prefix)) == 0;
	}
	fclose(f);
	return found;
}

int
bench_unmount(const char *path)
{
	if (umount2(path, 0) == 0)
		return 0;
	if (errno == EPERM) {
		char *argv[] = { "/bin/fusermount3", "-u", (char *)path, NULL };
		char *argv_lazy[] = { "/bin/fusermount3", "-u", "-z", (char *)path, NULL };
		pid_t pid = bench_spawn(argv, "/dev/null");

		if (pid > 0 && bench_reap(pid, 10) == 0)
			return 0;
		pid = bench_spawn(argv_lazy, "/dev/null");
		if (pid > 0 && bench_reap(pid, 10) == 0)
			return 0;
		return -EPERM;
	}
	/* Busy (a handle still open somewhere): detach, so the temp dir can
	 * go and the daemon exits once the last user is gone. */
	if (umount2(path, MNT_DETACH) == 0)
		return 0;
	return -errno;
}

static int
remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

int
bench_remove_tree(const char *path)
{
	FILE *f;
	char line[4096];
	size_t len = strlen(path);

	if (len == 0 || strcmp(path, "/") == 0)
		return -EINVAL;
	/* Never delete through a mount that failed to go away: that would be
	 * somebody's data (or a hung daemon). */
	f = fopen("/proc/self/mounts", "re");
	if (f != NULL) {
		while (fgets(line, sizeof(line), f) != NULL) {
			char dev[1024], dir[2048];

			if (sscanf(line, "%1023s %2047s", dev, dir) == 2 &&
			    strncmp(dir, path, len) == 0 && (dir[len] == '/' || dir[len] == '\0')) {
				fclose(f);
				return -EBUSY;
			}
		}
		fclose(f);
	}
	if (nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) != 0 && errno != ENOENT)
		return -errno;
	return access(path, F_OK) == 0 ? -ENOTEMPTY : 0;
}

void
bench_file_tail(const char *path, char *buf, size_t size, unsigned lines)
{
	char data[8192];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	off_t end;
	char *p;

	buf[0] = '\0';
	if (fd < 0)
		return;
	end = lseek(fd, 0, SEEK_END);
	if (end > (off_t)sizeof(data) - 1)
		lseek(fd, end - (off_t)sizeof(data) + 1, SEEK_SET);
	else
		lseek(fd, 0, SEEK_SET);
	n = read(fd, data, sizeof(data) - 1);
	close(fd);
	if (n <= 0)
		return;
	data[n] = '\0';
	while (n > 0 && data[n - 1] == '\n')
		data[--n] = '\0';
	p = data + n;
	while (p > data && lines > 0) {
		p--;
		if (*p == '\n')
			lines--;
	}
	if (*p == '\n')
		p++;
	/* Notes are one line: join the lines with " | ". */
	for (size_t o = 0; *p != '\0' && o + 4 < size; p++) {
		if (*p == '\n') {
			memcpy(buf + o, " | ", 3);
			o += 3;
		} else {
			buf[o++] = *p;
		}
		buf[o] = '\0';
	}
}

int
bench_path(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

const char *
bench_fmt_count(char *buf, size_t size, double v)
{
	char digits[32];
	int n, o = 0;

	if (v < 0 || v > 1e18) {
		snprintf(buf, size, "%.3g", v);
		return buf;
	}
	n = snprintf(digits, sizeof(digits), "%.0f", v);
	for (int i = 0; i < n && (size_t)o + 2 < size; i++) {
		if (i > 0 && (n - i) % 3 == 0)
			buf[o++] = ',';
		buf[o++] = digits[i];
	}
	buf[o] = '\0';
	return buf;
}

/* ---- recfsd nodes and their .info files ---------------------------------- */

int
bench_write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	size_t len = strlen(text), off = 0;
	int rc = 0;

	if (fd < 0)
		return -errno;
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);

		if (n < 0) {
			rc = -errno;
			break;
		}
		off += (size_t)n;
	}
	if (close(fd) != 0 && rc == 0)
		rc = -errno;
	return rc;
}

int
bench_fail(char *err, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, BENCH_ERR_MAX, fmt, ap);
	va_end(ap);
	return rc;
}

/* A TCP port on 127.0.0.1 nothing listens on now, drawn from 20000 up to
 * the start of the kernel's ephemeral range: a port bind(0) could hand out
 * may be taken by any outgoing connection before the daemon binds it. */
int
bench_free_port(void)
{
	unsigned lo = 32768, seed = (unsigned)(bench_now_ns() ^ (uint64_t)getpid());
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");

	if (f != NULL) {
		if (fscanf(f, "%u", &lo) != 1)
			lo = 32768;
		fclose(f);
	}
	if (lo > 32768)
		lo = 32768;
	if (lo <= 20001)
		return -EADDRNOTAVAIL;
	for (int i = 0; i < 200; i++) {
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		int fd, port = 20000 + (int)(rand_r(&seed) % (lo - 20000));

		sa.sin_port = htons((uint16_t)port);
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			close(fd);
			return port;
		}
		close(fd);
	}
	return -EADDRNOTAVAIL;
}

/* The value of name in a "name=value" .info file; 0 or -errno. */
int
bench_info_value(const char *mnt, const char *file, const char *name, char *out, size_t size)
{
	char path[PATH_MAX], line[512];
	size_t len = strlen(name);
	int rc = -ENOENT;
	FILE *f;

	if (bench_path(path, sizeof(path), "%s/.info/%s", mnt, file) != 0)
		return -ENAMETOOLONG;
	f = fopen(path, "re");
	if (f == NULL)
		return -errno;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, name, len) == 0 && line[len] == '=') {
			line[strcspn(line, "\n")] = '\0';
			snprintf(out, size, "%s", line + len + 1);
			rc = 0;
			break;
		}
	}
	fclose(f);
	return rc;
}

int
bench_info_u64(const char *mnt, const char *file, const char *name, uint64_t *v)
{
	char buf[64], *end;
	int rc = bench_info_value(mnt, file, name, buf, sizeof(buf));

	if (rc != 0)
		return rc;
	*v = strtoull(buf, &end, 10);
	return end != buf ? 0 : -EINVAL;
}

static int
daemon_wait_mounted(struct bench_daemon *d, char *err)
{
	uint64_t end = bench_now_ns() + (uint64_t)(BENCH_MOUNT_WAIT_S * 1e9);
	char tail[160];
	int status;

	while (!bench_interrupted) {
		struct timespec nap = { 0, 20 * 1000 * 1000 };
		struct stat st;

		if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
			d->pid = 0;
			bench_file_tail(d->out, tail, sizeof(tail), 2);
			return bench_fail(err, -ECHILD, "recfsd %s exited (%s %d) before mounting: %s",
			    d->name, WIFEXITED(status) ? "status" : "signal",
			    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
			    tail[0] ? tail : "(no output)");
		}
		if (bench_is_mounted(d->mnt, "fuse") && stat(d->mnt, &st) == 0)
			return 0;
		if (bench_now_ns() >= end)
			return bench_fail(err, -ETIMEDOUT, "recfsd %s did not mount within %d s", d->name,
			    BENCH_MOUNT_WAIT_S);
		nanosleep(&nap, NULL);
	}
	return bench_fail(err, -EINTR, "interrupted");
}

int
bench_daemon_paths(struct bench_daemon *d, const char *base, const char *name, const char *dir)
{
	snprintf(d->name, sizeof(d->name), "%s", name);
	d->dirfd = -1;
	if (bench_path(d->dir, sizeof(d->dir), "%s", base) != 0 ||
	    bench_path(d->conf, sizeof(d->conf), "%s/recfs.yaml", base) != 0 ||
	    bench_path(d->mnt, sizeof(d->mnt), "%s/mnt", base) != 0 ||
	    bench_path(d->out, sizeof(d->out), "%s/recfsd.out", base) != 0 ||
	    bench_path(d->log, sizeof(d->log), "%s/recfsd.log", base) != 0 ||
	    bench_path(d->files, sizeof(d->files), "%s/mnt/%s", base, dir) != 0)
		return -ENAMETOOLONG;
	return 0;
}

int
bench_daemon_start(const char *recfsd, struct bench_daemon *d, char *err)
{
	char *argv[] = { (char *)recfsd, "-f", "-c", d->conf, d->mnt, NULL };
	int rc;

	d->pid = bench_spawn(argv, d->out);
	if (d->pid < 0) {
		rc = d->pid;
		d->pid = 0;
		return bench_fail(err, rc, "start %s: %s", recfsd, strerror(-rc));
	}
	return daemon_wait_mounted(d, err);
}

int
bench_daemon_open_dir(struct bench_daemon *d, char *err)
{
	/* mkdir in recfs makes a set (cluster-wide in a cluster). */
	if (mkdir(d->files, 0755) != 0 && errno != EEXIST)
		return bench_fail(err, -errno, "mkdir %s: %s", d->files, strerror(errno));
	d->dirfd = open(d->files, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->dirfd < 0)
		return bench_fail(err, -errno, "open %s: %s", d->files, strerror(errno));
	return 0;
}

void
bench_daemon_stop(struct bench_daemon *d)
{
	int rc;

	if (d->dirfd >= 0) {
		close(d->dirfd);
		d->dirfd = -1;
	}
	if (d->mnt[0] && bench_is_mounted(d->mnt, "fuse")) {
		rc = bench_unmount(d->mnt);
		if (rc != 0)
			fprintf(stderr, "recfs-bench: unmount %s: %s\n", d->mnt, strerror(-rc));
	}
	if (d->pid > 0) {
		rc = bench_reap(d->pid, 10);
		if (rc < 0)
			fprintf(stderr, "recfs-bench: recfsd %s pid %d: %s\n", d->name, (int)d->pid,
			    strerror(-rc));
		else if (WIFSIGNALED(rc) || (WIFEXITED(rc) && WEXITSTATUS(rc) != 0))
			fprintf(stderr, "recfs-bench: recfsd %s pid %d ended with %s %d\n", d->name,
			    (int)d->pid, WIFSIGNALED(rc) ? "signal" : "status",
			    WIFSIGNALED(rc) ? WTERMSIG(rc) : WEXITSTATUS(rc));
		d->pid = 0;
	}
}


int
bench_daemons_wait_cluster(struct bench_daemon *const *nodes, unsigned n, char *key_out, char *err)
{
	uint64_t t0 = bench_now_ns(), end = t0 + (uint64_t)(BENCH_CLUSTER_WAIT_S * 1e9);
	char key[BENCH_CLUSTER_NODES_MAX][32], size[64], want[16];

	if (n == 0 || n > BENCH_CLUSTER_NODES_MAX)
		return bench_fail(err, -EINVAL, "%u nodes", n);
	snprintf(want, sizeof(want), "%u", n);
	while (!bench_interrupted) {
		struct timespec nap = { 0, 50 * 1000 * 1000 };
		bool agree = true;

		for (unsigned i = 0; i < n && agree; i++) {
			if (bench_info_value(nodes[i]->mnt, "cluster", "cluster_size", size, sizeof(size)) != 0 ||
			    strcmp(size, want) != 0 ||
			    bench_info_value(nodes[i]->mnt, "cluster", "cluster_key", key[i], sizeof(key[i])) != 0 ||
			    strcmp(key[i], "0000000000000000") == 0 || (i > 0 && strcmp(key[i], key[0]) != 0))
				agree = false;
		}
		if (agree) {
			bench_progress("cluster of %u formed in %.1f s, cluster_key %s", n,
			    (double)(bench_now_ns() - t0) / 1e9, key[0]);
			if (key_out != NULL)
				snprintf(key_out, 32, "%s", key[0]);
			return 0;
		}
		for (unsigned i = 0; i < n; i++) {
			struct bench_daemon *d = nodes[i];
			int status;

			if (d->pid > 0 && waitpid(d->pid, &status, WNOHANG) == d->pid) {
				d->pid = 0;
				return bench_fail(err, -ECHILD, "recfsd %s exited while the cluster formed",
				    d->name);
			}
		}
		if (bench_now_ns() >= end)
			return bench_fail(err, -ETIMEDOUT, "no cluster of %u with one cluster_key within "
			    "%d s (.info/cluster of each mount)", n, BENCH_CLUSTER_WAIT_S);
		nanosleep(&nap, NULL);
	}
	return bench_fail(err, -EINTR, "interrupted");
}

/* ---- fio ---------------------------------------------------------------- */

void
bench_find_in_path(const char *name, char *out, size_t size)
{
	const char *path = getenv("PATH");
	char buf[PATH_MAX];

	out[0] = '\0';
	if (path == NULL || path[0] == '\0')
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");

		if (n > 0 && n + strlen(name) + 2 < sizeof(buf)) {
			snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, name);
			if (access(buf, X_OK) == 0) {
				snprintf(out, size, "%s", buf);
				return;
			}
		}
		path += n;
		if (*path == ':')
			path++;
	}
}

/* The number after "key" at or after p (fio writes `"key" : value`). */
static bool
json_num_after(const char *p, const char *end, const char *key, double *out)
{
	char pat[64];
	const char *k;
	char *e;

	snprintf(pat, sizeof(pat), "\"%s\"", key);
	k = strstr(p, pat);
	if (k == NULL || (end != NULL && k >= end))
		return false;
	k += strlen(pat);
	while (*k == ' ' || *k == '\t' || *k == '\n' || *k == '\r')
		k++;
	if (*k != ':')
		return false;
	k++;
	*out = strtod(k, &e);
	return e != k;
}

/* The start of the object `"dir" : {` after p, or NULL. */
static const char *
json_object(const char *p, const char *dir)
{
	char pat[32];
	size_t len;

	snprintf(pat, sizeof(pat), "\"%s\"", dir);
	len = strlen(pat);
	for (const char *k = strstr(p, pat); k != NULL; k = strstr(k + len, pat)) {
		const char *q = k + len;

		while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
			q++;
		if (*q != ':')
			continue;
		q++;
		while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
			q++;
		if (*q == '{')
			return q;
	}
	return NULL;
}

/* Minimal: the first job's (group_reporting: the only job's) "read" or
 * "write" section: bw_bytes, iops, runtime (ms), io_bytes. */
int
bench_fio_parse(const char *json_path, const char *dir, struct bench_fio_out *out, char *why, size_t why_size)
{
	FILE *f = fopen(json_path, "re");
	char *buf = NULL;
	size_t cap = 0, len = 0;
	const char *jobs, *obj;
	double err = 0, ms = 0;
	int rc = -EPROTO;

	if (f == NULL) {
		snprintf(why, why_size, "no JSON output (%s)", strerror(errno));
		return -ENOENT;
	}
	for (;;) {
		if (len + 4096 + 1 > cap) {
			char *nb = realloc(buf, cap = cap ? cap * 2 : 65536);

			if (nb == NULL) {
				fclose(f);
				free(buf);
				return -ENOMEM;
			}
			buf = nb;
		}
		size_t n = fread(buf + len, 1, cap - len - 1, f);
		if (n == 0)
			break;
		len += n;
	}
	fclose(f);
	if (buf == NULL) {
		snprintf(why, why_size, "empty JSON output");
		return -EPROTO;
	}
	buf[len] = '\0';
	jobs = strstr(buf, "\"jobs\"");
	if (jobs == NULL) {
		snprintf(why, why_size, "JSON output without \"jobs\"");
		goto out;
	}
	if (json_num_after(jobs, NULL, "error", &err) && err != 0) {
		snprintf(why, why_size, "fio job error %.0f", err);
		goto out;
	}
	obj = json_object(jobs, dir);
	if (obj == NULL || !json_num_after(obj, NULL, "bw_bytes", &out->bw_bytes) ||
	    !json_num_after(obj, NULL, "iops", &out->iops) ||
	    !json_num_after(obj, NULL, "runtime", &ms) ||
	    !json_num_after(obj, NULL, "io_bytes", &out->io_bytes)) {
		snprintf(why, why_size, "JSON output without %s bw_bytes/iops/runtime", dir);
		goto out;
	}
	out->runtime_s = ms / 1000.0;
	if (out->io_bytes <= 0 || out->runtime_s <= 0) {
		snprintf(why, why_size, "fio moved no data");
		goto out;
	}
	rc = 0;
out:
	free(buf);
	return rc;
}

/*
 * Run fio with the given job options (NULL-terminated), JSON into the temp
 * dir, and read the "read" or "write" figures.  Stops it on an interrupt
 * or after timeout_s.  On failure why says what happened.
 */
int
bench_fio_run(struct bench_ctx *ctx, const char *fio, const char *tag, const char *dir, const char *const *opts,
    double timeout_s, struct bench_fio_out *out, char *why, size_t why_size)
{
	char json[PATH_MAX], log[PATH_MAX], out_arg[PATH_MAX + 16], name_arg[64];
	char *argv[40];
	unsigned a = 0;
	uint64_t deadline;
	int status = 0, rc = 0;
	pid_t pid;

	memset(out, 0, sizeof(*out));
	if (bench_path(json, sizeof(json), "%s/fio-%s.json", ctx->tmp, tag) != 0 ||
	    bench_path(log, sizeof(log), "%s/fio-%s.log", ctx->tmp, tag) != 0 ||
	    bench_path(out_arg, sizeof(out_arg), "--output=%s", json) != 0) {
		snprintf(why, why_size, "temp dir path too long");
		return -ENAMETOOLONG;
	}
	snprintf(name_arg, sizeof(name_arg), "--name=%s", tag);
	unlink(json);
	argv[a++] = (char *)fio;
	argv[a++] = "--output-format=json";
	argv[a++] = out_arg;
	argv[a++] = name_arg;
	for (unsigned i = 0; opts[i] != NULL && a < sizeof(argv) / sizeof(argv[0]) - 1; i++)
		argv[a++] = (char *)opts[i];
	argv[a] = NULL;
	pid = bench_spawn(argv, log);
	if (pid < 0) {
		snprintf(why, why_size, "cannot start %.100s: %s", fio, strerror(-pid));
		return pid;
	}
	deadline = bench_now_ns() + (uint64_t)(timeout_s * 1e9);
	for (;;) {
		struct timespec nap = { 0, 20 * 1000 * 1000 };
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			break;
		if (r < 0 && errno != EINTR) {
			rc = -errno;
			snprintf(why, why_size, "waitpid fio: %s", strerror(errno));
			return rc;
		}
		if (bench_interrupted || bench_now_ns() >= deadline) {
			kill(-pid, SIGTERM);
			bench_reap(pid, 5);
			snprintf(why, why_size, bench_interrupted ? "interrupted" :
			    "fio did not finish within %.0f s", timeout_s);
			return bench_interrupted ? -EINTR : -ETIMEDOUT;
		}
		nanosleep(&nap, NULL);
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		char tail[120];

		bench_file_tail(log, tail, sizeof(tail), 2);
		snprintf(why, why_size, "fio exited %s %d: %s",
		    WIFEXITED(status) ? "with" : "on signal",
		    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), tail);
		return -EIO;
	}
	return bench_fio_parse(json, dir, out, why, why_size);
}
