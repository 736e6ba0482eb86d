/*
 * bench.h - recfs-bench internals shared by tools/recfs-bench.c (driver,
 * report) and the benchmark files tools/bench_*.c.
 *
 * A benchmark is one row of the table in recfs-bench.c: a name (for
 * --only and the JSON), a title, the target text (docs/benchmarks.md) and a
 * run function that appends result rows.  Benchmarks of one group share
 * state (the embedded node, the mounts) that the group's cleanup function
 * releases; the driver calls it when the next benchmark belongs to another
 * group, at the end, and on every error or interrupt path.
 *
 * Measurement: a phase runs n worker threads that start together behind a
 * barrier and stop on a duration or when their counts are done; each
 * worker keeps its own counters and latency histogram (no shared cache
 * line is written on the hot path), merged when the phase ends.
 *
 * See docs/benchmarks.md for what every figure means.
 */
#ifndef RECFS_TOOLS_BENCH_H
#define RECFS_TOOLS_BENCH_H

#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "base/atomic.h"

#define BENCH_THREADS_MAX 64
#define BENCH_ROWS_MAX 128
#define BENCH_NOTES_MAX 16

/* ---- options and context ------------------------------------------------ */

struct bench_opts {
	unsigned threads;         /* worker threads (--threads) */
	double duration_s;        /* seconds per measured phase (--duration) */
	bool quick;               /* small counts, whole run < 20 s */
	bool skip_mount;
	bool keep;                /* keep the temp dir (logs) for a post-mortem */
	uint64_t keys;            /* distinct keys of the embedded benchmarks */
	const char *json_path;    /* NULL = JSON after the table on stdout */
	const char *recfsd_path;  /* NULL = next to this program */
	const char *only;         /* comma-separated benchmark names, NULL = all */
	const char *device_dir;   /* device storage files under here, NULL = tmp */
	char self_dir[PATH_MAX];  /* directory of this program */
};

enum bench_verdict {
	VERDICT_NONE = 0,         /* informational row, no target */
	VERDICT_PASS,
	VERDICT_MISS,             /* measured, below target: reported, not an error */
	VERDICT_SKIP,
	VERDICT_ERROR,            /* could not measure: the run exits non-zero */
};

struct bench_latency {
	bool valid;
	uint64_t samples;
	double p50_us, p99_us, p999_us;
};

struct bench_row {
	char id[48];              /* stable JSON id, e.g. "memory.write" */
	char label[56];           /* table label */
	const char *section;      /* heading it is printed under */
	unsigned threads;         /* 0 = not a threaded figure */
	uint64_t ops;
	double seconds;
	double value;             /* the figure, in unit */
	const char *unit;         /* "ops/s", "B/record", "x", ... */
	double mb_per_s;          /* payload MB/s (10^6 B); < 0 = n/a */
	struct bench_latency lat;
	const char *target;       /* NULL = no target on this row */
	enum bench_verdict verdict;
	char note[200];
};

struct bench_memory_state;    /* bench_memory.c */
struct bench_mount_state;     /* bench_mount.c */
struct bench_device_state;    /* bench_device.c */
struct bench_cluster_state;   /* bench_cluster.c */
struct bench_migrate_state;   /* bench_migrate.c */
struct bench_large_state;     /* bench_large.c */

struct bench_ctx {
	struct bench_opts opt;
	char tmp[PATH_MAX];       /* private temp dir, removed at exit */
	const char *bench;        /* name of the benchmark now running */
	const char *section;      /* table heading of its rows */
	struct bench_row rows[BENCH_ROWS_MAX];
	size_t n_rows;
	char notes[BENCH_NOTES_MAX][256];  /* how it was measured, under the table */
	size_t n_notes;
	unsigned errors;          /* rows with VERDICT_ERROR */
	unsigned misses;
	/* group state, owned by the group's file */
	struct bench_memory_state *memory;
	struct bench_mount_state *mount;
	struct bench_device_state *device;
	struct bench_cluster_state *cluster;
	struct bench_migrate_state *migrate;
	struct bench_large_state *large;
};

struct bench_def {
	const char *name;         /* --only key, JSON "bench" */
	const char *group;        /* benchmarks sharing state and cleanup */
	const char *title;        /* table section heading */
	const char *target;       /* target (docs/benchmarks.md), NULL = none */
	/* Appends rows; returns 0, or -errno when it could not measure (after
	 * adding an ERROR row saying why). */
	int (*run)(struct bench_ctx *ctx, const struct bench_def *def);
	double target_bound;      /* ratio rows: the bound target states (>=) */
};

/* Set by SIGINT/SIGTERM/SIGHUP: every loop stops, the driver cleans up. */
extern volatile sig_atomic_t bench_interrupted;

/* ---- rows (recfs-bench.c) ------------------------------------------------ */

/* A new zeroed row of the running benchmark (id prefixed with its name);
 * NULL when the table is full. */
struct bench_row *bench_row_add(struct bench_ctx *ctx, const char *id, const char *label);
/* Judge row->value against a target: at_least = value >= bound passes. */
void bench_row_judge(struct bench_ctx *ctx, struct bench_row *row, const char *target,
    double bound, bool at_least);
/* An ERROR row with a note (printf format); NULL when the table is full. */
struct bench_row *bench_row_error(struct bench_ctx *ctx, const char *id, const char *label, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* A line printed under the table and in the JSON "notes" (once per text). */
void bench_note(struct bench_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Progress on stderr ("# ..."), so stdout stays the table and the JSON. */
void bench_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- latency histograms (bench_util.c) ---------------------------------- */

/* Log-linear buckets: 16 per power of two, so a percentile is within ~6%. */
#define BENCH_HIST_SUB_BITS 4
#define BENCH_HIST_BUCKETS ((64 - BENCH_HIST_SUB_BITS + 1) << BENCH_HIST_SUB_BITS)

struct bench_hist {
	uint64_t count;
	uint64_t sum_ns;          /* of every sample: the exact mean */
	uint64_t buckets[BENCH_HIST_BUCKETS];
};

void bench_hist_add(struct bench_hist *h, uint64_t ns);
void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src);
struct bench_latency bench_hist_latency(const struct bench_hist *h);
/* The samples' mean in microseconds (0 without samples). */
double bench_hist_mean_us(const struct bench_hist *h);

uint64_t bench_now_ns(void);

/* The embedded benchmarks' keys: "key" and 13 digits (16 bytes, the key
 * length the index target is stated for), formatted by hand because
 * snprintf costs ~0.2 us on a ~1 us operation. */
#define BENCH_KEY_PREFIX "key"
#define BENCH_KEY_LEN 16

static inline void
bench_key_format(char *buf, uint64_t n)
{
	memcpy(buf, BENCH_KEY_PREFIX, sizeof(BENCH_KEY_PREFIX) - 1);
	for (int i = BENCH_KEY_LEN - 1; i >= (int)sizeof(BENCH_KEY_PREFIX) - 1; i--) {
		buf[i] = (char)('0' + n % 10);
		n /= 10;
	}
}

/* xorshift64*: a few ns, and each thread has its own stream. */
static inline uint64_t
bench_rand_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1Dull;
}

/* ---- phases: n threads, one workload (bench_util.c) --------------------- */

struct bench_phase;

struct bench_worker {
	unsigned id;              /* 0..n_threads-1 */
	struct bench_phase *phase;
	uint64_t ops;
	uint64_t bytes;           /* payload bytes moved */
	uint64_t errors;
	int first_error;          /* -errno of the first failed operation */
	uint64_t start_ns, end_ns;
	struct bench_hist hist;
};

typedef void (*bench_worker_fn)(struct bench_worker *w, void *arg);

struct bench_phase {
	/* in */
	unsigned n_threads;
	double duration_s;        /* > 0: stop flag raised after this long */
	double deadline_s;        /* > 0: call on_stuck once if still running */
	void (*on_stuck)(void *arg);  /* e.g. kill a hung FUSE daemon */
	void *stuck_arg;
	bench_worker_fn fn;
	void *arg;
	/* shared while running */
	int stop;                 /* atomic: workers poll with bench_phase_stopping */
	/* out */
	double seconds;           /* first worker start to last worker end */
	uint64_t ops, bytes, errors;
	int first_error;
	struct bench_hist hist;
};

/* Run the phase; 0 or -errno (thread creation).  Worker errors are in
 * phase->errors / first_error, not in the return value. */
int bench_phase_run(struct bench_phase *p);

static inline bool
bench_phase_stopping(const struct bench_phase *p)
{
	return atomic_load_relaxed(&p->stop) != 0 || bench_interrupted;
}

/* Fill a row's figures from a finished phase (ops/s, MB/s, latency). */
void bench_row_from_phase(struct bench_row *row, const struct bench_phase *p);

/* Phases of one kind summed over the rounds of a benchmark (the mount and
 * cluster groups alternate their sides in rounds): one row's figures.
 * cpu_s is the daemon's CPU, where the caller measures it. */
struct bench_acc {
	uint64_t ops, bytes;
	double seconds, cpu_s;
	struct bench_hist hist;
};
/* Adds a finished phase, or another accumulator's sums. */
void bench_acc_add(struct bench_acc *a, const struct bench_phase *p);
void bench_acc_merge(struct bench_acc *a, const struct bench_acc *b);
/* ops/s over the summed time (0 without time). */
double bench_acc_rate(const struct bench_acc *a);
/* A row with a's figures (ops/s, MB/s, latency) and threads; NULL when
 * no row could be added. */
struct bench_row *bench_acc_row(struct bench_ctx *ctx, const struct bench_acc *a, const char *id,
    const char *label, unsigned threads);

/* ---- processes and files (bench_util.c) --------------------------------- */

/* Start argv[0] (a path) in its own process group (a Ctrl-C reaches only
 * recfs-bench, which then shuts its children down in order), stdout and
 * stderr appended to out_path.  Returns the pid or -errno. */
pid_t bench_spawn(char *const argv[], const char *out_path);
/* Wait up to timeout_s for pid; then SIGTERM, wait 5 s more, then SIGKILL.
 * Returns the exit status (waitpid format) or -errno. */
int bench_reap(pid_t pid, double timeout_s);
/* Run /bin/sh -c cmd to completion (output to out_path); status or -errno. */
int bench_system(const char *cmd, const char *out_path);
/* Is path a mount point of fstype prefix ("fuse", "tmpfs")? */
bool bench_is_mounted(const char *path, const char *fstype_prefix);
/* Unmount path (umount2; fusermount3 -u when not root; lazy on EBUSY). */
int bench_unmount(const char *path);
/* rm -rf that never crosses into a mount; -EBUSY if a mount is still below. */
int bench_remove_tree(const char *path);
/* Last lines of a file into buf (for error notes); "" if unreadable. */
void bench_file_tail(const char *path, char *buf, size_t size, unsigned lines);
/* User+system CPU time of a process in seconds (from /proc), < 0 if gone. */
double bench_process_cpu_s(pid_t pid);

/* ---- recfsd nodes started by a benchmark (bench_util.c) ------------------ */

#define BENCH_ERR_MAX 200          /* size of the err buffers below */
#define BENCH_MOUNT_WAIT_S 30      /* a daemon mounting, bounded */
#define BENCH_CLUSTER_WAIT_S 30    /* a cluster forming, bounded */
#define BENCH_CLUSTER_NODES_MAX 8

/* One recfsd the bench runs: its files under dir, its mount, its pid. */
struct bench_daemon {
	char name[8];             /* "single", "A", "B", ... */
	char dir[PATH_MAX];
	char conf[PATH_MAX];      /* dir/recfs.yaml, written by the caller */
	char mnt[PATH_MAX];
	char out[PATH_MAX];       /* stdout and stderr */
	char log[PATH_MAX];
	char files[PATH_MAX];     /* the directory the workload uses, under mnt */
	uint64_t id;              /* node id (0: auto) */
	int port;                 /* fabric port, 0 = none */
	pid_t pid;                /* 0 = not running */
	int dirfd;                /* files, open; -1 = not */
};

/* Writes err (BENCH_ERR_MAX bytes) and returns rc. */
int bench_fail(char *err, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Writes text into path (created with mode, truncated); 0 or -errno. */
int bench_write_file(const char *path, const char *text, mode_t mode);
/* A TCP port on 127.0.0.1 nothing listens on now, below the kernel's
 * ephemeral range; or -errno. */
int bench_free_port(void);
/* The value of name in the "name=value" file mnt/.info/file; 0 or -errno
 * (-ENOENT: no such line). */
int bench_info_value(const char *mnt, const char *file, const char *name, char *out, size_t size);
int bench_info_u64(const char *mnt, const char *file, const char *name, uint64_t *v);
/* Fills d's paths under base (dir is the workload's directory relative to
 * the mount, "ns/set"); 0 or -ENAMETOOLONG. */
int bench_daemon_paths(struct bench_daemon *d, const char *base, const char *name, const char *dir);
/* Starts recfsd -f -c d->conf d->mnt and waits (bounded) until it mounted;
 * 0 or -errno with err saying why (also when it exited first). */
int bench_daemon_start(const char *recfsd, struct bench_daemon *d, char *err);
/* mkdir d->files (a set) and open it into d->dirfd; 0 or -errno with err. */
int bench_daemon_open_dir(struct bench_daemon *d, char *err);
/* Unmount (the clean shutdown a user gets), then reap by pid (bounded);
 * safe on a daemon not running. */
void bench_daemon_stop(struct bench_daemon *d);
/* Waits (bounded) until every node's .info/cluster shows cluster_size n
 * and one cluster_key (into key_out, 32 bytes, if not NULL); 0 or -errno
 * with err (timeout, a node exited, interrupted). */
int bench_daemons_wait_cluster(struct bench_daemon *const *nodes, unsigned n, char *key_out, char *err);

/* ---- fio, the storage peer (bench_util.c) -------------------------------- */

struct bench_fio_out {
	double bw_bytes;          /* bytes/s */
	double iops;
	double runtime_s;
	double io_bytes;
};

/* The path of program name in PATH into out ("" when not found). */
void bench_find_in_path(const char *name, char *out, size_t size);
/* fio (the path bench_find_in_path found) with the given job options
 * (NULL-terminated), JSON into the temp dir (fio-<tag>.json), its "read" or
 * "write" (dir) figures into out.  Stopped on an interrupt or after
 * timeout_s.  0 or -errno with why saying what happened. */
int bench_fio_run(struct bench_ctx *ctx, const char *fio, const char *tag, const char *dir,
    const char *const *opts, double timeout_s, struct bench_fio_out *out, char *why, size_t why_size);
/* The "read" or "write" figures of the first job of fio's JSON output. */
int bench_fio_parse(const char *json_path, const char *dir, struct bench_fio_out *out, char *why,
    size_t why_size);

/* snprintf for paths: 0, or -ENAMETOOLONG when it would not fit. */
int bench_path(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* "1,234,567" */
const char *bench_fmt_count(char *buf, size_t size, double v);

/* ---- benchmark groups --------------------------------------------------- */

/* bench_memory.c: the embedded memory engine and index memory. */
int bench_memory_write(struct bench_ctx *ctx, const struct bench_def *def);
int bench_memory_read(struct bench_ctx *ctx, const struct bench_def *def);
int bench_memory_mixed(struct bench_ctx *ctx, const struct bench_def *def);
int bench_index_memory(struct bench_ctx *ctx, const struct bench_def *def);
void bench_memory_cleanup(struct bench_ctx *ctx);

/* bench_mount.c: recfsd vs libfuse's passthrough_ll over tmpfs. */
int bench_mount_create(struct bench_ctx *ctx, const struct bench_def *def);
int bench_mount_read(struct bench_ctx *ctx, const struct bench_def *def);
void bench_mount_cleanup(struct bench_ctx *ctx);

/* bench_fabric.c: two in-process fabrics vs plain loopback TCP (no group
 * state: each run builds and frees its own). */
int bench_fabric(struct bench_ctx *ctx, const struct bench_def *def);
/* Plain loopback TCP round trips (64 B, TCP_NODELAY, one in flight) for
 * duration_s; latencies into out->hist, count into out->ops.  0 or -errno. */
int bench_tcp_rtt(double duration_s, struct bench_worker *out);
/* One plain loopback TCP stream of 64 KiB writes for duration_s, drained:
 * bytes into out->bytes, the time into out->end_ns (ns).  0 or -errno. */
int bench_tcp_stream(double duration_s, struct bench_worker *out);

/* bench_device.c: the device engine against fio and the memory engine. */
int bench_device_write(struct bench_ctx *ctx, const struct bench_def *def);
int bench_device_write_large(struct bench_ctx *ctx, const struct bench_def *def);
int bench_device_cold_start(struct bench_ctx *ctx, const struct bench_def *def);
int bench_device_read(struct bench_ctx *ctx, const struct bench_def *def);
int bench_device_defrag(struct bench_ctx *ctx, const struct bench_def *def);
int bench_shadow(struct bench_ctx *ctx, const struct bench_def *def);
void bench_device_cleanup(struct bench_ctx *ctx);

/* bench_cluster.c: three recfsd nodes on 127.0.0.1 against a plain
 * one-node recfsd, through the mounts; librecfs in this process as a
 * cluster member against an in-process single node. */
int bench_cluster_mount(struct bench_ctx *ctx, const struct bench_def *def);
int bench_cluster_proxy(struct bench_ctx *ctx, const struct bench_def *def);
int bench_cluster_embedded(struct bench_ctx *ctx, const struct bench_def *def);
void bench_cluster_cleanup(struct bench_ctx *ctx);

/* bench_migrate.c: a fourth recfsd joins three holding a data set at RF 2;
 * the rate of the move against fio and loopback TCP, and the writes of
 * clients meanwhile against before. */
int bench_cluster_migrate(struct bench_ctx *ctx, const struct bench_def *def);
void bench_migrate_cleanup(struct bench_ctx *ctx);

/* bench_large.c: one large file written and read sequentially through a
 * recfsd mount (device engine) against fio on the same file system, and
 * the daemon's peak RSS meanwhile. */
int bench_large(struct bench_ctx *ctx, const struct bench_def *def);
void bench_large_cleanup(struct bench_ctx *ctx);

#endif
