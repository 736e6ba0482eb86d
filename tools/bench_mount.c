/*
 * bench_mount.c - file operations through a recfsd mount against the same
 * operations through libfuse's passthrough_ll example over tmpfs, run side
 * by side (target in docs/benchmarks.md: "through the mount ... >= the same operations
 * on libfuse's passthrough example over tmpfs on the same machine").
 *
 * Both daemons run at once, each on its own temp mount point.  recfsd gets
 * a memory-engine config in the temp dir (log file there too);
 * passthrough_ll is compiled at run time from the source Debian ships in
 * libfuse3-dev (never copied into the repo) and started with its default
 * caching options ("-f -o source=DIR": cache=auto, 1 s entry/attr timeout,
 * no writeback cache, multi-threaded loop).
 *
 * Fairness: for each thread count, both file systems do exactly the same
 * number of operations in rounds that alternate which goes first, so a
 * burst of noise from the other engineers' builds on this 2-core VM lands
 * on both.  The count per round is calibrated from a warm-up on both (the
 * slower one takes about --duration / rounds seconds per round).
 *
 * Operations (one timed op each, every op timed: ~100 us next to a ~25 ns
 * clock read):
 *   create  openat(O_CREAT|O_WRONLY|O_TRUNC) a new file, one 4 KiB write,
 *           close (close returns recfsd's flush error, so it is checked)
 *   read    openat(O_RDONLY), one 4 KiB read (content checked), close
 *
 * Teardown, also on errors and SIGINT: unmount both FUSE mounts, reap the
 * daemons by pid (SIGTERM, then SIGKILL after a bounded wait), unmount the
 * tmpfs; the driver then removes the temp dir (never through a mount).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define MOUNT_FILE_SIZE 4096
#define MOUNT_EXAMPLES_DIR "/usr/share/doc/libfuse3-dev/examples"
#define MOUNT_ROUND_FILES 16000    /* per file system and round, all threads */
#define MOUNT_ROUND_FILES_QUICK 2000
#define MOUNT_SIDES 2
#define MOUNT_CONFIGS 2         /* 1 thread and --threads */

enum { SIDE_RECFS = 0, SIDE_PT = 1 };
enum mount_op { OP_CREATE = 0, OP_READ = 1, OP_UNLINK = 2 };
#define MOUNT_TIMED_OPS 2       /* create and read; unlink only cleans up */

static const char *const side_name[MOUNT_SIDES] = { "recfs", "passthrough" };
static const char *const op_label[3] = {
	"create+write 4K+close", "open+read 4K+close", "unlink",
};

struct mount_side {
	char mnt[PATH_MAX];       /* FUSE mount point */
	char out[PATH_MAX];       /* daemon stdout/stderr */
	char log[PATH_MAX];       /* daemon log (recfsd) */
	pid_t pid;
	int dirfd;                /* the directory the files go in */
	bool ok;                  /* mounted and serving */
	char error[200];          /* why not */
};

/* Totals of one (thread config, op, side) over every round. */
struct bench_mount_state {
	struct mount_side side[MOUNT_SIDES];
	char tmpfs[PATH_MAX];
	bool tmpfs_mounted;
	unsigned n_configs;
	unsigned threads[MOUNT_CONFIGS];
	unsigned rounds;
	unsigned per_thread[MOUNT_CONFIGS];   /* files per thread per round */
	bool measured;                        /* mount_measure ran */
	struct bench_acc acc[MOUNT_CONFIGS][MOUNT_TIMED_OPS][MOUNT_SIDES];
};

/* ---- starting the daemons ------------------------------------------------- */

static int
write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	int rc = 0;

	if (f == NULL)
		return -errno;
	if (fputs(text, f) == EOF)
		rc = -EIO;
	if (fclose(f) != 0 && rc == 0)
		rc = -errno;
	return rc;
}

/* Say why a side cannot be measured (shown in its rows); returns rc. */
static int __attribute__((format(printf, 3, 4)))
side_fail(struct mount_side *s, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->error, sizeof(s->error), fmt, ap);
	va_end(ap);
	return rc;
}

/* Wait until s->mnt is a FUSE mount (or the daemon died, or timeout). */
static int
side_wait_mounted(struct mount_side *s, const char *what, double timeout_s)
{
	uint64_t end = bench_now_ns() + (uint64_t)(timeout_s * 1e9);
	char tail[160];
	int status;

	while (!bench_interrupted) {
		struct timespec nap = { 0, 20 * 1000 * 1000 };
		struct stat st;

		if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
			s->pid = 0;
			bench_file_tail(s->out, tail, sizeof(tail), 2);
			if (tail[0] == '\0')
				snprintf(tail, sizeof(tail), "(no output)");
			return side_fail(s, -ECHILD, "%s exited (%s %d) before mounting: %s", what,
			    WIFEXITED(status) ? "status" : "signal",
			    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), tail);
		}
		if (bench_is_mounted(s->mnt, "fuse") && stat(s->mnt, &st) == 0)
			return 0;
		if (bench_now_ns() >= end)
			return side_fail(s, -ETIMEDOUT, "%s did not mount within %.0f s", what, timeout_s);
		nanosleep(&nap, NULL);
	}
	return side_fail(s, -EINTR, "interrupted");
}

static int
side_open_dir(struct mount_side *s, const char *dir)
{
	/* mkdir in recfs makes a set; in passthrough a tmpfs directory. */
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return side_fail(s, -errno, "mkdir %s: %s", dir, strerror(errno));
	s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0)
		return side_fail(s, -errno, "open %s: %s", dir, strerror(errno));
	s->ok = true;
	return 0;
}

static int
side_start(struct mount_side *s, char *const argv[], const char *what, double timeout_s)
{
	int rc;

	s->pid = bench_spawn(argv, s->out);
	if (s->pid < 0) {
		rc = s->pid;
		s->pid = 0;
		return side_fail(s, rc, "start %s: %s", argv[0], strerror(-rc));
	}
	return side_wait_mounted(s, what, timeout_s);
}

static int
start_recfsd(struct bench_ctx *ctx, struct mount_side *s)
{
	char base[PATH_MAX], conf[PATH_MAX], work[PATH_MAX], dir[PATH_MAX];
	char recfsd[PATH_MAX], yaml[3 * PATH_MAX];
	int rc;

	if (ctx->opt.recfsd_path != NULL)
		rc = bench_path(recfsd, sizeof(recfsd), "%s", ctx->opt.recfsd_path);
	else
		rc = bench_path(recfsd, sizeof(recfsd), "%s/recfsd", ctx->opt.self_dir);
	if (rc != 0)
		return side_fail(s, rc, "recfsd path too long");
	if (access(recfsd, X_OK) != 0)
		return side_fail(s, -ENOENT, "%s: %s (see --recfsd)", recfsd, strerror(errno));
	/* ctx->tmp is short (the driver checks), so these joins fit. */
	if (bench_path(base, sizeof(base), "%s/recfsd", ctx->tmp) != 0 ||
	    bench_path(conf, sizeof(conf), "%s/recfs.yaml", base) != 0 ||
	    bench_path(work, sizeof(work), "%s/work", base) != 0 ||
	    bench_path(s->mnt, sizeof(s->mnt), "%s/mnt", base) != 0 ||
	    bench_path(s->out, sizeof(s->out), "%s/recfsd.out", base) != 0 ||
	    bench_path(s->log, sizeof(s->log), "%s/recfsd.log", base) != 0 ||
	    bench_path(dir, sizeof(dir), "%s/bench/files", s->mnt) != 0)
		return side_fail(s, -ENAMETOOLONG, "temp dir path too long");
	if (mkdir(base, 0700) != 0 || mkdir(work, 0700) != 0 || mkdir(s->mnt, 0755) != 0)
		return side_fail(s, -errno, "mkdir under %s: %s", base, strerror(errno));
	/* The files of every round fit at well under half of data-size, so
	 * defrag does not run during the measurements. */
	rc = bench_path(yaml, sizeof(yaml),
	    "# generated by recfs-bench\n"
	    "service:\n"
	    "  cluster-name: bench\n"
	    "  work-directory: %s\n"
	    "  ticker-interval: 0\n"
	    "logging:\n"
	    "  file: %s\n"
	    "  level: info\n"
	    "namespaces:\n"
	    "  - name: bench\n"
	    "    replication-factor: 1\n"
	    "    storage-engine:\n"
	    "      type: memory\n"
	    "      data-size: %s\n"
	    "      write-block-size: 1M\n",
	    work, s->log, ctx->opt.quick ? "256M" : "2G");
	if (rc == 0)
		rc = write_text(conf, yaml);
	if (rc != 0)
		return side_fail(s, rc, "write %s: %s", conf, strerror(-rc));
	{
		char *argv[] = { recfsd, "-f", "-c", conf, s->mnt, NULL };

		/* 30 s: start-up includes populating data-size of RAM. */
		rc = side_start(s, argv, "recfsd", 30);
	}
	if (rc != 0)
		return rc;
	bench_note(ctx, "recfsd %s: memory engine, data-size %s, write-block-size 1M, other "
	    "settings at their defaults (fuse threads, attr/entry timeouts)", recfsd,
	    ctx->opt.quick ? "256M" : "2G");
	return side_open_dir(s, dir);
}

/* Build passthrough_ll from the packaged example (plain or gzipped). */
static int
build_passthrough(struct bench_ctx *ctx, const char *base, const char *bin, struct mount_side *s)
{
	char src[PATH_MAX], cmd[4 * PATH_MAX], log[PATH_MAX], tail[160];
	const char *incdir = MOUNT_EXAMPLES_DIR;
	int status;

	if (bench_path(log, sizeof(log), "%s/build.out", base) != 0)
		return side_fail(s, -ENAMETOOLONG, "temp dir path too long");
	snprintf(src, sizeof(src), MOUNT_EXAMPLES_DIR "/passthrough_ll.c");
	if (access(src, R_OK) != 0) {
		snprintf(src, sizeof(src), MOUNT_EXAMPLES_DIR "/passthrough_ll.c.gz");
		if (access(src, R_OK) != 0)
			return side_fail(s, -ENOENT, "passthrough_ll.c(.gz) not found in "
			    MOUNT_EXAMPLES_DIR " (install libfuse3-dev)");
		/* Unpack into the temp dir, with its helper header. */
		if (bench_path(cmd, sizeof(cmd),
		    "set -e; cd '%s'; gzip -dc '%s' > passthrough_ll.c; "
		    "if [ -f '%s/passthrough_helpers.h.gz' ]; then "
		    "gzip -dc '%s/passthrough_helpers.h.gz' > passthrough_helpers.h; "
		    "else cp '%s/passthrough_helpers.h' .; fi",
		    base, src, MOUNT_EXAMPLES_DIR, MOUNT_EXAMPLES_DIR, MOUNT_EXAMPLES_DIR) != 0 ||
		    bench_path(src, sizeof(src), "%s/passthrough_ll.c", base) != 0)
			return side_fail(s, -ENAMETOOLONG, "temp dir path too long");
		status = bench_system(cmd, log);
		if (status != 0) {
			bench_file_tail(log, tail, sizeof(tail), 2);
			return side_fail(s, -EIO, "unpacking passthrough_ll.c.gz failed: %s", tail);
		}
		incdir = base;
	}
	if (bench_path(cmd, sizeof(cmd),
	    "${CC:-cc} -O2 -o '%s' '%s' -I'%s' $(pkg-config --cflags --libs fuse3)",
	    bin, src, incdir) != 0)
		return side_fail(s, -ENAMETOOLONG, "temp dir path too long");
	bench_progress("building passthrough_ll: %s", cmd);
	bench_note(ctx, "passthrough_ll built from %s with ${CC:-cc} -O2, run as "
	    "'passthrough_ll -f -o source=<tmpfs dir> <mnt>' (its defaults: cache=auto, "
	    "entry/attr timeout 1.0 s, no writeback, no xattr, multi-threaded)", src);
	status = bench_system(cmd, log);
	if (status != 0) {
		bench_file_tail(log, tail, sizeof(tail), 2);
		return side_fail(s, -EIO, "building passthrough_ll failed: %s", tail);
	}
	return 0;
}

static int
start_passthrough(struct bench_ctx *ctx, struct bench_mount_state *st, struct mount_side *s)
{
	char base[PATH_MAX], bin[PATH_MAX], opt[PATH_MAX], dir[PATH_MAX];
	int rc;

	if (bench_path(base, sizeof(base), "%s/passthrough", ctx->tmp) != 0 ||
	    bench_path(bin, sizeof(bin), "%s/passthrough_ll", base) != 0 ||
	    bench_path(st->tmpfs, sizeof(st->tmpfs), "%s/tmpfs", base) != 0 ||
	    bench_path(s->mnt, sizeof(s->mnt), "%s/mnt", base) != 0 ||
	    bench_path(s->out, sizeof(s->out), "%s/passthrough.out", base) != 0 ||
	    bench_path(opt, sizeof(opt), "source=%s", st->tmpfs) != 0 ||
	    bench_path(dir, sizeof(dir), "%s/files", s->mnt) != 0)
		return side_fail(s, -ENAMETOOLONG, "temp dir path too long");
	if (mkdir(base, 0700) != 0 || mkdir(st->tmpfs, 0755) != 0 || mkdir(s->mnt, 0755) != 0)
		return side_fail(s, -errno, "mkdir under %s: %s", base, strerror(errno));
	rc = build_passthrough(ctx, base, bin, s);
	if (rc != 0)
		return rc;
	if (mount("tmpfs", st->tmpfs, "tmpfs", MS_NOSUID | MS_NODEV,
	    ctx->opt.quick ? "size=512m" : "size=4g") != 0)
		return side_fail(s, -errno, "mount -t tmpfs %s: %s (needs root)", st->tmpfs,
		    strerror(errno));
	st->tmpfs_mounted = true;
	{
		char *argv[] = { bin, "-f", "-o", opt, s->mnt, NULL };

		rc = side_start(s, argv, "passthrough_ll", 15);
	}
	if (rc != 0)
		return rc;
	return side_open_dir(s, dir);
}

static struct bench_mount_state *
mount_setup(struct bench_ctx *ctx)
{
	struct bench_mount_state *st = ctx->mount;

	if (st != NULL)
		return st;
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return NULL;
	ctx->mount = st;
	for (int i = 0; i < MOUNT_SIDES; i++)
		st->side[i].dirfd = -1;
	st->threads[0] = 1;
	st->n_configs = 1;
	if (ctx->opt.threads != 1)
		st->threads[st->n_configs++] = ctx->opt.threads;
	st->rounds = ctx->opt.quick ? 2 : 3;
	if (start_recfsd(ctx, &st->side[SIDE_RECFS]) == 0)
		bench_progress("recfsd pid %d mounted at %s", (int)st->side[SIDE_RECFS].pid,
		    st->side[SIDE_RECFS].mnt);
	if (!bench_interrupted && start_passthrough(ctx, st, &st->side[SIDE_PT]) == 0)
		bench_progress("passthrough_ll pid %d mounted at %s", (int)st->side[SIDE_PT].pid,
		    st->side[SIDE_PT].mnt);
	return st;
}

/* ---- the workload ---------------------------------------------------------- */

struct mount_job {
	struct mount_side *side;
	enum mount_op op;
	char prefix[32];          /* "c1-r2" or "c1-w": names differ per round */
	unsigned count;           /* files per thread */
};

static void
file_name(char *buf, size_t size, const struct mount_job *job, unsigned thread, unsigned i)
{
	snprintf(buf, size, "%s-t%u-%07u", job->prefix, thread, i);
}

static void
mount_worker(struct bench_worker *w, void *arg)
{
	struct mount_job *job = arg;
	int dirfd = job->side->dirfd;
	char buf[MOUNT_FILE_SIZE], name[64];

	memset(buf, 'r', sizeof(buf));
	for (unsigned i = 0; i < job->count && !bench_interrupted; i++) {
		uint64_t t0;
		ssize_t n;
		int fd, rc = 0;

		file_name(name, sizeof(name), job, w->id, i);
		t0 = bench_now_ns();
		if (job->op == OP_CREATE) {
			/* The file's name opens its content: the read phase checks
			 * it got this file's bytes. */
			memcpy(buf, name, strlen(name) + 1);
			fd = openat(dirfd, name, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
			if (fd < 0) {
				rc = -errno;
			} else {
				n = write(fd, buf, sizeof(buf));
				if (n != (ssize_t)sizeof(buf))
					rc = n < 0 ? -errno : -EIO;
				if (close(fd) != 0 && rc == 0)
					rc = -errno;
			}
		} else if (job->op == OP_UNLINK) {
			if (unlinkat(dirfd, name, 0) != 0)
				rc = -errno;
		} else {
			fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
			if (fd < 0) {
				rc = -errno;
			} else {
				n = read(fd, buf, sizeof(buf));
				if (n != (ssize_t)sizeof(buf))
					rc = n < 0 ? -errno : -EIO;
				else if (memcmp(buf, name, strlen(name) + 1) != 0)
					rc = -EIO;
				if (close(fd) != 0 && rc == 0)
					rc = -errno;
			}
		}
		bench_hist_add(&w->hist, bench_now_ns() - t0);
		if (rc != 0) {
			w->errors++;
			w->first_error = rc;
			return;
		}
		w->ops++;
		w->bytes += MOUNT_FILE_SIZE;
	}
}

/* After a failed phase: was it the daemon?  Its fate and last words go to
 * stderr (the row's note has room for the error only). */
static void
side_diagnose(struct mount_side *s)
{
	char tail[512];
	int status;

	if (s->pid > 0 && waitpid(s->pid, &status, WNOHANG) == s->pid) {
		bench_progress("daemon pid %d %s %d", (int)s->pid,
		    WIFEXITED(status) ? "exited with status" : "was killed by signal",
		    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		s->pid = 0;
	} else if (s->pid > 0) {
		bench_progress("daemon pid %d still running", (int)s->pid);
	}
	bench_file_tail(s->out, tail, sizeof(tail), 5);
	if (tail[0])
		bench_progress("daemon output: %s", tail);
	if (s->log[0]) {
		bench_file_tail(s->log, tail, sizeof(tail), 5);
		if (tail[0])
			bench_progress("daemon log: %s", tail);
	}
}

/* A worker stuck in a FUSE call never returns by itself: killing the
 * daemon aborts the connection, the call fails with ENOTCONN. */
static void
mount_on_stuck(void *arg)
{
	struct mount_side *s = arg;

	bench_progress("a FUSE call is stuck: killing daemon pid %d", (int)s->pid);
	if (s->pid > 0)
		kill(s->pid, SIGKILL);
}

/* One phase on one side; adds it to acc unless acc is NULL (warm-up). */
static int
mount_phase(struct bench_ctx *ctx, struct mount_side *s, enum mount_op op, const char *prefix,
    unsigned threads, unsigned count, struct bench_acc *acc, double *rate)
{
	struct mount_job job = { .side = s, .op = op, .count = count };
	struct bench_phase p = {
		.n_threads = threads,
		.fn = mount_worker,
		.arg = &job,
		.on_stuck = mount_on_stuck,
		.stuck_arg = s,
	};
	double cpu0, cpu1;
	int rc;

	/* Generous: 20 times the calibrated time, at least a minute. */
	p.deadline_s = 60 + 20 * ctx->opt.duration_s;
	snprintf(job.prefix, sizeof(job.prefix), "%s", prefix);
	cpu0 = bench_process_cpu_s(s->pid);
	rc = bench_phase_run(&p);
	cpu1 = bench_process_cpu_s(s->pid);
	if (rc == 0 && p.errors != 0)
		rc = p.first_error;
	if (bench_interrupted)
		return -EINTR;
	if (rc != 0) {
		s->ok = false;
		side_diagnose(s);
		return side_fail(s, rc, "%s %s/%s: %llu errors, first: %s", op_label[op],
		    side_name[s == &ctx->mount->side[SIDE_RECFS] ? SIDE_RECFS : SIDE_PT], prefix,
		    (unsigned long long)p.errors, strerror(-rc));
	}
	if (rate != NULL)
		*rate = p.seconds > 0 ? (double)p.ops / p.seconds : 0;
	if (acc != NULL) {
		bench_acc_add(acc, &p);
		if (cpu0 >= 0 && cpu1 >= cpu0)
			acc->cpu_s += cpu1 - cpu0;
	}
	return 0;
}

static void
acc_row(struct bench_ctx *ctx, const struct bench_acc *a, const char *id, const char *label,
    unsigned threads)
{
	struct bench_row *row = bench_acc_row(ctx, a, id, label, threads);

	if (row != NULL && a->ops > 0)
		snprintf(row->note, sizeof(row->note), "daemon CPU %.1f us/op",
		    a->cpu_s * 1e6 / (double)a->ops);
}

/* Rows of one thread config: each side, then the ratio. */
static void
mount_rows(struct bench_ctx *ctx, const struct bench_def *def, enum mount_op op, unsigned c)
{
	struct bench_mount_state *st = ctx->mount;
	struct bench_acc *a = st->acc[c][op];
	unsigned t = st->threads[c];
	char id[48], label[64];
	struct bench_row *row;

	for (int i = 0; i < MOUNT_SIDES; i++) {
		snprintf(id, sizeof(id), "%s.t%u", side_name[i], t);
		snprintf(label, sizeof(label), "%s %s", op_label[op], side_name[i]);
		if (st->side[i].ok) {
			acc_row(ctx, &a[i], id, label, t);
		} else {
			row = bench_row_error(ctx, id, label, "%s", st->side[i].error);
			if (row != NULL)
				row->threads = t;
		}
	}
	snprintf(id, sizeof(id), "ratio.t%u", t);
	snprintf(label, sizeof(label), "%s recfs/passthrough", op_label[op]);
	if (!st->side[SIDE_RECFS].ok || !st->side[SIDE_PT].ok || a[SIDE_PT].ops == 0 ||
	    a[SIDE_PT].seconds <= 0 || a[SIDE_RECFS].seconds <= 0) {
		row = bench_row_error(ctx, id, label, "needs both file systems measured");
		if (row != NULL)
			row->threads = t;
		return;
	}
	row = bench_row_add(ctx, id, label);
	if (row == NULL)
		return;
	row->threads = t;
	row->unit = "x";
	row->value = ((double)a[SIDE_RECFS].ops / a[SIDE_RECFS].seconds) /
	    ((double)a[SIDE_PT].ops / a[SIDE_PT].seconds);
	snprintf(row->note, sizeof(row->note), "%u rounds x %u files/thread, alternating",
	    st->rounds, st->per_thread[c]);
	if (def->target != NULL)
		bench_row_judge(ctx, row, def->target, 1.0, true);
}

static bool
any_side_ok(const struct bench_mount_state *st)
{
	return st->side[SIDE_RECFS].ok || st->side[SIDE_PT].ok;
}

/* The most files one round may hold per file system: passthrough_ll keeps
 * an O_PATH fd open for every inode the kernel knows (and finds them by a
 * linear list walk), so its fd limit, which the bench may not be allowed
 * to raise, bounds a round.  Every round's files are deleted after it. */
static unsigned
mount_round_files_max(bool quick)
{
	struct rlimit rl;
	unsigned max = quick ? MOUNT_ROUND_FILES_QUICK : MOUNT_ROUND_FILES;

	/* bench_spawn gives the daemons the hard limit. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY &&
	    rl.rlim_max < (rlim_t)max * 10 / 9 + 256)
		max = rl.rlim_max > 1280 ? (unsigned)((rl.rlim_max - 256) * 9 / 10) : 1000;
	return max;
}

/* Create, read and delete count files per thread on one side, untimed:
 * starts the daemon's thread pool and measures its create rate. */
static double
mount_warm_up(struct bench_ctx *ctx, struct mount_side *s, unsigned c, unsigned t, unsigned count)
{
	char prefix[32];
	double rate = 0;

	snprintf(prefix, sizeof(prefix), "c%u-w", c);
	if (mount_phase(ctx, s, OP_CREATE, prefix, t, count, NULL, &rate) != 0 ||
	    mount_phase(ctx, s, OP_READ, prefix, t, count, NULL, NULL) != 0 ||
	    mount_phase(ctx, s, OP_UNLINK, prefix, t, count, NULL, NULL) != 0)
		return 0;
	return rate;
}

/* Choose the count per round so the slower file system spends about
 * --duration / rounds seconds creating its files in each round. */
static void
mount_calibrate(struct bench_ctx *ctx, unsigned c)
{
	struct bench_mount_state *st = ctx->mount;
	unsigned t = st->threads[c], warm = ctx->opt.quick ? 50 : 500;
	unsigned min = ctx->opt.quick ? 20 : 200;
	unsigned cap = mount_round_files_max(ctx->opt.quick) / t;
	double slowest = 0, per_round = ctx->opt.duration_s / st->rounds, count;

	if (warm > cap)
		warm = cap;
	for (int i = 0; i < MOUNT_SIDES && !bench_interrupted; i++) {
		double rate;

		if (!st->side[i].ok)
			continue;
		rate = mount_warm_up(ctx, &st->side[i], c, t, warm);
		if (rate > 0 && (slowest == 0 || rate < slowest))
			slowest = rate;
	}
	if (cap < min)
		cap = min;
	count = slowest / t * per_round;
	st->per_thread[c] = count < min ? min : count > cap ? cap : (unsigned)count;
}

/*
 * Every measurement of both benchmarks, once: per thread config and round,
 * creates on both file systems, reads of those files on both (in the
 * opposite order), then an untimed delete.  mount.create and mount.read
 * only report their half, so either can run alone (--only).
 */
static void
mount_measure(struct bench_ctx *ctx)
{
	struct bench_mount_state *st = ctx->mount;

	if (st->measured)
		return;
	st->measured = true;
	for (unsigned c = 0; c < st->n_configs && !bench_interrupted && any_side_ok(st); c++) {
		unsigned t = st->threads[c];

		mount_calibrate(ctx, c);
		bench_progress("mount, %u thread%s: %u rounds x %u files/thread", t, t == 1 ? "" : "s",
		    st->rounds, st->per_thread[c]);
		for (unsigned r = 0; r < st->rounds && !bench_interrupted; r++) {
			char prefix[32];

			snprintf(prefix, sizeof(prefix), "c%u-r%u", c, r);
			/* Alternate who goes first, so a slow spell of the
			 * machine does not always hit the same side. */
			for (int k = 0; k < 2 * MOUNT_SIDES; k++) {
				enum mount_op op = k < MOUNT_SIDES ? OP_CREATE : OP_READ;
				int i = (int)((r + (unsigned)(k < MOUNT_SIDES ? k : 2 * MOUNT_SIDES - 1 - k)) %
				    MOUNT_SIDES);

				if (st->side[i].ok && !bench_interrupted)
					mount_phase(ctx, &st->side[i], op, prefix, t, st->per_thread[c],
					    &st->acc[c][op][i], NULL);
			}
			for (int i = 0; i < MOUNT_SIDES; i++)
				if (st->side[i].ok && !bench_interrupted)
					mount_phase(ctx, &st->side[i], OP_UNLINK, prefix, t,
					    st->per_thread[c], NULL, NULL);
		}
	}
}

static int
mount_run(struct bench_ctx *ctx, const struct bench_def *def, enum mount_op op)
{
	struct bench_mount_state *st = mount_setup(ctx);

	if (st == NULL) {
		bench_row_error(ctx, "", op_label[op], "out of memory");
		return -ENOMEM;
	}
	mount_measure(ctx);
	if (bench_interrupted)
		return -EINTR;
	for (unsigned c = 0; c < st->n_configs; c++)
		mount_rows(ctx, def, op, c);
	bench_note(ctx, "mount: every op timed; per round: creates on both, reads of those files "
	    "on both, untimed delete; ratio = recfs ops/s / passthrough ops/s over the same counts; "
	    "daemon CPU from /proc (10 ms ticks)");
	return any_side_ok(st) ? 0 : -EIO;
}

int
bench_mount_create(struct bench_ctx *ctx, const struct bench_def *def)
{
	return mount_run(ctx, def, OP_CREATE);
}

int
bench_mount_read(struct bench_ctx *ctx, const struct bench_def *def)
{
	return mount_run(ctx, def, OP_READ);
}

/* ---- teardown -------------------------------------------------------------- */

static void
side_stop(struct mount_side *s, const char *what)
{
	int rc;

	if (s->dirfd >= 0) {
		close(s->dirfd);
		s->dirfd = -1;
	}
	/* Unmount first: for recfsd that is the clean shutdown a user gets
	 * from fusermount3 -u; the daemon then exits by itself. */
	if (s->mnt[0] && bench_is_mounted(s->mnt, "fuse")) {
		rc = bench_unmount(s->mnt);
		if (rc != 0)
			fprintf(stderr, "recfs-bench: unmount %s: %s\n", s->mnt, strerror(-rc));
	}
	if (s->pid > 0) {
		rc = bench_reap(s->pid, 10);
		if (rc < 0)
			fprintf(stderr, "recfs-bench: %s pid %d: %s\n", what, (int)s->pid, strerror(-rc));
		else if (WIFSIGNALED(rc) || (WIFEXITED(rc) && WEXITSTATUS(rc) != 0))
			fprintf(stderr, "recfs-bench: %s pid %d ended with %s %d\n", what, (int)s->pid,
			    WIFSIGNALED(rc) ? "signal" : "status",
			    WIFSIGNALED(rc) ? WTERMSIG(rc) : WEXITSTATUS(rc));
		s->pid = 0;
	}
	s->ok = false;
}

void
bench_mount_cleanup(struct bench_ctx *ctx)
{
	struct bench_mount_state *st = ctx->mount;

	if (st == NULL)
		return;
	side_stop(&st->side[SIDE_RECFS], "recfsd");
	side_stop(&st->side[SIDE_PT], "passthrough_ll");
	/* After passthrough_ll exited: it held the tmpfs open. */
	if (st->tmpfs_mounted) {
		if (umount2(st->tmpfs, 0) != 0 && umount2(st->tmpfs, MNT_DETACH) != 0)
			fprintf(stderr, "recfs-bench: umount %s: %s\n", st->tmpfs, strerror(errno));
		st->tmpfs_mounted = false;
	}
	free(st);
	ctx->mount = NULL;
}
