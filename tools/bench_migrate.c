/*
 * bench_migrate.c - the migration rate of recfs-bench (docs/benchmarks.md):
 * a fourth recfsd node joins three that hold a data set at RF 2, and the
 * bench measures how fast the cluster moves the data to it, against the
 * two limits of that move measured in the same run (the source's storage
 * read rate by fio, a plain loopback TCP stream), and what the migration
 * costs the clients writing meanwhile.
 *
 *   1. Nodes A, B, C (node ids 1-3) on 127.0.0.1, device engine on one file
 *      each in the storage dir (--device-dir, else the temp dir: it must be
 *      on a disk, tmpfs has no O_DIRECT), post-write-cache 0 so a record a
 *      migration sends is read from storage; node D (id 4, seeding A) is
 *      configured but not started.  Without migrate_partitions_remaining
 *      in A's .info/cluster the build has no migration: SKIP rows.
 *   2. The data set: 1 GiB (256 MiB with --quick) of 128 KiB files written
 *      through the three mounts, one writer per node.
 *   3. The peers, before: fio random 128 KiB reads of node A's storage file
 *      (psync, O_DIRECT, one job per source node) and one loopback TCP
 *      stream (the `fabric` rows' baseline).
 *   4. The move alone: D starts with no client running; the migration
 *      starts when A, B or C first shows cluster_size 4 (polled every
 *      10 ms) and ends when all four show one cluster_key, cluster_size 4
 *      and migrate_partitions_remaining 0 (polled every 50 ms, bounded).
 *      This join's rate is the one judged: with clients the move pauses
 *      for them by design (network.migrate-yield-pct).
 *   5. D leaves for good: stopped cleanly, its storage file deleted, and
 *      A, B, C re-replicate its copies until they are a cluster of 3 with
 *      no migration left (bounded).
 *   6. --threads client writers create 1 KiB files through A's mount; their
 *      rate over --duration seconds is the "before" figure.  Then D joins
 *      again, empty, the same way; the writers' operations completed during
 *      that move are the "during" figure, and its rate is shown, not judged.
 *   7. The peers again, after; each peer's figure is the mean of the two.
 * Moved (each join): the sum over the four nodes of migrate_records_received
 * (.info/namespace/bench) and of fabric_received_bytes (.info/statistics)
 * from just before D started to the end.  The fabric bytes also carry the
 * writers' replica writes and the heartbeats (a few MB/s against the
 * migration's hundreds; the note gives both).  The work per MB: the four
 * daemons' CPU time and context switches over the move, also by thread
 * name (row threads), and the CPU time per MB of the plain TCP stream
 * (this process's, while nothing else of it runs: row tcp_cpu_per_mb),
 * with the cores 0.5x of the limit costs at either price.
 *
 * A migration that never moves a record within MG_IDLE_S of the join is
 * a SKIP (no migration in this build); one that moves but does not finish
 * within the bound is an ERROR.  Teardown, also on errors and SIGINT: the
 * writers stop, each mount is unmounted and each daemon reaped by pid, the
 * storage files are removed.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <dirent.h>
#include <linux/magic.h>
#include <time.h>
#include <unistd.h>

#include "base/atomic.h"
#include "bench.h"

#define MG_NODES 4                 /* A, B, C hold the data; D joins */
#define MG_SOURCES 3
#define MG_NS "bench"
#define MG_SET "files"
#define MG_RECORD (128u * 1024)    /* the data set's files */
#define MG_CLIENT_RECORD 1024      /* the client writers' files */
#define MG_HEADER_BYTES (8ull << 20)  /* the device's header area: data after it */
#define MG_SETTLE_S 30             /* the 3-node cluster settling, bounded */
#define MG_IDLE_S 30               /* no record moved by then: no migration here */
#define MG_WAIT_S 600              /* the whole migration, bounded (quick: 180) */
#define MG_WAIT_S_QUICK 180

#define TARGET_MIGRATE_RATE "target moved / min(fio, TCP) >= 0.5"
#define TARGET_MIGRATE_WRITES "target writes during / before >= 0.7"

enum mg_window { MG_W_WARM, MG_W_BEFORE, MG_W_GAP, MG_W_DURING, MG_W_AFTER, MG_WINDOWS };

struct bench_migrate_state {
	char recfsd[PATH_MAX];
	char secret[PATH_MAX];
	char dir[PATH_MAX];            /* storage files */
	bool dir_made;
	char fio[PATH_MAX];            /* "" = not found */
	char file[MG_NODES][PATH_MAX];
	struct bench_daemon node[MG_NODES];
};

struct mg_writer {
	pthread_t th;
	bool started;
	unsigned id;
	int dirfd;
	const int *window;             /* atomic */
	const int *stop;               /* atomic */
	uint64_t ops[MG_WINDOWS];
	uint64_t errors;
	int first_error;
	struct bench_hist hist[MG_WINDOWS];
};

/* ---- helpers ---------------------------------------------------------------- */

static uint64_t
mg_data_bytes(const struct bench_ctx *ctx)
{
	return ctx->opt.quick ? 256ull << 20 : 1ull << 30;
}

/* create + one write + close of a new file; 0 or -errno. */
static int
mg_create(int dirfd, const char *name, char *buf, size_t size)
{
	int fd = openat(dirfd, name, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
	ssize_t n;
	int rc = 0;

	if (fd < 0)
		return -errno;
	memcpy(buf, name, strlen(name) + 1);
	n = write(fd, buf, size);
	if (n != (ssize_t)size)
		rc = n < 0 ? -errno : -EIO;
	if (close(fd) != 0 && rc == 0)
		rc = -errno;
	return rc;
}

static void
mg_sleep(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };

	nanosleep(&ts, NULL);   /* a signal ends it early: callers check bench_interrupted */
}

/* The sum over the nodes of a u64 from .info; -errno when one lacks it. */
static int
mg_sum(struct bench_migrate_state *st, unsigned n, const char *file, const char *name, uint64_t *sum)
{
	*sum = 0;
	for (unsigned i = 0; i < n; i++) {
		uint64_t v;
		int rc = bench_info_u64(st->node[i].mnt, file, name, &v);

		if (rc != 0)
			return rc;
		*sum += v;
	}
	return 0;
}

/* ---- nodes ------------------------------------------------------------------ */

static int
mg_config(struct bench_ctx *ctx, struct bench_migrate_state *st, unsigned i, int seed_port, char *err)
{
	struct bench_daemon *d = &st->node[i];
	char yaml[6 * PATH_MAX], work[PATH_MAX];
	int rc;

	if (bench_path(work, sizeof(work), "%s/work", d->dir) != 0)
		return bench_fail(err, -ENAMETOOLONG, "temp dir path too long");
	if ((mkdir(d->dir, 0700) != 0 && errno != EEXIST) || (mkdir(work, 0700) != 0 && errno != EEXIST) ||
	    (mkdir(d->mnt, 0755) != 0 && errno != EEXIST))
		return bench_fail(err, -errno, "mkdir %s: %s", d->dir, strerror(errno));
	/* Room for the node's share, the writers and the join's copies. */
	rc = bench_path(yaml, sizeof(yaml),
	    "# generated by recfs-bench (cluster.migrate)\n"
	    "service:\n"
	    "  cluster-name: bench-migrate\n"
	    "  node-id: %016llx\n"
	    "  work-directory: %s\n"
	    "  ticker-interval: 0\n"
	    "logging:\n"
	    "  file: %s\n"
	    "  level: info\n"
	    "namespaces:\n"
	    "  - name: " MG_NS "\n"
	    "    replication-factor: 2\n"
	    "    storage-engine:\n"
	    "      type: device\n"
	    "      files: [ %s ]\n"
	    "      filesize: %lluM\n"
	    "      write-block-size: 1M\n"
	    "      post-write-cache: 0\n"
	    "network:\n"
	    "  fabric: { address: 127.0.0.1, port: %d }\n"
	    "  seeds: [ \"127.0.0.1:%d\" ]\n"
	    "  heartbeat: { interval-ms: 100, timeout-count: 5 }\n"
	    "  cluster-secret-file: %s\n",
	    (unsigned long long)d->id, work, d->log, st->file[i],
	    (unsigned long long)(mg_data_bytes(ctx) * 2 >> 20), d->port, seed_port, st->secret);
	if (rc != 0)
		return bench_fail(err, rc, "temp dir path too long");
	rc = bench_write_file(d->conf, yaml, 0644);
	return rc == 0 ? 0 : bench_fail(err, rc, "%s: %s", d->conf, strerror(-rc));
}

/* Paths, ports and configs of A-D; storage dir; secret.  1 = SKIP (why
 * in err), 0 = go, < 0 = error. */
static int
mg_prepare(struct bench_ctx *ctx, struct bench_migrate_state *st, char *err)
{
	char secret[96], base[PATH_MAX], name[2] = "A";
	struct statfs sfs;
	int rc;

	if (ctx->opt.recfsd_path != NULL)
		rc = bench_path(st->recfsd, sizeof(st->recfsd), "%s", ctx->opt.recfsd_path);
	else
		rc = bench_path(st->recfsd, sizeof(st->recfsd), "%s/recfsd", ctx->opt.self_dir);
	if (rc != 0 || access(st->recfsd, X_OK) != 0)
		return bench_fail(err, -ENOENT, "%s: %s (see --recfsd)", st->recfsd,
		    rc != 0 ? "path too long" : strerror(errno));
	if (ctx->opt.device_dir != NULL) {
		rc = bench_path(st->dir, sizeof(st->dir), "%s/recfs-bench-migrate.XXXXXX", ctx->opt.device_dir);
		if (rc == 0 && mkdtemp(st->dir) == NULL)
			rc = -errno;
	} else {
		rc = bench_path(st->dir, sizeof(st->dir), "%s/migrate-storage", ctx->tmp);
		if (rc == 0 && mkdir(st->dir, 0700) != 0)
			rc = -errno;
	}
	if (rc != 0)
		return bench_fail(err, rc, "storage dir %s: %s", st->dir, strerror(-rc));
	st->dir_made = true;
	if (statfs(st->dir, &sfs) != 0)
		return bench_fail(err, -errno, "statfs %s: %s", st->dir, strerror(errno));
	if (sfs.f_type == TMPFS_MAGIC || sfs.f_type == RAMFS_MAGIC) {
		bench_fail(err, 1, "storage dir %s is on tmpfs: no O_DIRECT, no storage read rate "
		    "(use --device-dir)", st->dir);
		return 1;
	}
	bench_find_in_path("fio", st->fio, sizeof(st->fio));
	snprintf(secret, sizeof(secret), "recfs-bench migrate secret %016llx\n",
	    (unsigned long long)(bench_now_ns() ^ ((uint64_t)getpid() << 32)));
	if (bench_path(st->secret, sizeof(st->secret), "%s/migrate.secret", ctx->tmp) != 0)
		return bench_fail(err, -ENAMETOOLONG, "temp dir path too long");
	rc = bench_write_file(st->secret, secret, 0600);
	if (rc != 0)
		return bench_fail(err, rc, "%s: %s", st->secret, strerror(-rc));
	for (unsigned i = 0; i < MG_NODES; i++) {
		struct bench_daemon *d = &st->node[i];
		int port = bench_free_port();

		name[0] = (char)('A' + i);
		if (port < 0)
			return bench_fail(err, port, "no free port on 127.0.0.1: %s", strerror(-port));
		for (unsigned j = 0; j < i; j++)
			if (st->node[j].port == port)
				port = 0;
		if (port == 0) {
			i--;
			continue;
		}
		if (bench_path(base, sizeof(base), "%s/migrate-%c", ctx->tmp, name[0]) != 0 ||
		    bench_daemon_paths(d, base, name, MG_NS "/" MG_SET) != 0 ||
		    bench_path(st->file[i], sizeof(st->file[i]), "%s/node-%c.dat", st->dir, name[0]) != 0)
			return bench_fail(err, -ENAMETOOLONG, "temp dir path too long");
		d->port = port;
		d->id = i + 1;
	}
	/* Each of A, B, C seeds the one before it (A seeds C); D seeds A. */
	for (unsigned i = 0; i < MG_NODES; i++) {
		unsigned seed = i == MG_NODES - 1 ? 0 : (i + MG_SOURCES - 1) % MG_SOURCES;

		rc = mg_config(ctx, st, i, st->node[seed].port, err);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static struct bench_migrate_state *
mg_state(struct bench_ctx *ctx)
{
	struct bench_migrate_state *st = ctx->migrate;

	if (st != NULL)
		return st;
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return NULL;
	for (unsigned i = 0; i < MG_NODES; i++)
		st->node[i].dirfd = -1;
	ctx->migrate = st;
	return st;
}

/* Until migrate_partitions_remaining is 0 on A, B and C (bounded). */
static int
mg_settle(struct bench_migrate_state *st, char *err)
{
	uint64_t end = bench_now_ns() + (uint64_t)(MG_SETTLE_S * 1e9), left = 0;

	while (!bench_interrupted) {
		int rc = mg_sum(st, MG_SOURCES, "cluster", "migrate_partitions_remaining", &left);

		if (rc != 0)
			return bench_fail(err, rc, "migrate_partitions_remaining: %s", strerror(-rc));
		if (left == 0)
			return 0;
		if (bench_now_ns() >= end)
			return bench_fail(err, -ETIMEDOUT, "the 3-node cluster still had %llu partition "
			    "migrations after %d s", (unsigned long long)left, MG_SETTLE_S);
		mg_sleep(0.05);
	}
	return bench_fail(err, -EINTR, "interrupted");
}

/* ---- the data set ------------------------------------------------------------ */

struct mg_load {
	struct bench_migrate_state *st;
	unsigned per_thread;
};

/* Worker i writes its files through node i % 3. */
static void
mg_load_worker(struct bench_worker *w, void *arg)
{
	struct mg_load *load = arg;
	int dirfd = load->st->node[w->id % MG_SOURCES].dirfd;
	char name[48], *buf = malloc(MG_RECORD);

	if (buf == NULL) {
		w->errors++;
		w->first_error = -ENOMEM;
		return;
	}
	memset(buf, 'm', MG_RECORD);
	for (unsigned i = 0; i < load->per_thread && !bench_interrupted; i++) {
		uint64_t t0 = bench_now_ns();
		int rc;

		snprintf(name, sizeof(name), "d-t%u-%07u", w->id, i);
		rc = mg_create(dirfd, name, buf, MG_RECORD);
		bench_hist_add(&w->hist, bench_now_ns() - t0);
		if (rc != 0) {
			w->errors++;
			w->first_error = rc;
			break;
		}
		w->ops++;
		w->bytes += MG_RECORD;
	}
	free(buf);
}

/* ---- the client writers --------------------------------------------------------- */

static void *
mg_writer_main(void *arg)
{
	struct mg_writer *w = arg;
	char name[48], buf[MG_CLIENT_RECORD];

	memset(buf, 'w', sizeof(buf));
	for (unsigned i = 0; !atomic_load_relaxed(w->stop) && !bench_interrupted; i++) {
		uint64_t t0 = bench_now_ns();
		int rc, win;

		snprintf(name, sizeof(name), "w-t%u-%07u", w->id, i);
		rc = mg_create(w->dirfd, name, buf, sizeof(buf));
		win = atomic_load_relaxed(w->window);
		if (rc != 0) {
			w->errors++;
			w->first_error = rc;
			break;
		}
		bench_hist_add(&w->hist[win], bench_now_ns() - t0);
		w->ops[win]++;
	}
	return NULL;
}

/* ---- the peers ---------------------------------------------------------------- */

struct mg_peers {
	double fio_bps[2], tcp_bps[2];
	double tcp_cpu_s[2];           /* CPU time of the stream's two ends (this process) */
	double tcp_mb[2];              /* MB the stream moved */
	unsigned n;
};

/* CPU time (user + system) of this process so far, in s. */
static double
mg_self_cpu_s(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	    (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static int
mg_measure_peers(struct bench_ctx *ctx, struct bench_migrate_state *st, struct mg_peers *p, char *err)
{
	double secs = ctx->opt.quick ? 1 : ctx->opt.duration_s / 2 < 1 ? 1 : ctx->opt.duration_s / 2;
	struct bench_worker tcp = { 0 };
	int rc;

	if (st->fio[0]) {
		char file[PATH_MAX + 16], off[48], size[48], rt[48], why[200], tag[32];
		const char *const opts[] = { file, "--rw=randread", "--bs=128k", "--ioengine=psync",
		    "--direct=1", "--readonly", "--numjobs=3", "--group_reporting", "--time_based",
		    rt, off, size, NULL };
		struct bench_fio_out fo;
		uint64_t used = 0;

		if (bench_path(file, sizeof(file), "--filename=%s", st->file[0]) != 0)
			return bench_fail(err, -ENAMETOOLONG, "path too long");
		rc = bench_info_u64(st->node[0].mnt, "namespace/" MG_NS, "data_used_bytes", &used);
		if (rc != 0)
			return bench_fail(err, rc, "A's data_used_bytes: %s", strerror(-rc));
		used &= ~((1ull << 20) - 1);
		snprintf(off, sizeof(off), "--offset=%llu", (unsigned long long)MG_HEADER_BYTES);
		snprintf(size, sizeof(size), "--size=%llu", (unsigned long long)(used < (16ull << 20) ?
		    16ull << 20 : used));
		snprintf(rt, sizeof(rt), "--runtime=%ums", (unsigned)(secs * 1000));
		snprintf(tag, sizeof(tag), "migrate-randread%u", p->n);
		rc = bench_fio_run(ctx, st->fio, tag, "read", opts, secs + 120, &fo, why, sizeof(why));
		if (rc != 0)
			return bench_fail(err, rc, "fio: %s", why);
		p->fio_bps[p->n] = fo.bw_bytes;
	}
	/* the writers are not running: this process's CPU time meanwhile is
	 * the stream's writer and reader (loopback: both ends' kernel work) */
	p->tcp_cpu_s[p->n] = -mg_self_cpu_s();
	rc = bench_tcp_stream(secs, &tcp);
	p->tcp_cpu_s[p->n] += mg_self_cpu_s();
	if (rc != 0)
		return bench_fail(err, rc, "loopback TCP stream: %s", strerror(-rc));
	p->tcp_mb[p->n] = (double)tcp.bytes / 1e6;
	p->tcp_bps[p->n] = tcp.end_ns > 0 ? (double)tcp.bytes / ((double)tcp.end_ns / 1e9) : 0;
	p->n++;
	return 0;
}

/* ---- the join ----------------------------------------------------------------- */

#define MG_THREAD_NAME 16          /* a thread's name, as /proc shows it (15 + NUL) */
#define MG_THREAD_KINDS 32

/* CPU time and context switches summed by thread name. */
struct mg_threads {
	struct {
		char name[MG_THREAD_NAME];
		uint64_t cpu_ns, csw;
	} k[MG_THREAD_KINDS];
	unsigned n;
};

struct mg_join {
	uint64_t t_spawn, t0, t_end;       /* ns; t0 = first cluster_size 4 seen */
	uint64_t rec0, bytes0, rec1, bytes1;
	/* each node's CPU time (ns, user + system, all threads) and context
	 * switches (voluntary + not, summed over its threads) when D starts
	 * (D: 0) and at the end */
	uint64_t cpu0[MG_NODES], cpu1[MG_NODES], csw0[MG_NODES], csw1[MG_NODES];
	/* the same by thread name, summed over the four nodes' threads of
	 * that name (the daemons name theirs: fabric, migrate-tx, rpc-bulk,
	 * ...; the FUSE threads keep the process's name) */
	struct mg_threads th0, th1;
	uint64_t d_rx_initial;
	uint64_t d_rx_last, t_rx_last;     /* D's migrate_records_received last seen to grow, and when */
	/* migrate_tx_yields, migrate_tx_yield_time summed (A-C when D starts,
	 * all four at the end); have_yield: the build counts them */
	uint64_t yields0, yield_us0, yields1, yield_us1;
	bool have_yield;
	bool skipped;                      /* no migration moved anything */
};

/* utime + stime (ns) and the name of the /proc stat line in buf (name:
 * 16 bytes); 0 or -EPROTO. */
static int
mg_stat_parse(char *buf, char *name, uint64_t *cpu_ns)
{
	unsigned long long ut = 0, st = 0;
	long hz = sysconf(_SC_CLK_TCK);
	char *open = strchr(buf, '('), *p = strrchr(buf, ')');

	/* after the ")" closing the name: state, then fields 4.. ; utime is 14, stime 15 */
	if (open == NULL || p == NULL || p < open ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2 ||
	    hz <= 0)
		return -EPROTO;
	if (name != NULL)
		snprintf(name, MG_THREAD_NAME, "%.*s", (int)(p - open - 1), open + 1);
	*cpu_ns = (uint64_t)(ut + st) * (1000000000ull / (uint64_t)hz);
	return 0;
}

/* Adds (name, cpu, csw) to t (a full table drops new names). */
static void
mg_threads_add(struct mg_threads *t, const char *name, uint64_t cpu_ns, uint64_t csw)
{
	unsigned i;

	for (i = 0; i < t->n && strcmp(t->k[i].name, name) != 0; i++)
		;
	if (i == t->n) {
		if (t->n == MG_THREAD_KINDS)
			return;
		snprintf(t->k[t->n++].name, MG_THREAD_NAME, "%s", name);
	}
	t->k[i].cpu_ns += cpu_ns;
	t->k[i].csw += csw;
}

/* The threads that move a migration's data (the row "threads"). */
static bool
mg_thread_moves(const char *name)
{
	return strcmp(name, "fabric") == 0 || strcmp(name, "migrate-tx") == 0 ||
	    strcmp(name, "rpc-bulk") == 0;
}

/* Kind a goes before kind b in the row's note. */
static bool
mg_thread_before(const struct mg_threads *t, unsigned a, unsigned b)
{
	bool ma = mg_thread_moves(t->k[a].name), mb = mg_thread_moves(t->k[b].name);

	return ma != mb ? ma : t->k[a].cpu_ns > t->k[b].cpu_ns;
}

/* Process pid's CPU time in ns (utime + stime of /proc/PID/stat: every
 * thread, live or ended) and its threads' context switches (the
 * *_ctxt_switches of each /proc/PID/task/TID/status: threads alive now; the
 * daemon's threads live as long as it), each thread's also added to th
 * by name.  0 or -errno. */
static int
mg_proc_usage(pid_t pid, uint64_t *cpu_ns, uint64_t *csw, struct mg_threads *th)
{
	char path[64], buf[1024];
	DIR *dir;
	struct dirent *de;
	FILE *f;
	char *p;

	*cpu_ns = *csw = 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -errno;
	p = fgets(buf, sizeof(buf), f);
	fclose(f);
	if (p == NULL || mg_stat_parse(buf, NULL, cpu_ns) != 0)
		return -EPROTO;
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = opendir(path);
	if (dir == NULL)
		return -errno;
	while ((de = readdir(dir)) != NULL) {
		char tp[96], name[MG_THREAD_NAME] = "";
		uint64_t t_cpu = 0, t_csw = 0;

		if (de->d_name[0] == '.')
			continue;
		snprintf(tp, sizeof(tp), "/proc/%d/task/%.16s/stat", (int)pid, de->d_name);
		f = fopen(tp, "r");
		if (f == NULL)
			continue;
		if (fgets(buf, sizeof(buf), f) == NULL || mg_stat_parse(buf, name, &t_cpu) != 0)
			t_cpu = 0;
		fclose(f);
		snprintf(tp, sizeof(tp), "/proc/%d/task/%.16s/status", (int)pid, de->d_name);
		f = fopen(tp, "r");
		if (f == NULL)
			continue;
		while (fgets(buf, sizeof(buf), f) != NULL) {
			unsigned long long v;

			if (sscanf(buf, "voluntary_ctxt_switches: %llu", &v) == 1 ||
			    sscanf(buf, "nonvoluntary_ctxt_switches: %llu", &v) == 1)
				t_csw += v;
		}
		fclose(f);
		*csw += t_csw;
		if (th != NULL && name[0] != '\0')
			mg_threads_add(th, name, t_cpu, t_csw);
	}
	closedir(dir);
	return 0;
}

/* D starts; the move from cluster_size 4 until all four agree and have no
 * partition left.  window is switched for the writers. */
static int
mg_join(struct bench_ctx *ctx, struct bench_migrate_state *st, struct mg_join *j, int *window,
    char *err)
{
	struct bench_daemon *d = &st->node[MG_NODES - 1];
	char *argv[] = { st->recfsd, "-f", "-c", d->conf, d->mnt, NULL };
	uint64_t wait_ns = (uint64_t)((ctx->opt.quick ? MG_WAIT_S_QUICK : MG_WAIT_S) * 1e9), next = 0;
	int rc, status;

	rc = mg_sum(st, MG_SOURCES, "namespace/" MG_NS, "migrate_records_received", &j->rec0);
	if (rc == 0)
		rc = mg_sum(st, MG_SOURCES, "statistics", "fabric_received_bytes", &j->bytes0);
	if (rc != 0)
		return bench_fail(err, rc, "migrate_records_received / fabric_received_bytes: %s",
		    strerror(-rc));
	j->have_yield = mg_sum(st, MG_SOURCES, "namespace/" MG_NS, "migrate_tx_yields", &j->yields0) == 0 &&
	    mg_sum(st, MG_SOURCES, "namespace/" MG_NS, "migrate_tx_yield_time", &j->yield_us0) == 0;
	for (unsigned i = 0; i < MG_SOURCES; i++)
		(void)mg_proc_usage(st->node[i].pid, &j->cpu0[i], &j->csw0[i], &j->th0);
	j->t_spawn = bench_now_ns();
	d->pid = bench_spawn(argv, d->out);
	if (d->pid < 0) {
		rc = d->pid;
		d->pid = 0;
		return bench_fail(err, rc, "start %s: %s", st->recfsd, strerror(-rc));
	}
	bench_progress("node D: recfsd pid %d, fabric 127.0.0.1:%d, joins A, B, C", (int)d->pid, d->port);
	while (!bench_interrupted) {
		uint64_t now = bench_now_ns();

		if (waitpid(d->pid, &status, WNOHANG) == d->pid) {
			char tail[160];

			d->pid = 0;
			bench_file_tail(d->out, tail, sizeof(tail), 2);
			return bench_fail(err, -ECHILD, "recfsd D exited (%s %d): %s",
			    WIFEXITED(status) ? "status" : "signal",
			    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), tail);
		}
		if (j->t0 == 0) {
			for (unsigned i = 0; i < MG_SOURCES && j->t0 == 0; i++) {
				uint64_t size = 0;

				if (bench_info_u64(st->node[i].mnt, "cluster", "cluster_size", &size) == 0 &&
				    size == MG_NODES) {
					j->t0 = now;
					atomic_store_relaxed(window, MG_W_DURING);
					bench_progress("cluster of 4 seen %.2f s after D started",
					    (double)(now - j->t_spawn) / 1e9);
				}
			}
		} else if (now >= next && bench_is_mounted(d->mnt, "fuse")) {
			char key[MG_NODES][32];
			uint64_t left = 0, rx = 0, size;
			bool done = true;

			next = now + 50 * 1000 * 1000;
			for (unsigned i = 0; i < MG_NODES && done; i++) {
				uint64_t v;

				if (bench_info_u64(st->node[i].mnt, "cluster", "cluster_size", &size) != 0 ||
				    size != MG_NODES ||
				    bench_info_value(st->node[i].mnt, "cluster", "cluster_key", key[i],
				    sizeof(key[i])) != 0 || (i > 0 && strcmp(key[i], key[0]) != 0) ||
				    bench_info_u64(st->node[i].mnt, "cluster", "migrate_partitions_remaining",
				    &v) != 0)
					done = false;
				else
					left += v;
			}
			if (bench_info_u64(d->mnt, "namespace/" MG_NS, "migrate_records_received", &rx) != 0)
				done = false;
			else if (rx != j->d_rx_last) {
				j->d_rx_last = rx;
				j->t_rx_last = now;
			}
			bench_info_u64(d->mnt, "namespace/" MG_NS, "migrate_rx_partitions_initial",
			    &j->d_rx_initial);
			if (done && left == 0 && (rx > 0 || j->d_rx_initial > 0)) {
				j->t_end = now;
				for (unsigned i = 0; i < MG_NODES; i++)
					(void)mg_proc_usage(st->node[i].pid, &j->cpu1[i], &j->csw1[i], &j->th1);
				atomic_store_relaxed(window, MG_W_AFTER);
				break;
			}
			if (rx == 0 && j->d_rx_initial == 0 && now - j->t0 > (uint64_t)(MG_IDLE_S * 1e9)) {
				j->skipped = true;
				atomic_store_relaxed(window, MG_W_AFTER);
				return bench_fail(err, 0, "migration never moved: D received no record and "
				    "no partition within %d s of the join (migration not in this build?)",
				    MG_IDLE_S);
			}
		}
		if (now - j->t_spawn > wait_ns)
			return bench_fail(err, -ETIMEDOUT, "migrations not done %.0f s after D started "
			    "(migrate_partitions_remaining in .info/cluster)", (double)wait_ns / 1e9);
		mg_sleep(0.01);
	}
	if (bench_interrupted)
		return bench_fail(err, -EINTR, "interrupted");
	{
		/* How many partitions a store of D's version table covered
		 * (docs/benchmarks.md, "Migration"): its syncs of the table
		 * (one per store, one file) against the partitions it received. */
		uint64_t syncs = 0, pages = 0;
		char pg[32] = "n/a";

		if (bench_info_u64(d->mnt, "namespace/" MG_NS, "partition_version_syncs", &syncs) == 0) {
			if (bench_info_u64(d->mnt, "namespace/" MG_NS, "partition_version_pages", &pages) == 0)
				snprintf(pg, sizeof(pg), "%llu", (unsigned long long)pages);
			bench_progress("node D: %llu partitions to receive, %llu syncs of its version table, "
			    "%s pages of it written", (unsigned long long)j->d_rx_initial,
			    (unsigned long long)syncs, pg);
		}
	}
	rc = mg_sum(st, MG_NODES, "namespace/" MG_NS, "migrate_records_received", &j->rec1);
	if (rc == 0)
		rc = mg_sum(st, MG_NODES, "statistics", "fabric_received_bytes", &j->bytes1);
	if (rc != 0)
		return bench_fail(err, rc, "migrate_records_received / fabric_received_bytes: %s",
		    strerror(-rc));
	if (j->have_yield)
		j->have_yield = mg_sum(st, MG_NODES, "namespace/" MG_NS, "migrate_tx_yields", &j->yields1) == 0 &&
		    mg_sum(st, MG_NODES, "namespace/" MG_NS, "migrate_tx_yield_time", &j->yield_us1) == 0;
	bench_progress("migrations done %.2f s after the cluster of 4 was seen",
	    (double)(j->t_end - j->t0) / 1e9);
	return 0;
}

/* D leaves for good: it stops cleanly (unmounted, reaped), its storage
 * file is deleted, and A, B and C re-replicate what it held until all
 * three show one cluster_key, cluster_size 3 and
 * migrate_partitions_remaining 0 (polled every 50 ms, bounded).  The
 * seconds it took in *secs. */
static int
mg_leave(struct bench_ctx *ctx, struct bench_migrate_state *st, double *secs, char *err)
{
	struct bench_daemon *d = &st->node[MG_NODES - 1];
	uint64_t t0 = bench_now_ns(), wait_ns = (uint64_t)((ctx->opt.quick ? MG_WAIT_S_QUICK : MG_WAIT_S) * 1e9);

	bench_daemon_stop(d);
	if (unlink(st->file[MG_NODES - 1]) != 0 && errno != ENOENT)
		return bench_fail(err, -errno, "unlink %s: %s", st->file[MG_NODES - 1], strerror(errno));
	while (!bench_interrupted) {
		char key[MG_SOURCES][32];
		uint64_t size, v, left = 0;
		bool done = true;

		for (unsigned i = 0; i < MG_SOURCES && done; i++) {
			if (bench_info_u64(st->node[i].mnt, "cluster", "cluster_size", &size) != 0 ||
			    size != MG_SOURCES ||
			    bench_info_value(st->node[i].mnt, "cluster", "cluster_key", key[i],
			    sizeof(key[i])) != 0 || (i > 0 && strcmp(key[i], key[0]) != 0) ||
			    bench_info_u64(st->node[i].mnt, "cluster", "migrate_partitions_remaining", &v) != 0)
				done = false;
			else
				left += v;
		}
		if (done && left == 0) {
			*secs = (double)(bench_now_ns() - t0) / 1e9;
			bench_progress("node D left; A, B and C re-replicated its copies in %.2f s", *secs);
			return 0;
		}
		if (bench_now_ns() - t0 > wait_ns)
			return bench_fail(err, -ETIMEDOUT, "A, B and C not back to a cluster of 3 without "
			    "migrations %.0f s after D stopped", (double)wait_ns / 1e9);
		mg_sleep(0.05);
	}
	return bench_fail(err, -EINTR, "interrupted");
}

/* ---- rows ---------------------------------------------------------------------- */

static void
mg_skip_rows(struct bench_ctx *ctx, const char *why)
{
	static const char *const ids[] = { "records", "bytes", "cpu_per_mb", "threads",
	    "tcp_cpu_per_mb", "ratio", "ratio_clients", "write_ratio", "write_p99_ratio", "yield" };
	static const char *const labels[] = { "records moved/s, D joins, no client",
	    "bytes moved/s (fabric, all nodes)", "CPU ms per MB moved, 4 nodes",
	    "CPU ms/MB of fabric, migrate-tx, rpc-bulk", "CPU ms per MB, plain TCP stream",
	    "moved / min(fio, TCP)", "moved / min(fio, TCP), writers on",
	    "writes during / before", "write p99 during / before", "emigration paused for clients" };

	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		struct bench_row *row = bench_row_add(ctx, ids[i], labels[i]);

		if (row == NULL)
			return;
		row->verdict = VERDICT_SKIP;
		snprintf(row->note, sizeof(row->note), "%s", why);
	}
}

static struct bench_row *
mg_rate_row(struct bench_ctx *ctx, const char *id, const char *label, double bps)
{
	struct bench_row *row = bench_row_add(ctx, id, label);

	if (row == NULL)
		return NULL;
	row->unit = "MB/s";
	row->value = row->mb_per_s = bps / 1e6;
	return row;
}

static struct bench_row *
mg_writer_row(struct bench_ctx *ctx, const char *id, const char *label, uint64_t ops,
    const struct bench_hist *h, double seconds, unsigned threads)
{
	struct bench_row *row = bench_row_add(ctx, id, label);

	if (row == NULL)
		return NULL;
	row->threads = threads;
	row->ops = ops;
	row->seconds = seconds;
	row->unit = "ops/s";
	row->value = seconds > 0 ? (double)ops / seconds : 0;
	row->mb_per_s = row->value * MG_CLIENT_RECORD / 1e6;
	row->lat = bench_hist_latency(h);
	return row;
}

static double
mg_mean(const double *v, unsigned n)
{
	double s = 0;

	for (unsigned i = 0; i < n; i++)
		s += v[i];
	return n ? s / n : 0;
}

int
bench_cluster_migrate(struct bench_ctx *ctx, const struct bench_def *def)
{
	struct bench_migrate_state *st = mg_state(ctx);
	struct bench_daemon *nodes[MG_SOURCES];
	struct mg_writer *w = NULL;
	struct mg_peers peers = { 0 };
	struct mg_join join = { 0 }, cjoin = { 0 };  /* alone; with the writers */
	struct bench_hist *hist = NULL;
	uint64_t ops[MG_WINDOWS] = { 0 }, t_before0 = 0, t_before1 = 0;
	unsigned threads = ctx->opt.threads;
	char err[BENCH_ERR_MAX] = "", key[32];
	struct bench_row *row;
	int window = MG_W_WARM, idle = MG_W_WARM, stop = 0, rc;
	double fio_bps, tcp_bps, limit, secs, csecs, leave_s = 0;

	(void)def;
	if (st == NULL) {
		bench_row_error(ctx, "", "cluster of 3 + 1 recfsd", "out of memory");
		return -ENOMEM;
	}
	rc = mg_prepare(ctx, st, err);
	if (rc > 0) {
		mg_skip_rows(ctx, err);
		return 0;
	}
	for (unsigned i = 0; rc == 0 && i < MG_SOURCES; i++) {
		nodes[i] = &st->node[i];
		rc = bench_daemon_start(st->recfsd, &st->node[i], err);
		if (rc == 0)
			bench_progress("migrate node %s: recfsd pid %d, fabric 127.0.0.1:%d", st->node[i].name,
			    (int)st->node[i].pid, st->node[i].port);
	}
	if (rc == 0)
		rc = bench_daemons_wait_cluster(nodes, MG_SOURCES, key, err);
	for (unsigned i = 0; rc == 0 && i < MG_SOURCES; i++)
		rc = bench_daemon_open_dir(&st->node[i], err);
	if (rc != 0)
		goto error;
	/* Without the statistic there is no migration in this build. */
	{
		uint64_t v;

		rc = bench_info_u64(st->node[0].mnt, "cluster", "migrate_partitions_remaining", &v);
		if (rc == -ENOENT) {
			mg_skip_rows(ctx, "migration not in this build (no migrate_partitions_remaining in "
			    ".info/cluster)");
			return 0;
		}
	}
	rc = mg_settle(st, err);
	if (rc != 0)
		goto error;

	/* The data set, one writer per node. */
	{
		struct mg_load load = { .st = st };
		struct bench_phase p = { .n_threads = MG_SOURCES, .fn = mg_load_worker, .arg = &load,
		    .deadline_s = 600 };
		char n[32];

		load.per_thread = (unsigned)(mg_data_bytes(ctx) / MG_RECORD / MG_SOURCES);
		bench_progress("cluster.migrate: writing %u x 128 KiB files through A, B and C",
		    load.per_thread * MG_SOURCES);
		rc = bench_phase_run(&p);
		if (rc == 0 && p.errors != 0)
			rc = bench_fail(err, p.first_error, "writing the data set: %llu errors, first: %s",
			    (unsigned long long)p.errors, strerror(-p.first_error));
		if (bench_interrupted)
			return -EINTR;
		if (rc != 0)
			goto error;
		row = bench_row_add(ctx, "load", "128 KiB files written, RF 2, via A B C");
		if (row != NULL) {
			bench_row_from_phase(row, &p);
			row->threads = MG_SOURCES;
			snprintf(row->note, sizeof(row->note), "%s files, the data set the join moves",
			    bench_fmt_count(n, sizeof(n), (double)p.ops));
		}
	}
	rc = mg_measure_peers(ctx, st, &peers, err);
	if (rc != 0)
		goto error;

	/* The move alone: D joins with no client running (the rate judged:
	 * with clients the move pauses for them by design), then leaves for
	 * good, its storage wiped, so that it joins the same data set again
	 * with the writers. */
	rc = mg_join(ctx, st, &join, &idle, err);
	if (bench_interrupted) {
		rc = -EINTR;
		goto out;
	}
	if (join.skipped) {
		mg_skip_rows(ctx, err);
		rc = 0;
		goto out;
	}
	if (rc == 0)
		rc = mg_leave(ctx, st, &leave_s, err);
	if (rc != 0)
		goto error;

	/* The writers through A: before, then during the second join. */
	w = calloc(threads, sizeof(*w));
	hist = calloc(2, sizeof(*hist));
	if (w == NULL || hist == NULL) {
		rc = bench_fail(err, -ENOMEM, "out of memory");
		goto error;
	}
	for (unsigned i = 0; i < threads; i++) {
		w[i].id = i;
		w[i].dirfd = st->node[0].dirfd;
		w[i].window = &window;
		w[i].stop = &stop;
		rc = -pthread_create(&w[i].th, NULL, mg_writer_main, &w[i]);
		if (rc != 0) {
			bench_fail(err, rc, "pthread_create: %s", strerror(-rc));
			break;
		}
		w[i].started = true;
	}
	if (rc == 0) {
		mg_sleep(0.2);
		t_before0 = bench_now_ns();
		atomic_store_relaxed(&window, MG_W_BEFORE);
		mg_sleep(ctx->opt.duration_s);
		t_before1 = bench_now_ns();
		atomic_store_relaxed(&window, MG_W_GAP);
		rc = bench_interrupted ? -EINTR : mg_join(ctx, st, &cjoin, &window, err);
	}
	atomic_store_relaxed(&stop, 1);
	for (unsigned i = 0; i < threads; i++) {
		if (!w[i].started)
			continue;
		pthread_join(w[i].th, NULL);
		for (int k = 0; k < MG_WINDOWS; k++)
			ops[k] += w[i].ops[k];
		bench_hist_merge(&hist[0], &w[i].hist[MG_W_BEFORE]);
		bench_hist_merge(&hist[1], &w[i].hist[MG_W_DURING]);
		if (w[i].errors != 0 && rc == 0)
			rc = bench_fail(err, w[i].first_error, "a writer through A failed: %s",
			    strerror(-w[i].first_error));
	}
	if (bench_interrupted) {
		rc = -EINTR;
		goto out;
	}
	if (cjoin.skipped) {
		mg_skip_rows(ctx, err);
		rc = 0;
		goto out;
	}
	if (rc == 0)
		rc = mg_measure_peers(ctx, st, &peers, err);
	if (rc != 0)
		goto error;

	/* The move. */
	secs = (double)(join.t_end - join.t0) / 1e9;
	csecs = (double)(cjoin.t_end - cjoin.t0) / 1e9;
	fio_bps = mg_mean(peers.fio_bps, peers.n);
	tcp_bps = mg_mean(peers.tcp_bps, peers.n);
	row = bench_row_add(ctx, "records", "records moved/s, D joins, no client");
	if (row != NULL) {
		char n[32];

		row->ops = join.rec1 - join.rec0;
		row->seconds = secs;
		row->unit = "rec/s";
		row->value = secs > 0 ? (double)row->ops / secs : 0;
		snprintf(row->note, sizeof(row->note), "%s records (migrate_records_received, 4 nodes) "
		    "in %.2f s from cluster_size 4 to migrate_partitions_remaining 0 on all (D's last "
		    "record seen at %.2f s, polled every 50 ms); D started %.2f s before",
		    bench_fmt_count(n, sizeof(n), (double)row->ops), secs,
		    join.t_rx_last > join.t0 ? (double)(join.t_rx_last - join.t0) / 1e9 : 0.0,
		    (double)(join.t0 - join.t_spawn) / 1e9);
	}
	row = mg_rate_row(ctx, "bytes", "bytes moved/s (fabric, all nodes)",
	    secs > 0 ? (double)(join.bytes1 - join.bytes0) / secs : 0);
	if (row != NULL) {
		row->seconds = secs;
		snprintf(row->note, sizeof(row->note), "%.1f MB fabric_received_bytes on 4 nodes (also "
		    "heartbeats), no client running", (double)(join.bytes1 - join.bytes0) / 1e6);
	}
	/* The work per MB moved: robust to the machine's other load. */
	{
		double cpu = 0, csw = 0, mb = (double)(join.bytes1 - join.bytes0) / 1e6;
		char per[4][24];

		for (unsigned i = 0; i < MG_NODES; i++) {
			cpu += (double)(join.cpu1[i] - join.cpu0[i]) / 1e9;
			csw += (double)(join.csw1[i] - join.csw0[i]);
			snprintf(per[i], sizeof(per[i]), "%.2f", (double)(join.cpu1[i] - join.cpu0[i]) / 1e9);
		}
		row = bench_row_add(ctx, "cpu_per_mb", "CPU ms per MB moved, 4 nodes");
		if (row != NULL && mb > 0) {
			row->unit = "ms/MB";
			row->value = cpu * 1e3 / mb;
			row->seconds = secs;
			snprintf(row->note, sizeof(row->note), "%.2f CPU-s (A %s B %s C %s D %s, from D's "
			    "start, no client), %.0f context switches per MB", cpu, per[0],
			    per[1], per[2], per[3], csw / mb);
		}
	}
	/* The same by thread: which threads do the work, and how often they
	 * sleep and wake for it. */
	{
		double mb = (double)(join.bytes1 - join.bytes0) / 1e6, moving = 0;
		struct mg_threads d = { .n = 0 };
		size_t off = 0;

		for (unsigned i = 0; i < join.th1.n; i++) {
			uint64_t c0 = 0, s0 = 0;

			for (unsigned k = 0; k < join.th0.n; k++)
				if (strcmp(join.th0.k[k].name, join.th1.k[i].name) == 0) {
					c0 = join.th0.k[k].cpu_ns;
					s0 = join.th0.k[k].csw;
				}
			mg_threads_add(&d, join.th1.k[i].name, join.th1.k[i].cpu_ns > c0 ?
			    join.th1.k[i].cpu_ns - c0 : 0, join.th1.k[i].csw > s0 ? join.th1.k[i].csw - s0 : 0);
		}
		/* the threads that move the data first, then by CPU time, most first */
		for (unsigned i = 1; i < d.n; i++)
			for (unsigned k = i; k > 0 && mg_thread_before(&d, k, k - 1); k--) {
				__typeof__(d.k[0]) t = d.k[k];

				d.k[k] = d.k[k - 1];
				d.k[k - 1] = t;
			}
		row = bench_row_add(ctx, "threads", "CPU ms/MB of fabric, migrate-tx, rpc-bulk");
		if (row != NULL && mb > 0) {
			off = (size_t)snprintf(row->note, sizeof(row->note), "ms/switches per MB:");
			for (unsigned i = 0; i < d.n; i++) {
				if (mg_thread_moves(d.k[i].name))
					moving += (double)d.k[i].cpu_ns / 1e6 / mb;
				if (off < sizeof(row->note) && d.k[i].cpu_ns + d.k[i].csw > 0)
					off += (size_t)snprintf(row->note + off, sizeof(row->note) - off,
					    " %s %.2f/%.0f", d.k[i].name, (double)d.k[i].cpu_ns / 1e6 / mb,
					    (double)d.k[i].csw / mb);
			}
			row->unit = "ms/MB";
			row->value = moving;
			row->seconds = secs;
		}
	}
	if (st->fio[0]) {
		row = mg_rate_row(ctx, "fio", "fio randread 128 KiB x3, A's file", fio_bps);
		if (row != NULL)
			snprintf(row->note, sizeof(row->note), "psync, O_DIRECT, 3 jobs; mean of a run "
			    "before and after the join: %.0f, %.0f MB/s", peers.fio_bps[0] / 1e6,
			    peers.fio_bps[1] / 1e6);
	} else if ((row = bench_row_add(ctx, "fio", "fio randread 128 KiB x3, A's file")) != NULL) {
		row->verdict = VERDICT_SKIP;
		snprintf(row->note, sizeof(row->note), "fio not found in PATH");
	}
	row = mg_rate_row(ctx, "tcp_stream", "64 KiB writes streamed, plain TCP", tcp_bps);
	if (row != NULL)
		snprintf(row->note, sizeof(row->note), "one stream; mean of a run before and after the "
		    "join: %.0f, %.0f MB/s", peers.tcp_bps[0] / 1e6, peers.tcp_bps[1] / 1e6);
	/* What the plain TCP stream costs per MB (both ends, measured in the
	 * same run), and what 0.5x of the limit costs in cores at that cost
	 * and at the migration's: the bound two vCPUs put on the ratio. */
	limit = st->fio[0] && fio_bps < tcp_bps ? fio_bps : tcp_bps;
	{
		double tcp_mb = 0, tcp_cpu = 0, mig_ms = 0, mb = (double)(join.bytes1 - join.bytes0) / 1e6;

		for (unsigned i = 0; i < peers.n; i++) {
			tcp_mb += peers.tcp_mb[i];
			tcp_cpu += peers.tcp_cpu_s[i];
		}
		for (unsigned i = 0; i < MG_NODES; i++)
			mig_ms += (double)(join.cpu1[i] - join.cpu0[i]) / 1e6;
		mig_ms = mb > 0 ? mig_ms / mb : 0;
		row = bench_row_add(ctx, "tcp_cpu_per_mb", "CPU ms per MB, plain TCP stream");
		if (row != NULL && tcp_mb > 0) {
			double half = limit / 2 / 1e6;   /* MB/s for a ratio of 0.5 */

			row->unit = "ms/MB";
			row->value = tcp_cpu * 1e3 / tcp_mb;
			snprintf(row->note, sizeof(row->note), "both ends; 0.5x of the limit (%.0f MB/s) "
			    "costs %.2f cores at this, %.2f at the move's %.2f ms/MB; %ld CPUs online",
			    half, half * row->value / 1e3, half * mig_ms / 1e3, mig_ms,
			    sysconf(_SC_NPROCESSORS_ONLN));
		}
	}
	row = bench_row_add(ctx, "ratio", "moved / min(fio, TCP)");
	if (row != NULL && !st->fio[0]) {
		row->verdict = VERDICT_SKIP;
		snprintf(row->note, sizeof(row->note), "no storage peer without fio");
	} else if (row != NULL) {
		row->unit = "x";
		row->value = limit > 0 ? (double)(join.bytes1 - join.bytes0) / secs / limit : 0;
		snprintf(row->note, sizeof(row->note), "limit: %s %.0f MB/s",
		    fio_bps < tcp_bps ? "fio" : "TCP", limit / 1e6);
		bench_row_judge(ctx, row, TARGET_MIGRATE_RATE, 0.5, true);
	}
	/* The second join, with the writers: shown, not judged (the move
	 * pauses for clients by design: network.migrate-yield-pct). */
	row = bench_row_add(ctx, "ratio_clients", "moved / min(fio, TCP), writers on");
	if (row != NULL && !st->fio[0]) {
		row->verdict = VERDICT_SKIP;
		snprintf(row->note, sizeof(row->note), "no storage peer without fio");
	} else if (row != NULL) {
		double mb = (double)(cjoin.bytes1 - cjoin.bytes0) / 1e6;
		char n[32];

		row->unit = "x";
		row->seconds = csecs;
		row->value = limit > 0 && csecs > 0 ? mb * 1e6 / csecs / limit : 0;
		snprintf(row->note, sizeof(row->note), "not judged: %.0f MB/s, %.1f MB and %s records in "
		    "%.2f s, D joining again (its storage wiped after it left: A B C re-replicated in "
		    "%.2f s) with the writers on A; the move yields to them", csecs > 0 ? mb / csecs : 0, mb,
		    bench_fmt_count(n, sizeof(n), (double)(cjoin.rec1 - cjoin.rec0)), csecs, leave_s);
	}

	/* The writers. */
	{
		double before_s = (double)(t_before1 - t_before0) / 1e9;
		struct bench_row *b, *d;

		b = mg_writer_row(ctx, "write_before", "1 KiB creates via A, before the join",
		    ops[MG_W_BEFORE], &hist[0], before_s, threads);
		d = mg_writer_row(ctx, "write_during", "1 KiB creates via A, during migration",
		    ops[MG_W_DURING], &hist[1], csecs, threads);
		row = bench_row_add(ctx, "write_ratio", "writes during / before");
		if (row != NULL && b != NULL && d != NULL) {
			row->threads = threads;
			row->unit = "x";
			row->value = b->value > 0 ? d->value / b->value : 0;
			snprintf(row->note, sizeof(row->note), "p50 %.0f us during, %.0f us before; "
			    "p99 %.0f us during, %.0f us before", d->lat.p50_us, b->lat.p50_us,
			    d->lat.p99_us, b->lat.p99_us);
			bench_row_judge(ctx, row, TARGET_MIGRATE_WRITES, 0.7, true);
		}
		/* The clients' latency during the move (issue 13: the mount keeps
		 * serving): no target, next to the throughput's. */
		row = bench_row_add(ctx, "write_p99_ratio", "write p99 during / before");
		if (row != NULL && b != NULL && d != NULL) {
			row->threads = threads;
			row->unit = "x";
			row->value = b->lat.p99_us > 0 ? d->lat.p99_us / b->lat.p99_us : 0;
			snprintf(row->note, sizeof(row->note), "p50 %.2f x (%.0f / %.0f us); p99.9 %.0f us "
			    "during, %.0f us before", b->lat.p50_us > 0 ? d->lat.p50_us / b->lat.p50_us : 0,
			    d->lat.p50_us, b->lat.p50_us, d->lat.p999_us, b->lat.p999_us);
		}
	}
	/* What the emigration threads gave the clients (network.migrate-yield-pct)
	 * in the second join; the first, without clients, should take none. */
	row = bench_row_add(ctx, "yield", "emigration paused for clients");
	if (row != NULL && !cjoin.have_yield) {
		row->verdict = VERDICT_SKIP;
		snprintf(row->note, sizeof(row->note), "not in this build (no migrate_tx_yield_time)");
	} else if (row != NULL) {
		double paused_s = (double)(cjoin.yield_us1 - cjoin.yield_us0) / 1e6;

		row->unit = "ms";
		row->value = paused_s * 1e3;
		row->seconds = csecs;
		snprintf(row->note, sizeof(row->note), "writers on: %llu pauses (migrate_tx_yields, 4 nodes) "
		    "in %.2f s of migration: %.0f%% of the 3 sources' emigration time; no client: %llu "
		    "pauses, %.0f ms", (unsigned long long)(cjoin.yields1 - cjoin.yields0), csecs,
		    csecs > 0 ? 100.0 * paused_s / (csecs * MG_SOURCES) : 0.0,
		    (unsigned long long)(join.yields1 - join.yields0),
		    (double)(join.yield_us1 - join.yield_us0) / 1e3);
	}
	bench_note(ctx, "cluster.migrate: A B C at RF 2 (device engine, post-write-cache 0, files "
	    "in %s) hold %llu MiB of 128 KiB files; D joins with no client (the rate judged), leaves, "
	    "its storage wiped, and joins again with %u writers via A; moved: .info sums of the 4 nodes", st->dir, (unsigned long long)(mg_data_bytes(ctx) >> 20), threads);
	rc = 0;
	goto out;
error:
	if (rc == -EINTR || bench_interrupted) {
		rc = -EINTR;
		goto out;
	}
	if (err[0] == '\0')
		bench_fail(err, rc, "%s", strerror(-rc));
	bench_row_error(ctx, "", "cluster of 3 + 1 recfsd", "%s", err);
	for (unsigned i = 0; i < MG_NODES; i++) {
		char tail[160];

		bench_file_tail(st->node[i].log, tail, sizeof(tail), 2);
		if (tail[0])
			bench_progress("recfsd %s log: %s", st->node[i].name, tail);
	}
out:
	free(w);
	free(hist);
	return rc;
}

/* ---- teardown ------------------------------------------------------------------ */

void
bench_migrate_cleanup(struct bench_ctx *ctx)
{
	struct bench_migrate_state *st = ctx->migrate;

	if (st == NULL)
		return;
	for (int i = MG_NODES - 1; i >= 0; i--)
		bench_daemon_stop(&st->node[i]);
	for (unsigned i = 0; i < MG_NODES; i++)
		if (st->file[i][0])
			unlink(st->file[i]);
	if (st->dir_made && rmdir(st->dir) != 0)
		fprintf(stderr, "recfs-bench: rmdir %s: %s\n", st->dir, strerror(errno));
	free(st);
	ctx->migrate = NULL;
}
