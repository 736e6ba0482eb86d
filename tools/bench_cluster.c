/*
 * bench_cluster.c - the cluster benchmarks of recfs-bench
 * (docs/benchmarks.md): three real recfsd nodes on 127.0.0.1 against a
 * plain one-node recfsd started the same way, all measured through their
 * mounts in the same run, so every target is a ratio.
 *
 * The nodes: each its own config (memory namespace "bench", the same
 * data-size as the single node), work dir, log and mount under the run's
 * temp dir; the fabric on 127.0.0.1 at a free port below the kernel's
 * ephemeral range (a port bind(0) could hand out may be taken by any
 * outgoing connection before the daemon binds it); one secret file (mode
 * 0600); each node seeds the one before it (A seeds C).  A start waits,
 * bounded, until every mount's .info/cluster shows cluster_size 3 and one
 * cluster_key.  The single node has the same config without the network
 * section.  The cluster runs at replication-factor 1, then is stopped and
 * started again at 2; the single node is started afresh with each.
 *
 * cluster.mount: per size (1 KiB, 128 KiB) and round, create+write+close
 * of new files through node A's mount and through the single node's, then
 * open+read+close of those files (content checked), then an untimed
 * delete; who goes first alternates per round.  Ratios are cluster ops/s
 * over single-node ops/s of the same counts, measured while that RF ran.
 * Each round also sorts A's names by their placement xattrs and takes
 * plain loopback TCP round trips and a stream: the bound rows, the most
 * any create through A could give in those rounds (cl_place_add,
 * cl_bound).  At RF 2 the writes run once more at CL_T8_THREADS writers.
 *
 * cluster.proxy: files are written through A, their user.recfs.master and
 * user.recfs.replicas xattrs split them into "local" (A masters them) and
 * "remote" (A is neither master nor replica), then each is read once
 * through A (open+read+close, one thread, local and remote alternating),
 * next to loopback TCP round trips (bench_tcp_rtt) in slices between the
 * reads.  A's rpc_calls counter (.info/statistics) must rise by at least
 * the number of remote reads, or those reads never left A (no data path
 * in this build) and the row says so instead of a misleading figure.
 *
 * cluster.embedded: librecfs in this process as a cluster member, through
 * the calls recfsd itself makes (node_open, txn_node_id_set,
 * txn_network_start, txn_node_network_set): A's daemon stops and node E
 * joins B and C at RF 2; txn_write of 1 KiB and 128 KiB file bins by
 * --threads workers, in slices alternating with an in-process single node.
 * Last in the group, since it takes A's place.
 *
 * Teardown, also on errors and SIGINT: unmount each mount, reap each
 * daemon by pid (SIGTERM, then SIGKILL after a bounded wait); the
 * in-process nodes are detached from their network and closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "config/config.h"
#include "txn/txn.h"
#include "bench.h"

#define CL_NODES 3
#define CL_SIZES 2
#define CL_NS "bench"
#define CL_SET "files"
#define CL_WAIT_S 30              /* cluster forming, bounded */
#define CL_ROUND_FILES_MAX 10000  /* per thread and round, a bound on memory */
#define CL_PROXY_FILES 3000       /* written for the proxy reads (quick: 300) */
#define CL_PROXY_FILES_QUICK 300
#define CL_TCP_SLICES 10
#define CL_T8_THREADS 8           /* the RF 2 writes once more, at this many writers */

static const size_t cl_size[CL_SIZES] = { 1024, 128 * 1024 };
static const char *const cl_size_id[CL_SIZES] = { "1k", "128k" };
static const char *const cl_size_label[CL_SIZES] = { "1 KiB", "128 KiB" };

enum cl_op { CL_WRITE = 0, CL_READ = 1, CL_UNLINK = 2 };
#define CL_TIMED_OPS 2
enum { SIDE_SINGLE = 0, SIDE_CLUSTER = 1, CL_SIDES = 2 };
/* Where node A stands for a name: it masters it, holds its replica, neither. */
enum { CLS_MASTER = 0, CLS_REPLICA = 1, CLS_NEITHER = 2, CL_CLASSES = 3 };

/* The names written through A in some rounds, sorted by their own
 * user.recfs.master and user.recfs.replicas, and the network time their
 * creates cannot avoid (cl_place_add, cl_bound). */
struct cl_place {
	uint64_t names;
	uint64_t cls[CL_CLASSES];
	uint64_t hops;            /* one-way trips (half a round trip each), summed */
	uint64_t carries;         /* names whose content must cross a link */
};

struct bench_cluster_state {
	char recfsd[PATH_MAX];
	char secret[PATH_MAX];
	struct bench_daemon single;
	struct bench_daemon node[CL_NODES];
	unsigned rf;              /* of the running cluster; 0 = none */
	unsigned starts;          /* cluster starts, for fresh dirs */
	unsigned single_starts;
	char error[200];          /* why the setup failed */
	bool setup_failed;
	/* cluster.mount: [rf - 1][side][op][size] */
	bool mount_measured;
	bool mount_ok[2];
	char mount_error[2][200];
	unsigned rounds;
	unsigned per_thread[CL_SIZES];
	struct bench_acc acc[2][CL_SIDES][CL_TIMED_OPS][CL_SIZES];
	/* the bound rows: A's names of those rounds by size, and plain
	 * loopback TCP taken between them, per RF ([rf - 1]) */
	struct cl_place place[2][CL_SIZES];
	struct bench_worker tcp_rtt[2], tcp_stream[2];
	/* RF 2 writes at CL_T8_THREADS writers (information, not judged) */
	bool t8_ok;
	char t8_error[200];
	unsigned t8_per_thread[CL_SIZES];
	struct bench_acc acc_t8[CL_SIDES][CL_SIZES];
	struct cl_place place_t8[CL_SIZES];
};

static const char *
data_size(const struct bench_ctx *ctx)
{
	return ctx->opt.quick ? "256M" : "1G";
}

/* The config every daemon shares; network (may be "") goes last. */
static int
daemon_config(struct bench_ctx *ctx, struct bench_daemon *d, unsigned rf, const char *node_id,
    const char *network)
{
	char yaml[4 * PATH_MAX + 512], work[PATH_MAX];
	int rc;

	if (bench_path(work, sizeof(work), "%s/work", d->dir) != 0)
		return -ENAMETOOLONG;
	if ((mkdir(d->dir, 0700) != 0 && errno != EEXIST) ||
	    (mkdir(work, 0700) != 0 && errno != EEXIST) ||
	    (mkdir(d->mnt, 0755) != 0 && errno != EEXIST))
		return -errno;
	rc = bench_path(yaml, sizeof(yaml),
	    "# generated by recfs-bench (cluster)\n"
	    "service:\n"
	    "  cluster-name: bench\n"
	    "  node-id: %s\n"
	    "  work-directory: %s\n"
	    "  ticker-interval: 0\n"
	    "logging:\n"
	    "  file: %s\n"
	    "  level: info\n"
	    "namespaces:\n"
	    "  - name: " CL_NS "\n"
	    "    replication-factor: %u\n"
	    "    storage-engine:\n"
	    "      type: memory\n"
	    "      data-size: %s\n"
	    "      write-block-size: 1M\n"
	    "%s",
	    node_id, work, d->log, rf, data_size(ctx), network);
	if (rc != 0)
		return rc;
	return bench_write_file(d->conf, yaml, 0644);
}


static void
cluster_stop(struct bench_cluster_state *st)
{
	for (int i = 0; i < CL_NODES; i++)
		bench_daemon_stop(&st->node[i]);
	st->rf = 0;
}

/* Three nodes at replication-factor rf, fresh storage; 0 or -errno with err. */
static int
cluster_start(struct bench_ctx *ctx, struct bench_cluster_state *st, unsigned rf, char *err)
{
	char base[PATH_MAX], name[2] = "A", id[17], net[3 * PATH_MAX];
	int rc;

	if (st->rf == rf)
		return 0;
	cluster_stop(st);
	st->starts++;
	for (int i = 0; i < CL_NODES; i++) {
		struct bench_daemon *d = &st->node[i];
		int port = bench_free_port();

		name[0] = (char)('A' + i);
		if (port < 0)
			return bench_fail(err, port, "no free port on 127.0.0.1: %s", strerror(-port));
		if (bench_path(base, sizeof(base), "%s/cluster%u-%c", ctx->tmp, st->starts, name[0]) != 0 ||
		    bench_daemon_paths(d, base, name, CL_NS "/" CL_SET) != 0)
			return bench_fail(err, -ENAMETOOLONG, "temp dir path too long");
		/* Distinct ports can still collide with each other by chance. */
		for (int j = 0; j < i; j++)
			if (st->node[j].port == port)
				port = -1;
		if (port < 0) {
			i--;
			continue;
		}
		d->port = port;
		d->id = (uint64_t)(i + 1);
	}
	for (int i = 0; i < CL_NODES; i++) {
		struct bench_daemon *d = &st->node[i];
		const struct bench_daemon *seed = &st->node[(i + CL_NODES - 1) % CL_NODES];

		snprintf(id, sizeof(id), "%016llx", (unsigned long long)d->id);
		rc = bench_path(net, sizeof(net),
		    "network:\n"
		    "  fabric: { address: 127.0.0.1, port: %d }\n"
		    "  seeds: [ \"127.0.0.1:%d\" ]\n"
		    "  heartbeat: { interval-ms: 100, timeout-count: 5 }\n"
		    "  cluster-secret-file: %s\n",
		    d->port, seed->port, st->secret);
		if (rc == 0)
			rc = daemon_config(ctx, d, rf, id, net);
		if (rc != 0)
			return bench_fail(err, rc, "config of node %s: %s", d->name, strerror(-rc));
	}
	for (int i = 0; i < CL_NODES; i++) {
		rc = bench_daemon_start(st->recfsd, &st->node[i], err);
		if (rc != 0)
			return rc;
		bench_progress("cluster node %s: recfsd pid %d, fabric 127.0.0.1:%d, mounted at %s",
		    st->node[i].name, (int)st->node[i].pid, st->node[i].port, st->node[i].mnt);
	}
	{
		struct bench_daemon *nodes[CL_NODES];

		for (int i = 0; i < CL_NODES; i++)
			nodes[i] = &st->node[i];
		rc = bench_daemons_wait_cluster(nodes, CL_NODES, NULL, err);
	}
	if (rc != 0)
		return rc;
	/* The set through A (cluster-wide: the others see it too). */
	for (int i = 0; i < CL_NODES; i++) {
		rc = bench_daemon_open_dir(&st->node[i], err);
		if (rc != 0)
			return rc;
	}
	st->rf = rf;
	return 0;
}

/* The single node, on fresh storage (again at each RF, so that it is as
 * new as the cluster it is compared with). */
static int
single_start(struct bench_ctx *ctx, struct bench_cluster_state *st, char *err)
{
	char base[PATH_MAX];
	int rc;

	bench_daemon_stop(&st->single);
	st->single_starts++;
	if (bench_path(base, sizeof(base), "%s/single%u", ctx->tmp, st->single_starts) != 0 ||
	    bench_daemon_paths(&st->single, base, "single", CL_NS "/" CL_SET) != 0)
		return bench_fail(err, -ENAMETOOLONG, "temp dir path too long");
	rc = daemon_config(ctx, &st->single, 1, "auto", "");
	if (rc != 0)
		return bench_fail(err, rc, "config of the single node: %s", strerror(-rc));
	rc = bench_daemon_start(st->recfsd, &st->single, err);
	if (rc == 0)
		rc = bench_daemon_open_dir(&st->single, err);
	return rc;
}

static struct bench_cluster_state *
cluster_setup(struct bench_ctx *ctx)
{
	struct bench_cluster_state *st = ctx->cluster;
	char secret[96];
	int rc;

	if (st != NULL)
		return st;
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return NULL;
	ctx->cluster = st;
	st->single.dirfd = -1;
	for (int i = 0; i < CL_NODES; i++)
		st->node[i].dirfd = -1;
	st->rounds = ctx->opt.quick ? 2 : 3;
	if (ctx->opt.recfsd_path != NULL)
		rc = bench_path(st->recfsd, sizeof(st->recfsd), "%s", ctx->opt.recfsd_path);
	else
		rc = bench_path(st->recfsd, sizeof(st->recfsd), "%s/recfsd", ctx->opt.self_dir);
	if (rc != 0 || access(st->recfsd, X_OK) != 0) {
		st->setup_failed = true;
		bench_fail(st->error, -ENOENT, "%s: %s (see --recfsd)", st->recfsd,
		    rc != 0 ? "path too long" : strerror(errno));
		return st;
	}
	snprintf(secret, sizeof(secret), "recfs-bench cluster secret %016llx\n",
	    (unsigned long long)(bench_now_ns() ^ ((uint64_t)getpid() << 32)));
	if (bench_path(st->secret, sizeof(st->secret), "%s/cluster.secret", ctx->tmp) != 0) {
		st->setup_failed = true;
		bench_fail(st->error, -ENAMETOOLONG, "temp dir path too long");
		return st;
	}
	rc = bench_write_file(st->secret, secret, 0600);
	if (rc != 0) {
		st->setup_failed = true;
		bench_fail(st->error, rc, "%s: %s", st->secret, strerror(-rc));
		return st;
	}
	if (single_start(ctx, st, st->error) != 0) {
		st->setup_failed = true;
		return st;
	}
	bench_progress("single recfsd pid %d mounted at %s", (int)st->single.pid, st->single.mnt);
	bench_note(ctx, "cluster: recfsd, memory engine, data-size %s, write-block-size 1M; "
	    "nodes A B C on 127.0.0.1, heartbeat 100 ms x 5, each seeds the one before; the "
	    "single node: the same config without a network section", data_size(ctx));
	return st;
}

/* ---- the workload ------------------------------------------------------------ */

struct cl_job {
	int dirfd;
	enum cl_op op;
	size_t size;
	char prefix[32];
	unsigned count;           /* files per thread */
};

static void
cl_name(char *buf, size_t size, const char *prefix, unsigned thread, unsigned i)
{
	snprintf(buf, size, "%s-t%u-%07u", prefix, thread, i);
}

/* One file op: create+write+close, open+read+close (content checked) or
 * unlink; 0 or -errno.  buf holds size bytes. */
static int
cl_file_op(int dirfd, enum cl_op op, const char *name, char *buf, size_t size)
{
	size_t nlen = strlen(name) + 1;
	ssize_t n;
	int fd, rc = 0;

	if (op == CL_UNLINK)
		return unlinkat(dirfd, name, 0) == 0 ? 0 : -errno;
	if (op == CL_WRITE) {
		/* The name opens the content: a read checks it got this file. */
		memcpy(buf, name, nlen);
		fd = openat(dirfd, name, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			return -errno;
		n = write(fd, buf, size);
		if (n != (ssize_t)size)
			rc = n < 0 ? -errno : -EIO;
	} else {
		size_t off = 0;

		fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		while (rc == 0 && off < size) {
			n = read(fd, buf + off, size - off);
			if (n <= 0)
				rc = n < 0 ? -errno : -EIO;
			else
				off += (size_t)n;
		}
		if (rc == 0 && memcmp(buf, name, nlen) != 0)
			rc = -EIO;
	}
	if (close(fd) != 0 && rc == 0)
		rc = -errno;
	return rc;
}

static void
cl_worker(struct bench_worker *w, void *arg)
{
	struct cl_job *job = arg;
	char name[64], *buf = malloc(job->size);

	if (buf == NULL) {
		w->errors++;
		w->first_error = -ENOMEM;
		return;
	}
	memset(buf, 'c', job->size);
	for (unsigned i = 0; i < job->count && !bench_interrupted; i++) {
		uint64_t t0;
		int rc;

		cl_name(name, sizeof(name), job->prefix, w->id, i);
		t0 = bench_now_ns();
		rc = cl_file_op(job->dirfd, job->op, name, buf, job->size);
		bench_hist_add(&w->hist, bench_now_ns() - t0);
		if (rc != 0) {
			w->errors++;
			w->first_error = rc;
			break;
		}
		w->ops++;
		w->bytes += job->size;
	}
	free(buf);
}

/* A worker stuck in a FUSE call: kill the daemon, the call fails. */
static void
cl_on_stuck(void *arg)
{
	struct bench_daemon *d = arg;

	bench_progress("a FUSE call is stuck: killing recfsd %s pid %d", d->name, (int)d->pid);
	if (d->pid > 0)
		kill(d->pid, SIGKILL);
}

static int
cl_phase_n(struct bench_ctx *ctx, unsigned threads, struct bench_daemon *d, enum cl_op op,
    size_t size, const char *prefix, unsigned count, struct bench_acc *acc, double *rate, char *err)
{
	struct cl_job job = { .dirfd = d->dirfd, .op = op, .size = size, .count = count };
	struct bench_phase p = {
		.n_threads = threads,
		.fn = cl_worker,
		.arg = &job,
		.on_stuck = cl_on_stuck,
		.stuck_arg = d,
		.deadline_s = 60 + 20 * ctx->opt.duration_s,
	};
	int rc;

	snprintf(job.prefix, sizeof(job.prefix), "%s", prefix);
	rc = bench_phase_run(&p);
	if (rc == 0 && p.errors != 0)
		rc = p.first_error;
	if (bench_interrupted)
		return -EINTR;
	if (rc != 0) {
		char tail[160];

		bench_file_tail(d->log, tail, sizeof(tail), 3);
		if (tail[0])
			bench_progress("recfsd %s log: %s", d->name, tail);
		return bench_fail(err, rc, "%s %s through %s (%s): %llu errors, first: %s",
		    op == CL_WRITE ? "write" : op == CL_READ ? "read" : "unlink",
		    cl_size_label[size == cl_size[0] ? 0 : 1], d->name, prefix,
		    (unsigned long long)p.errors, strerror(-rc));
	}
	if (rate != NULL)
		*rate = p.seconds > 0 ? (double)p.ops / p.seconds : 0;
	if (acc != NULL) {
		bench_acc_add(acc, &p);
	}
	return 0;
}

static int
cl_phase(struct bench_ctx *ctx, struct bench_daemon *d, enum cl_op op, size_t size,
    const char *prefix, unsigned count, struct bench_acc *acc, double *rate, char *err)
{
	return cl_phase_n(ctx, ctx->opt.threads, d, op, size, prefix, count, acc, rate, err);
}

/* Sorts the names [prefix, threads x count] written through a by their
 * placement xattrs into pl, with the one-way trips a create of each
 * cannot avoid (docs/benchmarks.md, cluster.mount, the bound).  A create
 * is the kernel's LOOKUP (a stat: served by the master), CREATE (the empty
 * record) and the close's FLUSH (the content): two writes, each
 * acknowledged only once every copy has it, ordered at the master.
 * The fastest chain for a write: A is the master: A -> replicas -> A, 2
 * trips (0 without replicas); A holds a replica: A -> master -> A, 2 (the
 * master's answer can be the replica write itself), 3 if other replicas
 * must answer too; neither: A -> master -> replicas -> A, 3 (2 without
 * replicas).  The lookup: 0 when A masters the name, else A -> master ->
 * A, 2.  The content crosses at least one link unless A masters the name
 * and there are no replicas.  0 or -errno with err. */
static int
cl_place_add(struct bench_daemon *a, const char *prefix, unsigned threads, unsigned count,
    struct cl_place *pl, char *err)
{
	char me[17];

	snprintf(me, sizeof(me), "%016llx", (unsigned long long)a->id);
	for (unsigned t = 0; t < threads && !bench_interrupted; t++) {
		for (unsigned i = 0; i < count && !bench_interrupted; i++) {
			char name[64], path[PATH_MAX], master[64], replicas[1200];
			unsigned copies = 1, write_hops;
			ssize_t m, r;

			cl_name(name, sizeof(name), prefix, t, i);
			if (bench_path(path, sizeof(path), "%s/%s", a->files, name) != 0)
				return bench_fail(err, -ENAMETOOLONG, "path too long");
			m = getxattr(path, "user.recfs.master", master, sizeof(master) - 1);
			r = m < 0 ? -1 : getxattr(path, "user.recfs.replicas", replicas, sizeof(replicas) - 1);
			if (m <= 0 || r <= 0)
				return bench_fail(err, m < 0 || r < 0 ? -errno : -EIO, "getxattr "
				    "user.recfs.master/replicas %s: %s", path, m < 0 || r < 0 ?
				    strerror(errno) : "empty");
			master[m] = '\0';
			replicas[r] = '\0';
			for (const char *c = replicas; *c; c++)
				copies += *c == ',';
			pl->names++;
			if (strcmp(master, me) == 0) {
				pl->cls[CLS_MASTER]++;
				write_hops = copies > 1 ? 2 : 0;
				pl->hops += 2 * write_hops;
				pl->carries += copies > 1;
			} else if (strstr(replicas, me) != NULL) {
				pl->cls[CLS_REPLICA]++;
				write_hops = copies > 2 ? 3 : 2;
				pl->hops += 2 + 2 * write_hops;
				pl->carries++;
			} else {
				pl->cls[CLS_NEITHER]++;
				write_hops = copies > 1 ? 3 : 2;
				pl->hops += 2 + 2 * write_hops;
				pl->carries++;
			}
		}
	}
	return bench_interrupted ? bench_fail(err, -EINTR, "interrupted") : 0;
}

/* Plain loopback TCP between the rounds: round trips and a short stream,
 * the figures the bound is made of. */
static int
cl_tcp_slice(struct bench_ctx *ctx, struct bench_worker *rtt, struct bench_worker *stream,
    char *err)
{
	int rc = bench_tcp_rtt(ctx->opt.quick ? 0.02 : 0.05, rtt);

	if (rc != 0)
		return bench_fail(err, rc, "loopback TCP round trip: %s", strerror(-rc));
	rc = bench_tcp_stream(ctx->opt.quick ? 0.02 : 0.05, stream);
	if (rc != 0)
		return bench_fail(err, rc, "loopback TCP stream: %s", strerror(-rc));
	return 0;
}

/* The smaller of a histogram's p50 and mean, microseconds: never above the
 * mean, which is what Little's law is about (the p50 is the usual figure;
 * the smaller of the two keeps the bound a bound). */
static double
cl_floor_us(const struct bench_hist *h)
{
	struct bench_latency l = bench_hist_latency(h);
	double mean = bench_hist_mean_us(h);

	return l.valid && l.p50_us < mean ? l.p50_us : mean;
}

/* The most A's creates could give as a ratio of the single node's, in the
 * same rounds: each of `threads` writers waits for its own create, so
 * A's ops/s <= threads / (T + N), T the single node's create time (the
 * same FUSE requests and at least one store per write lie on A's path),
 * N the mean network time pl counted: hops x RTT / 2 + carries x size /
 * TCP stream rate, over the names.  0 when a figure is missing; T and N
 * into t_us and net_us. */
static double
cl_bound(unsigned threads, const struct bench_acc *single, const struct cl_place *pl, size_t size,
    const struct bench_worker *rtt, const struct bench_worker *stream, double *t_us, double *net_us)
{
	double secs = (double)stream->end_ns / 1e9, bps = secs > 0 ? (double)stream->bytes / secs : 0;
	double rate = bench_acc_rate(single), r = cl_floor_us(&rtt->hist);

	*t_us = cl_floor_us(&single->hist);
	if (pl->names == 0 || rate <= 0 || r <= 0 || bps <= 0 || *t_us <= 0)
		return 0;
	*net_us = ((double)pl->hops * r / 2 + (double)pl->carries * (double)size / bps * 1e6) /
	    (double)pl->names;
	return (double)threads / ((*t_us + *net_us) / 1e6) / rate;
}

/* Files per thread and round for each size: the single node's warm-up
 * write rate x --duration / rounds / 2 (writes, then reads of them). */
static int
cl_calibrate(struct bench_ctx *ctx, struct bench_cluster_state *st, char *err)
{
	unsigned warm = ctx->opt.quick ? 20 : 100, min = ctx->opt.quick ? 10 : 50;

	for (int s = 0; s < CL_SIZES; s++) {
		char prefix[32];
		double rate = 0, count;
		int rc;

		snprintf(prefix, sizeof(prefix), "w%s", cl_size_id[s]);
		rc = cl_phase(ctx, &st->single, CL_WRITE, cl_size[s], prefix, warm, NULL, &rate, err);
		if (rc == 0)
			rc = cl_phase(ctx, &st->single, CL_UNLINK, cl_size[s], prefix, warm, NULL, NULL, err);
		if (rc != 0)
			return rc;
		count = rate / ctx->opt.threads * ctx->opt.duration_s / st->rounds / 2;
		st->per_thread[s] = count < min ? min : count > CL_ROUND_FILES_MAX ?
		    CL_ROUND_FILES_MAX : (unsigned)count;
		/* Every round's files must fit the data-size on every node. */
		if (s == 1 && (uint64_t)st->per_thread[s] * ctx->opt.threads * cl_size[s] >
		    (ctx->opt.quick ? 64ull : 256ull) << 20)
			st->per_thread[s] = (unsigned)(((ctx->opt.quick ? 64ull : 256ull) << 20) /
			    cl_size[s] / ctx->opt.threads);
	}
	return 0;
}

/* The rounds at one RF: per size, writes then reads on both, who goes
 * first alternating, then an untimed delete. */
static int
cl_measure_rf(struct bench_ctx *ctx, struct bench_cluster_state *st, unsigned rf, char *err)
{
	struct bench_daemon *side[CL_SIDES] = { &st->single, &st->node[0] };

	for (unsigned r = 0; r < st->rounds && !bench_interrupted; r++) {
		for (int s = 0; s < CL_SIZES; s++) {
			char prefix[32];
			int rc;

			snprintf(prefix, sizeof(prefix), "rf%u-r%u-%s", rf, r, cl_size_id[s]);
			for (int k = 0; k < 2 * CL_SIDES; k++) {
				enum cl_op op = k < CL_SIDES ? CL_WRITE : CL_READ;
				int i = (int)((r + (unsigned)(k < CL_SIDES ? k : 2 * CL_SIDES - 1 - k)) %
				    CL_SIDES);

				rc = cl_phase(ctx, side[i], op, cl_size[s], prefix, st->per_thread[s],
				    &st->acc[rf - 1][i][op][s], NULL, err);
				if (rc != 0)
					return rc;
			}
			rc = cl_place_add(side[SIDE_CLUSTER], prefix, ctx->opt.threads, st->per_thread[s],
			    &st->place[rf - 1][s], err);
			if (rc == 0)
				rc = cl_tcp_slice(ctx, &st->tcp_rtt[rf - 1], &st->tcp_stream[rf - 1], err);
			if (rc != 0)
				return rc;
			for (int i = 0; i < CL_SIDES; i++) {
				rc = cl_phase(ctx, side[i], CL_UNLINK, cl_size[s], prefix,
				    st->per_thread[s], NULL, NULL, err);
				if (rc != 0)
					return rc;
			}
		}
	}
	return bench_interrupted ? -EINTR : 0;
}

/* RF 2 creates at CL_T8_THREADS writers: per size, as many files per side
 * as one round of --threads writes, in two halves (single, A, A, single),
 * then the placement of A's names, TCP, and an untimed delete. */
static int
cl_measure_t8(struct bench_ctx *ctx, struct bench_cluster_state *st, char *err)
{
	struct bench_daemon *side[CL_SIDES] = { &st->single, &st->node[0] };

	for (int s = 0; s < CL_SIZES && !bench_interrupted; s++) {
		unsigned n = st->per_thread[s] * ctx->opt.threads / CL_T8_THREADS / 2;
		char prefix[32];
		int rc = 0;

		st->t8_per_thread[s] = n = n < 5 ? 5 : n;
		for (int k = 0; k < 4 && rc == 0; k++) {
			int i = k == 0 || k == 3 ? SIDE_SINGLE : SIDE_CLUSTER;

			snprintf(prefix, sizeof(prefix), "t8-%s-%d", cl_size_id[s], k / 2);
			rc = cl_phase_n(ctx, CL_T8_THREADS, side[i], CL_WRITE, cl_size[s], prefix, n,
			    &st->acc_t8[i][s], NULL, err);
		}
		for (int h = 0; h < 2 && rc == 0; h++) {
			snprintf(prefix, sizeof(prefix), "t8-%s-%d", cl_size_id[s], h);
			rc = cl_place_add(side[SIDE_CLUSTER], prefix, CL_T8_THREADS, n, &st->place_t8[s],
			    err);
		}
		if (rc == 0)
			rc = cl_tcp_slice(ctx, &st->tcp_rtt[1], &st->tcp_stream[1], err);
		for (int h = 0; h < 2 && rc == 0; h++)
			for (int i = 0; i < CL_SIDES && rc == 0; i++) {
				snprintf(prefix, sizeof(prefix), "t8-%s-%d", cl_size_id[s], h);
				rc = cl_phase_n(ctx, CL_T8_THREADS, side[i], CL_UNLINK, cl_size[s], prefix,
				    n, NULL, NULL, err);
			}
		if (rc != 0)
			return rc;
	}
	return bench_interrupted ? -EINTR : 0;
}

static void
cl_mount_measure(struct bench_ctx *ctx, struct bench_cluster_state *st)
{
	if (st->mount_measured)
		return;
	st->mount_measured = true;
	if (st->setup_failed)
		return;
	if (cl_calibrate(ctx, st, st->mount_error[0]) != 0) {
		snprintf(st->mount_error[1], sizeof(st->mount_error[1]), "%s", st->mount_error[0]);
		return;
	}
	bench_progress("cluster: %u rounds x %u (1 KiB) / %u (128 KiB) files/thread", st->rounds,
	    st->per_thread[0], st->per_thread[1]);
	for (unsigned rf = 1; rf <= 2 && !bench_interrupted; rf++) {
		char *err = st->mount_error[rf - 1];

		if (rf > 1 && single_start(ctx, st, err) != 0)
			break;
		if (cluster_start(ctx, st, rf, err) != 0)
			continue;
		bench_progress("cluster at replication-factor %u: measuring", rf);
		st->mount_ok[rf - 1] = cl_measure_rf(ctx, st, rf, err) == 0;
		if (rf == 2 && st->mount_ok[1])
			st->t8_ok = cl_measure_t8(ctx, st, st->t8_error) == 0;
	}
}

/* ---- rows --------------------------------------------------------------------- */

/* write_<size>.rf<rf>_bound: the most A's creates could give at this RF,
 * from the same rounds (cl_bound), and the share of it measured. */
static void
cl_bound_row(struct bench_ctx *ctx, struct bench_cluster_state *st, unsigned rf, int s,
    double measured)
{
	const struct cl_place *pl = &st->place[rf - 1][s];
	const struct bench_acc *one = &st->acc[rf - 1][SIDE_SINGLE][CL_WRITE][s];
	const struct bench_worker *stream = &st->tcp_stream[rf - 1];
	double t_us = 0, net_us = 0, secs = (double)stream->end_ns / 1e9, bound;
	struct bench_row *row;
	char id[48], label[64];

	bound = cl_bound(ctx->opt.threads, one, pl, cl_size[s], &st->tcp_rtt[rf - 1], stream, &t_us,
	    &net_us);
	if (bound <= 0)
		return;
	snprintf(id, sizeof(id), "write_%s.rf%u_bound", cl_size_id[s], rf);
	snprintf(label, sizeof(label), "%s write RF %u/single, at most", cl_size_label[s], rf);
	row = bench_row_add(ctx, id, label);
	if (row == NULL)
		return;
	row->threads = ctx->opt.threads;
	row->unit = "x";
	row->value = bound;
	snprintf(row->note, sizeof(row->note), "%u thr / (single %.0f + net %.0f us: %.2f RTT x %.1f + "
	    "%.2f x %s at %.0f MB/s) = %.0f ops/s; measured %.2fx = %.0f%% of it", ctx->opt.threads,
	    t_us, net_us, (double)pl->hops / 2 / (double)pl->names, cl_floor_us(&st->tcp_rtt[rf - 1].hist),
	    (double)pl->carries / (double)pl->names, cl_size_label[s],
	    secs > 0 ? (double)stream->bytes / secs / 1e6 : 0,
	    (double)ctx->opt.threads / ((t_us + net_us) / 1e6), measured, measured / bound * 100);
	bench_note(ctx, "cluster.mount %s writes at RF %u: of %llu names written through A, A masters "
	    "%llu, holds a replica of %llu, neither %llu (user.recfs.master/replicas of each); "
	    "%.2f RTT and %.2f content transfers per name at least", cl_size_label[s], rf,
	    (unsigned long long)pl->names, (unsigned long long)pl->cls[CLS_MASTER],
	    (unsigned long long)pl->cls[CLS_REPLICA], (unsigned long long)pl->cls[CLS_NEITHER],
	    (double)pl->hops / 2 / (double)pl->names, (double)pl->carries / (double)pl->names);
}

/* write_<size>.rf2_ratio_t8: the RF 2 ratio at CL_T8_THREADS writers, with
 * its own bound in the note (information, not judged). */
static void
cl_t8_row(struct bench_ctx *ctx, struct bench_cluster_state *st, int s)
{
	const struct bench_acc *one = &st->acc_t8[SIDE_SINGLE][s], *a = &st->acc_t8[SIDE_CLUSTER][s];
	double t_us = 0, net_us = 0, bound, ratio;
	struct bench_row *row;
	char id[48], label[64];

	snprintf(id, sizeof(id), "write_%s.rf2_ratio_t%u", cl_size_id[s], CL_T8_THREADS);
	snprintf(label, sizeof(label), "%s write RF 2/single, %u writers", cl_size_label[s],
	    CL_T8_THREADS);
	if (!st->t8_ok) {
		row = bench_row_error(ctx, id, label, "%s", st->t8_error[0] ? st->t8_error : "not measured");
		if (row != NULL)
			row->threads = CL_T8_THREADS;
		return;
	}
	row = bench_row_add(ctx, id, label);
	if (row == NULL)
		return;
	row->threads = CL_T8_THREADS;
	row->unit = "x";
	ratio = bench_acc_rate(one) > 0 ? bench_acc_rate(a) / bench_acc_rate(one) : 0;
	row->value = ratio;
	bound = cl_bound(CL_T8_THREADS, one, &st->place_t8[s], cl_size[s], &st->tcp_rtt[1],
	    &st->tcp_stream[1], &t_us, &net_us);
	snprintf(row->note, sizeof(row->note), "A %.0f, single %.0f ops/s (p50 %.0f / %.0f us); at most "
	    "%.2fx (single %.0f + net %.0f us): %.0f%% of it", bench_acc_rate(a), bench_acc_rate(one),
	    bench_hist_latency(&a->hist).p50_us, bench_hist_latency(&one->hist).p50_us, bound, t_us,
	    net_us, bound > 0 ? ratio / bound * 100 : 0);
}

int
bench_cluster_mount(struct bench_ctx *ctx, const struct bench_def *def)
{
	static const char *const op_label[CL_TIMED_OPS] = { "write", "read" };
	struct bench_cluster_state *st = cluster_setup(ctx);
	unsigned t = ctx->opt.threads;
	int ret = 0;

	if (st == NULL) {
		bench_row_error(ctx, "", "cluster of 3 recfsd", "out of memory");
		return -ENOMEM;
	}
	if (st->setup_failed) {
		bench_row_error(ctx, "", "single-node recfsd", "%s", st->error);
		return -EIO;
	}
	cl_mount_measure(ctx, st);
	if (bench_interrupted)
		return -EINTR;
	for (int op = 0; op < CL_TIMED_OPS; op++) {
		for (int s = 0; s < CL_SIZES; s++) {
			struct bench_acc single = { 0 };
			char id[48], label[64];
			struct bench_row *row;

			for (int rf = 0; rf < 2; rf++) {
				const struct bench_acc *one = &st->acc[rf][SIDE_SINGLE][op][s];

				if (!st->mount_ok[rf])
					continue;
				bench_acc_merge(&single, one);
			}
			snprintf(id, sizeof(id), "%s_%s.single", op_label[op], cl_size_id[s]);
			snprintf(label, sizeof(label), "%s %s, single node", cl_size_label[s], op_label[op]);
			if (st->mount_ok[0] || st->mount_ok[1])
				bench_acc_row(ctx, &single, id, label, t);
			else if ((row = bench_row_error(ctx, id, label, "%s", st->mount_error[0])) != NULL)
				row->threads = t;
			for (unsigned rf = 1; rf <= 2; rf++) {
				const struct bench_acc *c = &st->acc[rf - 1][SIDE_CLUSTER][op][s];
				const struct bench_acc *one = &st->acc[rf - 1][SIDE_SINGLE][op][s];

				snprintf(id, sizeof(id), "%s_%s.rf%u", op_label[op], cl_size_id[s], rf);
				snprintf(label, sizeof(label), "%s %s, node A of 3, RF %u", cl_size_label[s],
				    op_label[op], rf);
				if (!st->mount_ok[rf - 1]) {
					row = bench_row_error(ctx, id, label, "%s", st->mount_error[rf - 1]);
					if (row != NULL)
						row->threads = t;
					ret = -EIO;
					continue;
				}
				bench_acc_row(ctx, c, id, label, t);
				snprintf(id, sizeof(id), "%s_%s.rf%u_ratio", op_label[op], cl_size_id[s], rf);
				snprintf(label, sizeof(label), "%s %s RF %u/single", cl_size_label[s],
				    op_label[op], rf);
				row = bench_row_add(ctx, id, label);
				if (row == NULL)
					continue;
				row->threads = t;
				row->unit = "x";
				row->value = bench_acc_rate(one) > 0 ? bench_acc_rate(c) / bench_acc_rate(one) : 0;
				snprintf(row->note, sizeof(row->note), "single node %.0f ops/s in the same rounds",
				    bench_acc_rate(one));
				if (op == CL_WRITE && rf == 2 && def->target != NULL)
					bench_row_judge(ctx, row, def->target, def->target_bound, true);
				if (op == CL_WRITE)
					cl_bound_row(ctx, st, rf, s, row->value);
				if (op == CL_WRITE && rf == 2)
					cl_t8_row(ctx, st, s);
			}
		}
	}
	bench_note(ctx, "cluster.mount: per RF %u rounds x %u (1 KiB) / %u (128 KiB) files per "
	    "thread: creates on A and the single node, reads of them (other order), untimed "
	    "delete; ratio = A's ops/s / the single node's in those rounds", st->rounds,
	    st->per_thread[0], st->per_thread[1]);
	bench_note(ctx, "cluster.mount at %u writers, RF 2: 2 x %u (1 KiB) / %u (128 KiB) files per "
	    "thread and side, single A A single; bounds: docs/benchmarks.md", CL_T8_THREADS,
	    st->t8_per_thread[0], st->t8_per_thread[1]);
	return ret;
}

/* ---- proxied reads --------------------------------------------------------- */

struct cl_names {
	char (*name)[48];
	unsigned n;
};

/* Reads of names[from..to) through d, one thread, each timed into h. */
static int
cl_read_block(struct bench_daemon *d, const struct cl_names *names, unsigned from, unsigned to,
    struct bench_hist *h, char *buf)
{
	for (unsigned i = from; i < to && !bench_interrupted; i++) {
		uint64_t t0 = bench_now_ns();
		int rc = cl_file_op(d->dirfd, CL_READ, names->name[i], buf, cl_size[0]);

		bench_hist_add(h, bench_now_ns() - t0);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static struct bench_row *
lat_row(struct bench_ctx *ctx, const char *id, const char *label, const struct bench_hist *h)
{
	struct bench_row *row = bench_row_add(ctx, id, label);

	if (row == NULL)
		return NULL;
	row->threads = 1;
	row->ops = h->count;
	row->lat = bench_hist_latency(h);
	row->unit = "us p50";
	row->value = row->lat.p50_us;
	return row;
}

int
bench_cluster_proxy(struct bench_ctx *ctx, const struct bench_def *def)
{
	struct bench_cluster_state *st = cluster_setup(ctx);
	struct bench_daemon *a;
	struct cl_names local = { 0 }, remote = { 0 };
	struct bench_hist *hl = NULL, *hr = NULL;
	struct bench_worker tcp = { 0 };
	unsigned total = ctx->opt.quick ? CL_PROXY_FILES_QUICK : CL_PROXY_FILES, per, n;
	uint64_t rpc0 = 0, rpc1 = 0;
	char err[200] = "", me[17], *buf = NULL;
	struct bench_row *row, *lr, *rr, *tr;
	int rc;

	if (st == NULL) {
		bench_row_error(ctx, "", "cluster of 3 recfsd", "out of memory");
		return -ENOMEM;
	}
	if (st->setup_failed) {
		bench_row_error(ctx, "", "single-node recfsd", "%s", st->error);
		return -EIO;
	}
	/* Whatever RF runs (the mount rows leave RF 2); alone: RF 2. */
	rc = st->rf != 0 ? 0 : cluster_start(ctx, st, 2, err);
	if (rc != 0) {
		bench_row_error(ctx, "", "cluster of 3 recfsd", "%s", err);
		return rc;
	}
	a = &st->node[0];
	snprintf(me, sizeof(me), "%016llx", (unsigned long long)a->id);
	per = total / ctx->opt.threads;
	rc = cl_phase(ctx, a, CL_WRITE, cl_size[0], "px", per, NULL, NULL, err);
	local.name = calloc(total, sizeof(*local.name));
	remote.name = calloc(total, sizeof(*remote.name));
	hl = calloc(1, sizeof(*hl));
	hr = calloc(1, sizeof(*hr));
	buf = malloc(cl_size[0]);
	if (rc == 0 && (local.name == NULL || remote.name == NULL || hl == NULL || hr == NULL ||
	    buf == NULL))
		rc = bench_fail(err, -ENOMEM, "out of memory");
	/* Split by where the partition table puts each name. */
	for (unsigned t = 0; rc == 0 && t < ctx->opt.threads; t++) {
		for (unsigned i = 0; rc == 0 && i < per; i++) {
			char name[48], path[PATH_MAX], master[64], replicas[1200];
			ssize_t m, r;

			cl_name(name, sizeof(name), "px", t, i);
			if (bench_path(path, sizeof(path), "%s/%s", a->files, name) != 0) {
				rc = bench_fail(err, -ENAMETOOLONG, "path too long");
				break;
			}
			m = getxattr(path, "user.recfs.master", master, sizeof(master) - 1);
			r = getxattr(path, "user.recfs.replicas", replicas, sizeof(replicas) - 1);
			if (m < 0 || r < 0) {
				rc = bench_fail(err, -errno, "getxattr user.recfs.master/replicas %s: %s",
				    path, strerror(errno));
				break;
			}
			master[m] = '\0';
			replicas[r] = '\0';
			if (strcmp(master, me) == 0)
				snprintf(local.name[local.n++], sizeof(local.name[0]), "%s", name);
			else if (strstr(replicas, me) == NULL)
				snprintf(remote.name[remote.n++], sizeof(remote.name[0]), "%s", name);
		}
	}
	if (rc == 0 && (local.n == 0 || remote.n == 0))
		rc = bench_fail(err, -EIO, "of %u names A masters %u, holds no copy of %u", per *
		    ctx->opt.threads, local.n, remote.n);
	n = local.n < remote.n ? local.n : remote.n;
	if (rc == 0)
		rc = bench_info_u64(a->mnt, "statistics", "rpc_calls", &rpc0);
	/* Local and remote reads alternate in blocks, with TCP round trips
	 * between them, so noise falls on all three alike. */
	for (unsigned b = 0; rc == 0 && b < CL_TCP_SLICES && !bench_interrupted; b++) {
		unsigned from = n * b / CL_TCP_SLICES, to = n * (b + 1) / CL_TCP_SLICES;

		rc = cl_read_block(a, &local, from, to, hl, buf);
		if (rc == 0)
			rc = cl_read_block(a, &remote, from, to, hr, buf);
		if (rc != 0)
			bench_fail(err, rc, "read through A: %s", strerror(-rc));
		else if ((rc = bench_tcp_rtt(ctx->opt.quick ? 0.02 : ctx->opt.duration_s / 20, &tcp)) != 0)
			bench_fail(err, rc, "loopback TCP round trip: %s", strerror(-rc));
	}
	if (rc == 0)
		rc = bench_info_u64(a->mnt, "statistics", "rpc_calls", &rpc1);
	if (bench_interrupted)
		rc = -EINTR;
	if (rc != 0) {
		if (err[0] == '\0')
			bench_fail(err, rc, "%s", strerror(-rc));
		bench_row_error(ctx, "", "proxied vs local reads through A", "%s", err);
		goto out;
	}
	lr = lat_row(ctx, "local", "1 KiB read, A masters the name", hl);
	if (lr != NULL)
		snprintf(lr->note, sizeof(lr->note), "%u of %u names written through A", local.n,
		    per * ctx->opt.threads);
	tr = lat_row(ctx, "tcp_rtt", "64 B round trip, plain TCP", &tcp.hist);
	if (tr != NULL)
		tr->note[0] = '\0';
	if (rpc1 - rpc0 < n) {
		/* The reads of names A does not master never left A. */
		row = bench_row_add(ctx, "remote", "1 KiB read, another node masters it");
		if (row != NULL) {
			row->threads = 1;
			row->unit = "us p50";
			row->verdict = VERDICT_SKIP;
			snprintf(row->note, sizeof(row->note), "no proxied reads: data path not in this "
			    "build (A's rpc_calls +%llu for %u reads of names it holds no copy of)",
			    (unsigned long long)(rpc1 - rpc0), n);
		}
		row = bench_row_add(ctx, "check", "proxied p50 - local p50, in TCP RTTs");
		if (row != NULL) {
			row->unit = "RTT";
			row->verdict = VERDICT_SKIP;
			snprintf(row->note, sizeof(row->note), "no proxied reads: data path not in this build");
		}
		goto out;
	}
	rr = lat_row(ctx, "remote", "1 KiB read, another node masters it", hr);
	if (rr != NULL)
		snprintf(rr->note, sizeof(rr->note), "%u names, A holds no copy; A's rpc_calls +%llu",
		    remote.n, (unsigned long long)(rpc1 - rpc0));
	row = bench_row_add(ctx, "check", "proxied p50 - local p50, in TCP RTTs");
	if (row != NULL && lr != NULL && rr != NULL && tr != NULL && tr->lat.p50_us > 0) {
		row->unit = "RTT";
		row->value = (rr->lat.p50_us - lr->lat.p50_us) / tr->lat.p50_us;
		snprintf(row->note, sizeof(row->note), "proxied p50 %.0f us, local p50 %.0f us, TCP RTT "
		    "p50 %.1f us", rr->lat.p50_us, lr->lat.p50_us, tr->lat.p50_us);
		if (def->target != NULL)
			bench_row_judge(ctx, row, def->target, 2.0, false);
	}
out:
	bench_note(ctx, "cluster.proxy: 1 KiB files written through A at RF %u, each read once "
	    "through A, 1 thread; local: user.recfs.master is A; remote: A not in "
	    "user.recfs.replicas; TCP round trips between read blocks", st->rf);
	free(local.name);
	free(remote.name);
	free(hl);
	free(hr);
	free(buf);
	return rc;
}

/* ---- the embedded API as a cluster member ------------------------------------ */

/* An in-process node (librecfs through txn.h): the cluster member E, or
 * the single node it is compared with. */
struct cl_embedded {
	struct recfs_config cfg;
	bool cfg_loaded;
	struct node *node;
	struct txn_network *net;
	struct namespace *ns;
	uint64_t id;
};

static int
emb_open(struct bench_ctx *ctx, struct bench_cluster_state *st, struct cl_embedded *e,
    const char *name, uint64_t id, int port, int seed_port, char *err)
{
	char dir[PATH_MAX], work[PATH_MAX], net[3 * PATH_MAX], yaml[5 * PATH_MAX];
	char cerr[512];
	int rc;

	if (bench_path(dir, sizeof(dir), "%s/embedded-%s", ctx->tmp, name) != 0 ||
	    bench_path(work, sizeof(work), "%s/work", dir) != 0)
		return bench_fail(err, -ENAMETOOLONG, "temp dir path too long");
	if ((mkdir(dir, 0700) != 0 && errno != EEXIST) || (mkdir(work, 0700) != 0 && errno != EEXIST))
		return bench_fail(err, -errno, "mkdir %s: %s", work, strerror(errno));
	net[0] = '\0';
	if (port > 0 && bench_path(net, sizeof(net),
	    "network:\n"
	    "  fabric: { address: 127.0.0.1, port: %d }\n"
	    "  seeds: [ \"127.0.0.1:%d\" ]\n"
	    "  heartbeat: { interval-ms: 100, timeout-count: 5 }\n"
	    "  cluster-secret-file: %s\n", port, seed_port, st->secret) != 0)
		return bench_fail(err, -ENAMETOOLONG, "temp dir path too long");
	/* The daemons' config, through the product's own loader. */
	rc = bench_path(yaml, sizeof(yaml),
	    "service:\n"
	    "  cluster-name: bench\n"
	    "  node-id: %016llx\n"
	    "  work-directory: %s\n"
	    "  ticker-interval: 0\n"
	    "namespaces:\n"
	    "  - name: " CL_NS "\n"
	    "    replication-factor: %u\n"
	    "    storage-engine:\n"
	    "      type: memory\n"
	    "      data-size: %s\n"
	    "      write-block-size: 1M\n"
	    "%s",
	    (unsigned long long)id, work, port > 0 ? 2u : 1u, data_size(ctx), net);
	if (rc != 0)
		return bench_fail(err, rc, "temp dir path too long");
	rc = config_load_string(&e->cfg, yaml, "recfs-bench", cerr, sizeof(cerr));
	e->cfg_loaded = true;
	if (rc != 0)
		return bench_fail(err, rc, "config: %s", cerr);
	rc = node_open(&e->node, &e->cfg);
	if (rc != 0) {
		e->node = NULL;
		return bench_fail(err, rc, "node_open: %s", recfs_strerror(rc));
	}
	e->id = id;
	txn_node_id_set(e->node, id);
	if (port > 0) {
		rc = txn_network_start(&e->cfg, id, &e->net);
		if (rc != 0)
			return bench_fail(err, rc, "txn_network_start: %s", recfs_strerror(rc));
		txn_node_network_set(e->node, e->net);
	}
	e->ns = node_namespace_find(e->node, CL_NS, strlen(CL_NS));
	if (e->ns == NULL)
		return bench_fail(err, -ENOENT, "namespace " CL_NS " missing");
	return 0;
}

static void
emb_close(struct cl_embedded *e)
{
	if (e->node != NULL) {
		txn_node_network_set(e->node, NULL);
		txn_network_stop(e->net);
		e->net = NULL;
		node_close(e->node, true);
		e->node = NULL;
	} else if (e->net != NULL) {
		txn_network_stop(e->net);
		e->net = NULL;
	}
	if (e->cfg_loaded)
		config_free(&e->cfg);
	e->cfg_loaded = false;
}

/* Until E, B and C agree: cluster_size 3, one cluster_key (A stopped). */
static int
emb_wait(struct bench_cluster_state *st, struct cl_embedded *e, char *err)
{
	uint64_t t0 = bench_now_ns(), end = t0 + (uint64_t)(CL_WAIT_S * 1e9);

	while (!bench_interrupted) {
		struct timespec nap = { 0, 50 * 1000 * 1000 };
		struct txn_cluster tc;
		char key[64], size[64], want[20];
		bool agree = txn_node_cluster(e->node, &tc) && tc.size == 3 && tc.cluster_key != 0;

		snprintf(want, sizeof(want), "%016llx", (unsigned long long)tc.cluster_key);
		for (int i = 1; i < CL_NODES && agree; i++)
			if (bench_info_value(st->node[i].mnt, "cluster", "cluster_size", size, sizeof(size)) != 0 ||
			    strcmp(size, "3") != 0 ||
			    bench_info_value(st->node[i].mnt, "cluster", "cluster_key", key, sizeof(key)) != 0 ||
			    strcmp(key, want) != 0)
				agree = false;
		if (agree) {
			bench_progress("cluster of E (in-process), B, C formed in %.1f s, cluster_key %s",
			    (double)(bench_now_ns() - t0) / 1e9, want);
			return 0;
		}
		if (bench_now_ns() >= end)
			return bench_fail(err, -ETIMEDOUT, "E, B and C did not agree on a cluster of 3 "
			    "within %d s", CL_WAIT_S);
		nanosleep(&nap, NULL);
	}
	return bench_fail(err, -EINTR, "interrupted");
}

struct emb_job {
	struct namespace *ns;
	size_t size;
	unsigned keys;            /* per thread, overwritten in turn */
	char tag;                 /* keys differ per node */
};

static void
emb_worker(struct bench_worker *w, void *arg)
{
	struct emb_job *job = arg;
	char *buf = malloc(job->size), key[32];

	if (buf == NULL) {
		w->errors++;
		w->first_error = -ENOMEM;
		return;
	}
	memset(buf, 'e', job->size);
	for (uint64_t i = 0; !bench_phase_stopping(w->phase); i++) {
		struct txn_write wr = { .set_file = true, .file_data = buf, .file_len = job->size };
		struct txn_key k = { NULL, 0, key, 0 };
		uint64_t t0;
		int rc;

		k.key_len = (size_t)snprintf(key, sizeof(key), "%c%u-%06llu", job->tag, w->id,
		    (unsigned long long)(i % job->keys));
		t0 = bench_now_ns();
		rc = txn_write(job->ns, &k, &wr, NULL);
		bench_hist_add(&w->hist, bench_now_ns() - t0);
		if (rc != 0) {
			w->errors++;
			w->first_error = rc;
			break;
		}
		w->ops++;
		w->bytes += job->size;
	}
	free(buf);
}

static int
emb_phase(struct bench_ctx *ctx, struct cl_embedded *e, int s, double seconds, struct bench_acc *acc,
    char *err)
{
	/* A bounded key space per thread: the data stays well under data-size. */
	struct emb_job job = { .ns = e->ns, .size = cl_size[s], .tag = e->id > 1 ? 'c' : 's' };
	struct bench_phase p = {
		.n_threads = ctx->opt.threads,
		.duration_s = seconds,
		.fn = emb_worker,
		.arg = &job,
	};
	int rc;

	job.keys = (unsigned)(((ctx->opt.quick ? 32ull : 128ull) << 20) / cl_size[s] / ctx->opt.threads);
	rc = bench_phase_run(&p);
	if (rc == 0 && p.errors != 0)
		rc = p.first_error;
	if (bench_interrupted)
		return -EINTR;
	if (rc != 0)
		return bench_fail(err, rc, "txn_write %s on %s: %llu errors, first: %s",
		    cl_size_label[s], e->net != NULL ? "E" : "the single node",
		    (unsigned long long)p.errors, recfs_strerror(rc));
	bench_acc_add(acc, &p);
	return 0;
}

/* The most a replicated write could give at this run's thread count, from
 * figures of the same run: a writer waits for its write at least one round
 * trip to the replica (the plain TCP round trip's p50), the time to carry
 * the record there (size over the plain TCP stream's rate) and the
 * replica's own store, which costs no less than the whole single-node write
 * (its p50; the master's store can overlap the wait, the replica's cannot).
 * With `threads` writers each waiting for its own write (Little's law):
 * ops/s <= threads / (rtt + size / stream + single p50), as a ratio of the
 * single node's ops/s.  No messaging cost, no CPU shared between the three
 * nodes and no wake-up is counted, so the real figure can only be lower. */
static void
emb_bound_row(struct bench_ctx *ctx, int s, const struct bench_acc *single, double ratio,
    const struct bench_worker *rtt, const struct bench_worker *stream)
{
	struct bench_latency one = bench_hist_latency(&single->hist);
	struct bench_latency tcp = bench_hist_latency(&rtt->hist);
	double rate = bench_acc_rate(single), secs = (double)stream->end_ns / 1e9;
	double bps = secs > 0 ? (double)stream->bytes / secs : 0, xfer_us, floor_us, bound;
	struct bench_row *row;
	char id[48], label[64];

	if (!one.valid || !tcp.valid || bps <= 0 || rate <= 0)
		return;
	xfer_us = (double)cl_size[s] / bps * 1e6;
	floor_us = tcp.p50_us + xfer_us + one.p50_us;
	bound = (double)ctx->opt.threads / (floor_us / 1e6) / rate;
	snprintf(id, sizeof(id), "write_%s.rf2_bound", cl_size_id[s]);
	snprintf(label, sizeof(label), "%s RF 2/single, at most", cl_size_label[s]);
	row = bench_row_add(ctx, id, label);
	if (row == NULL)
		return;
	row->threads = ctx->opt.threads;
	row->unit = "x";
	row->value = bound;
	snprintf(row->note, sizeof(row->note), "%u threads / (TCP RTT %.1f + %s at %.0f MB/s %.1f + "
	    "single write %.1f us) = %.0f ops/s; measured %.2fx = %.0f%% of it", ctx->opt.threads,
	    tcp.p50_us, cl_size_label[s], bps / 1e6, xfer_us, one.p50_us,
	    (double)ctx->opt.threads / (floor_us / 1e6), ratio, bound > 0 ? ratio / bound * 100 : 0);
}

int
bench_cluster_embedded(struct bench_ctx *ctx, const struct bench_def *def)
{
	struct bench_cluster_state *st = cluster_setup(ctx);
	struct cl_embedded *e = calloc(2, sizeof(*e));   /* [0] single, [1] member E */
	struct bench_acc *acc = calloc(2 * CL_SIZES, sizeof(*acc));
	struct bench_worker tcp_rtt = { 0 }, tcp_stream = { 0 };
	unsigned slices = ctx->opt.quick ? 2 : 4;
	char err[200] = "", logpath[PATH_MAX];
	bool logged = false;
	int rc = 0, port;

	if (st == NULL || e == NULL || acc == NULL) {
		bench_row_error(ctx, "", "embedded cluster member", "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	if (st->setup_failed) {
		bench_row_error(ctx, "", "single-node recfsd", "%s", st->error);
		rc = -EIO;
		goto out;
	}
	if (bench_path(logpath, sizeof(logpath), "%s/embedded-cluster.log", ctx->tmp) != 0)
		rc = bench_fail(err, -ENAMETOOLONG, "temp dir path too long");
	if (rc == 0 && (rc = log_open(logpath, LOG_LEVEL_INFO)) != 0)
		bench_fail(err, rc, "log %s: %s", logpath, strerror(-rc));
	logged = rc == 0;
	/* B and C at RF 2; A's daemon stops and E (node id 4) takes its place. */
	if (rc == 0 && st->rf != 2)
		rc = cluster_start(ctx, st, 2, err);
	if (rc == 0) {
		bench_daemon_stop(&st->node[0]);
		st->rf = 0;   /* no longer the cluster of A, B, C */
		port = bench_free_port();
		for (int i = 1; i < CL_NODES && port > 0; i++)
			if (port == st->node[i].port)
				port = bench_free_port();
		if (port < 0)
			rc = bench_fail(err, port, "no free port on 127.0.0.1");
	}
	if (rc == 0)
		rc = emb_open(ctx, st, &e[1], "member", 4, port, st->node[1].port, err);
	if (rc == 0)
		rc = emb_wait(st, &e[1], err);
	if (rc == 0)
		rc = emb_open(ctx, st, &e[0], "single", 1, 0, 0, err);
	/* Slices alternate who goes first, as the mount rows do; each ends
	 * with plain loopback TCP round trips and a short TCP stream, the
	 * floor of what one replicated write waits for (emb_bound_rows). */
	for (unsigned k = 0; rc == 0 && k < slices; k++) {
		for (int s = 0; rc == 0 && s < CL_SIZES; s++)
			for (int j = 0; rc == 0 && j < 2; j++) {
				int i = (int)((k + (unsigned)j) % 2);

				rc = emb_phase(ctx, &e[i], s, ctx->opt.duration_s / slices / 2,
				    &acc[i * CL_SIZES + s], err);
			}
		if (rc == 0 && (rc = bench_tcp_rtt(ctx->opt.quick ? 0.02 : 0.1, &tcp_rtt)) != 0)
			bench_fail(err, rc, "loopback TCP round trip: %s", strerror(-rc));
		if (rc == 0 && (rc = bench_tcp_stream(ctx->opt.quick ? 0.02 : 0.05, &tcp_stream)) != 0)
			bench_fail(err, rc, "loopback TCP stream: %s", strerror(-rc));
	}
	if (rc != 0) {
		if (err[0] == '\0')
			bench_fail(err, rc, "%s", strerror(-rc));
		bench_row_error(ctx, "", "embedded writes, member of 3 at RF 2", "%s", err);
		goto out;
	}
	for (int s = 0; s < CL_SIZES; s++) {
		char id[48], label[64];
		struct bench_row *row;
		double one = bench_acc_rate(&acc[s]), member = bench_acc_rate(&acc[CL_SIZES + s]);

		snprintf(id, sizeof(id), "write_%s.single", cl_size_id[s]);
		snprintf(label, sizeof(label), "%s txn_write, single node", cl_size_label[s]);
		bench_acc_row(ctx, &acc[s], id, label, ctx->opt.threads);
		snprintf(id, sizeof(id), "write_%s.rf2", cl_size_id[s]);
		snprintf(label, sizeof(label), "%s txn_write, member of 3, RF 2", cl_size_label[s]);
		bench_acc_row(ctx, &acc[CL_SIZES + s], id, label, ctx->opt.threads);
		snprintf(id, sizeof(id), "write_%s.rf2_ratio", cl_size_id[s]);
		snprintf(label, sizeof(label), "%s txn_write RF 2/single", cl_size_label[s]);
		row = bench_row_add(ctx, id, label);
		if (row == NULL)
			continue;
		row->threads = ctx->opt.threads;
		row->unit = "x";
		row->value = one > 0 ? member / one : 0;
		if (def->target != NULL)
			bench_row_judge(ctx, row, def->target, def->target_bound, true);
		emb_bound_row(ctx, s, &acc[s], row->value, &tcp_rtt, &tcp_stream);
	}
	bench_note(ctx, "cluster.embedded: librecfs in this process as node E with B and C at RF 2 "
	    "(A stopped) vs an in-process single node; %u alternating slices per size, overwrites "
	    "of a bounded key space per thread", slices);
out:
	if (e != NULL) {
		emb_close(&e[1]);
		emb_close(&e[0]);
	}
	if (logged)
		log_close();
	free(e);
	free(acc);
	return rc;
}

/* ---- teardown ---------------------------------------------------------------- */

void
bench_cluster_cleanup(struct bench_ctx *ctx)
{
	struct bench_cluster_state *st = ctx->cluster;

	if (st == NULL)
		return;
	cluster_stop(st);
	bench_daemon_stop(&st->single);
	free(st);
	ctx->cluster = NULL;
}
