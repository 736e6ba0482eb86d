/*
 * bench_device.c - embedded benchmarks of the device engine (no FUSE), each
 * judged against its physical limit measured in the same run: fio on the
 * same file system (often the same file), or the memory engine for the
 * CPU-bound limit (docs/benchmarks.md).
 *
 *   device.write        1 KiB records, --threads writers: creates each key
 *                       once, then overwrites in key order; the same
 *                       workload on a memory namespace first (the CPU limit)
 *   device.write_large  128 KiB records, same pattern, against fio
 *                       sequential O_DIRECT write (bs 1M, io_uring, QD 8)
 *   device.cold_start   node_open of the namespace device.write filled,
 *                       against fio sequential read (bs 1M, io_uring, QD 4)
 *                       of the range the scan covers
 *   device.read         random 1 KiB reads after that cold start with
 *                       post-write-cache 0 (nothing in RAM but the index),
 *                       against fio 4 KiB randread, psync, numjobs = T
 *   device.defrag       random 4 KiB overwrites at ~50% fill, against the
 *                       same workload with defrag off on a device too large
 *                       to fill during the run
 *
 * The storage files live in a private directory (under --device-dir, else
 * the bench's temp dir), which must be on the disk being measured: on
 * tmpfs there is no O_DIRECT and the rows are skipped.  Every file is
 * removed when its benchmark (or, for the shared 1 KiB data set, the
 * group) is done.  fio runs as a child process (own process group, JSON
 * into a file parsed for bw_bytes/iops); without fio the engine rows are
 * still measured and the ratio rows are SKIPs.
 *
 * Peers run side by side: where a benchmark has rounds (write_large, read)
 * the order of engine and fio alternates from round to round, and the
 * cold-start peer is the mean of a fio pass just before and just after the
 * timed open.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/atomic.h"
#include "base/log.h"
#include "config/config.h"
#include "txn/txn.h"
#include "bench.h"

#define DEV_SET "bench"
#define DEV_KEY_LEN BENCH_KEY_LEN
#define DEV_WBS (1u << 20)
#define DEV_HEADER_BYTES (8ull << 20)   /* STORAGE_HEADER_SIZE: data starts here */

#define SMALL_RECORD 1024
#define LARGE_RECORD (128u << 10)
#define DEFRAG_RECORD 4096
#define DEFRAG_RECORD_ON_DEVICE (DEFRAG_RECORD + 80)  /* + key, set, header: for the fill */

#define FILE_SMALL "small.dat"
#define FILE_LARGE "large.dat"
#define FILE_FIO "fio-write.dat"
#define FILE_DEFRAG "defrag.dat"
#define FILE_NODEFRAG "nodefrag.dat"

#define TARGET_WRITE_ABS "target >= 500,000 records/s"
#define TARGET_WRITE_RATIO "target device/memory >= 0.70"

struct dev_stats {
	uint64_t objects, data_used_bytes, data_used_pct, data_total_bytes;
	uint64_t free_wblocks, total_wblocks, write_q, defrag_q;
	uint64_t defrag_reads, defrag_writes, defrag_records;
	uint64_t storage_writes, storage_reads, cache_read_pct, write_waits, partial_writes;
};

struct bench_device_state {
	char dir[PATH_MAX];         /* private directory of the storage files */
	bool dir_made;
	bool ready;                 /* dev_setup completed */
	char log_path[PATH_MAX];
	bool log_opened;
	char fs_desc[16];           /* "ext2/3/4", "tmpfs", ... */
	bool fs_ok;                 /* not tmpfs/ramfs: O_DIRECT is real */
	char fio[PATH_MAX];         /* "" = not found */
	/* the node now open (at most one at a time) */
	struct recfs_config cfg;
	bool cfg_loaded;
	struct node *node;
	struct namespace *ns;       /* the first namespace of the spec(s) */
	struct namespace *ns2;      /* the second, if any */
	/* the 1 KiB data set in FILE_SMALL */
	uint64_t small_keys;
	uint64_t small_filesize;
	bool small_loaded;          /* every key written (file closed or open) */
	bool small_cold;            /* node open on it, cold-started, post-write-cache 0, no writes since */
	uint64_t scanned_bytes;     /* what the last cold start scanned */
};

/* ---- helpers ---------------------------------------------------------------- */

static uint64_t
pow2_at_least(uint64_t v, uint64_t min)
{
	uint64_t s = min;

	while (s < v)
		s *= 2;
	return s;
}

static const char *
fmt_size(char *buf, size_t size, uint64_t v)
{
	if (v >= (1ull << 30) && v % (1ull << 30) == 0)
		snprintf(buf, size, "%lluG", (unsigned long long)(v >> 30));
	else
		snprintf(buf, size, "%lluM", (unsigned long long)(v >> 20));
	return buf;
}

static void
stat_collect(void *arg, const char *name, const char *value)
{
	struct dev_stats *s = arg;
	static const struct { const char *name; size_t off; } map[] = {
#define F(x) { #x, offsetof(struct dev_stats, x) }
		F(objects), F(data_used_bytes), F(data_used_pct), F(data_total_bytes),
		F(free_wblocks), F(total_wblocks), F(write_q), F(defrag_q),
		F(defrag_reads), F(defrag_writes), F(defrag_records), F(storage_writes),
		F(storage_reads), F(cache_read_pct), F(write_waits), F(partial_writes),
#undef F
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		if (strcmp(name, map[i].name) == 0) {
			*(uint64_t *)((char *)s + map[i].off) = strtoull(value, NULL, 10);
			return;
		}
	}
	/* A memory namespace's write queue is its shadow's. */
	if (strcmp(name, "shadow_write_q") == 0)
		s->write_q = strtoull(value, NULL, 10);
}

static void
dev_stats_get(struct bench_device_state *st, struct dev_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (st->ns != NULL)
		txn_namespace_stats(st->ns, stat_collect, out);
}

static int
file_path(struct bench_device_state *st, char *buf, size_t size, const char *name)
{
	return bench_path(buf, size, "%s/%s", st->dir, name);
}

static void
file_remove(struct bench_device_state *st, const char *name)
{
	char path[PATH_MAX];

	if (file_path(st, path, sizeof(path), name) == 0)
		unlink(path);
}

/* ---- workers ---------------------------------------------------------------- */

enum dev_op {
	OP_SEQ_WRITE,    /* create every key of the thread's slice, then overwrite in order */
	OP_FILL,         /* one pass of creates, then done */
	OP_RAND_WRITE,   /* uniformly random keys, overwrites */
	OP_RAND_READ,    /* uniformly random keys, reads checked */
};

struct dev_job {
	struct namespace *ns;
	enum dev_op op;
	uint64_t keys;
	uint32_t rec_size;
	uint64_t count_per_thread;  /* > 0: a worker stops after this many ops */
	unsigned sample_mask;       /* time op when (ops & mask) == 0 */
	bool enospc_stops;          /* ENOSPC ends the phase (recorded in full) */
	int full;                   /* atomic: some worker saw ENOSPC */
	bool loaded;                /* keys exist: no first pass to finish */
	uint64_t salt;
};

static int
dev_write_one(struct namespace *ns, uint64_t n, uint8_t *data, uint32_t len)
{
	char key[DEV_KEY_LEN];
	struct txn_key k = { DEV_SET, sizeof(DEV_SET) - 1, key, DEV_KEY_LEN };
	struct txn_write w = { .set_file = true, .file_data = data, .file_len = len };

	bench_key_format(key, n);
	memcpy(data, &n, sizeof(n));  /* a read checks it got its own record */
	return txn_write(ns, &k, &w, NULL);
}

static int
dev_read_one(struct namespace *ns, uint64_t n, uint32_t len)
{
	char key[DEV_KEY_LEN];
	struct txn_key k = { DEV_SET, sizeof(DEV_SET) - 1, key, DEV_KEY_LEN };
	struct txn_record r;
	uint64_t got;
	int rc;

	bench_key_format(key, n);
	rc = txn_read(ns, &k, &r);
	if (rc != 0)
		return rc;
	if (r.file_bin == NULL || r.file_bin->v.bytes.len != len) {
		rc = -EIO;
	} else {
		memcpy(&got, r.file_bin->v.bytes.data, sizeof(got));
		if (got != n)
			rc = -EIO;
	}
	txn_record_release(&r);
	return rc;
}

static void
dev_worker(struct bench_worker *w, void *arg)
{
	struct dev_job *job = arg;
	uint64_t n_threads = w->phase->n_threads;
	uint64_t lo = job->keys * w->id / n_threads, hi = job->keys * (w->id + 1) / n_threads;
	uint64_t seed = 0x9E3779B97F4A7C15ull * (w->id + 1) + job->salt * 0x100000001B3ull + 1;
	bool first_pass = (job->op == OP_SEQ_WRITE || job->op == OP_FILL) && !job->loaded;
	uint64_t next = lo;
	uint8_t *data = malloc(job->rec_size);

	if (data == NULL) {
		w->errors++;
		w->first_error = -ENOMEM;
		return;
	}
	for (uint32_t i = 0; i < job->rec_size; i++)
		data[i] = (uint8_t)(i * 131 + w->id);
	for (;;) {
		uint64_t n, t0 = 0;
		bool sample = (w->ops & job->sample_mask) == 0;
		int rc;

		/* A write phase finishes its first pass whatever the clock says:
		 * the read benchmarks need every key to exist. */
		if (bench_interrupted || (!first_pass && bench_phase_stopping(w->phase)))
			break;
		if (job->count_per_thread > 0 && w->ops >= job->count_per_thread)
			break;
		if (job->op == OP_SEQ_WRITE || job->op == OP_FILL) {
			if (next >= hi) {
				if (job->op == OP_FILL || lo == hi)
					break;
				next = lo;
				first_pass = false;
				continue;
			}
			n = next++;
		} else {
			n = (uint64_t)(((unsigned __int128)bench_rand_next(&seed) * job->keys) >> 64);
		}
		if (sample)
			t0 = bench_now_ns();
		if (job->op == OP_RAND_READ)
			rc = dev_read_one(job->ns, n, job->rec_size);
		else
			rc = dev_write_one(job->ns, n, data, job->rec_size);
		if (sample)
			bench_hist_add(&w->hist, bench_now_ns() - t0);
		if (rc != 0) {
			if (rc == -ENOSPC && job->enospc_stops) {
				atomic_store_relaxed(&job->full, 1);
				break;
			}
			w->errors++;
			w->first_error = rc;
			break;
		}
		w->ops++;
		w->bytes += job->rec_size;
	}
	free(data);
}

/* Run one phase; on a worker error an ERROR row (id, label) and -errno. */
static int
dev_phase(struct bench_ctx *ctx, struct dev_job *job, unsigned threads, double duration_s,
    const char *id, const char *label, struct bench_phase *out)
{
	struct bench_phase p = {
		.n_threads = threads,
		.duration_s = duration_s,
		.fn = dev_worker,
		.arg = job,
	};
	int rc = bench_phase_run(&p);

	if (rc == 0 && p.errors != 0)
		rc = p.first_error;
	if (rc != 0) {
		bench_row_error(ctx, id, label, "%llu errors, first: %s", (unsigned long long)p.errors,
		    recfs_strerror(rc));
		return rc;
	}
	if (bench_interrupted)
		return -EINTR;
	/* Each round on stderr: how much a row's figure varies within a run. */
	bench_progress("%s: %.0f ops/s over %.2f s", id, p.seconds > 0 ? (double)p.ops / p.seconds : 0.0,
	    p.seconds);
	*out = p;
	return 0;
}

/* Add a phase's figures to a running sum (rounds of one benchmark). */
static void
phase_accumulate(struct bench_phase *sum, const struct bench_phase *p)
{
	sum->n_threads = p->n_threads;
	sum->ops += p->ops;
	sum->bytes += p->bytes;
	sum->seconds += p->seconds;
	bench_hist_merge(&sum->hist, &p->hist);
}

/* ---- fio ------------------------------------------------------------------- */

/* bench_fio_run with the fio the group found. */
static int
fio_run(struct bench_ctx *ctx, const char *tag, const char *dir, const char *const *opts,
    double timeout_s, struct bench_fio_out *out, char *why, size_t why_size)
{
	return bench_fio_run(ctx, ctx->device->fio, tag, dir, opts, timeout_s, out, why, why_size);
}

/* An ERROR row for a failed fio run; none when it was our interrupt. */
static int
fio_failed(struct bench_ctx *ctx, const char *label, int rc, const char *why)
{
	if (rc != -EINTR || !bench_interrupted)
		bench_row_error(ctx, "fio", label, "%s", why);
	return rc;
}

/* ---- the group's state, the node ---------------------------------------------- */

/* Rows of a benchmark that cannot run here: SKIP with the reason. */
static void
dev_skip(struct bench_ctx *ctx, const char *id, const char *label, const char *why)
{
	struct bench_row *row = bench_row_add(ctx, id, label);

	if (row == NULL)
		return;
	row->verdict = VERDICT_SKIP;
	snprintf(row->note, sizeof(row->note), "%s", why);
}

static int
dev_setup(struct bench_ctx *ctx, const char *label)
{
	struct bench_device_state *st;
	struct statfs sfs;
	int rc;

	if (ctx->device != NULL)
		return 0;
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return -ENOMEM;
	ctx->device = st;
	if (ctx->opt.device_dir != NULL) {
		rc = bench_path(st->dir, sizeof(st->dir), "%s/recfs-bench-device.XXXXXX",
		    ctx->opt.device_dir);
		if (rc == 0 && mkdtemp(st->dir) == NULL)
			rc = -errno;
	} else {
		rc = bench_path(st->dir, sizeof(st->dir), "%s/device", ctx->tmp);
		if (rc == 0 && mkdir(st->dir, 0700) != 0)
			rc = -errno;
	}
	if (rc != 0) {
		bench_row_error(ctx, "", label, "storage dir %s: %s", st->dir, strerror(-rc));
		st->dir[0] = '\0';
		return rc;
	}
	st->dir_made = true;
	rc = bench_path(st->log_path, sizeof(st->log_path), "%s/device.log", ctx->tmp);
	if (rc != 0) {
		bench_row_error(ctx, "", label, "temp dir path too long");
		return rc;
	}
	rc = log_open(st->log_path, LOG_LEVEL_INFO);
	if (rc != 0) {
		bench_row_error(ctx, "", label, "log %s: %s", st->log_path, strerror(-rc));
		return rc;
	}
	st->log_opened = true;
	if (statfs(st->dir, &sfs) != 0) {
		rc = -errno;
		bench_row_error(ctx, "", label, "statfs %s: %s", st->dir, strerror(-rc));
		return rc;
	}
	st->fs_ok = sfs.f_type != TMPFS_MAGIC && sfs.f_type != RAMFS_MAGIC;
	snprintf(st->fs_desc, sizeof(st->fs_desc), "%s",
	    sfs.f_type == EXT4_SUPER_MAGIC ? "ext2/3/4" : sfs.f_type == XFS_SUPER_MAGIC ? "xfs" :
	    sfs.f_type == BTRFS_SUPER_MAGIC ? "btrfs" : sfs.f_type == TMPFS_MAGIC ? "tmpfs" :
	    sfs.f_type == RAMFS_MAGIC ? "ramfs" : "other");
	bench_find_in_path("fio", st->fio, sizeof(st->fio));
	bench_note(ctx, "device: storage files in %s (%s, f_type 0x%lx), write-block-size 1M, "
	    "direct-io; peers: %s", st->dir, st->fs_desc, (unsigned long)sfs.f_type,
	    st->fio[0] ? st->fio : "fio not found (ratio rows skipped)");
	st->small_keys = ctx->opt.keys;
	/* Room for the keys and the overwrites in flight, far below stop-writes. */
	st->small_filesize = pow2_at_least(st->small_keys * (SMALL_RECORD + 128) * 4,
	    ctx->opt.quick ? 1ull << 30 : 4ull << 30);
	st->ready = true;
	return 0;
}

/* Set the group up once: 0 = go, 1 = skipped here (SKIP row added), < 0 =
 * error (ERROR row added). */
static int
dev_ready(struct bench_ctx *ctx, const char *label)
{
	struct bench_device_state *st;
	int rc = dev_setup(ctx, label);

	if (rc != 0)
		return rc;
	st = ctx->device;
	if (!st->ready) {
		bench_row_error(ctx, "", label, "device group setup failed (see its first row)");
		return -EIO;
	}
	if (!st->fs_ok) {
		char why[200];

		snprintf(why, sizeof(why), "%.100s is on %.15s: no O_DIRECT, nothing to measure; use "
		    "--device-dir on a disk", st->dir, st->fs_desc);
		dev_skip(ctx, "", label, why);
		return 1;
	}
	return 0;
}

static void
dev_node_close(struct bench_device_state *st, bool clean)
{
	if (st->node != NULL)
		node_close(st->node, clean);
	st->node = NULL;
	st->ns = st->ns2 = NULL;
	if (st->cfg_loaded)
		config_free(&st->cfg);
	st->cfg_loaded = false;
	st->small_cold = false;
}

struct dev_spec {
	const char *ns;             /* namespace name */
	bool memory;                /* memory engine (data_size), else device */
	bool shadow;                /* memory engine with `file` as its shadow */
	const char *file;           /* device: file name in st->dir */
	uint64_t size;              /* filesize or data-size */
	bool no_post_write_cache;   /* post-write-cache: 0 */
	int lwm;                    /* defrag-lwm-pct, < 0 = default */
	bool fresh;                 /* remove the file first */
};

/* The namespaces: entry of one spec. */
static int
ns_yaml(struct bench_device_state *st, const struct dev_spec *sp, char *buf, size_t size)
{
	char path[PATH_MAX], sz[32], extra[128] = "";
	size_t o = 0;
	int rc;

	if (sp->memory && sp->shadow) {
		rc = file_path(st, path, sizeof(path), sp->file);
		if (rc != 0)
			return rc;
		if (sp->fresh)
			unlink(path);
		return bench_path(buf, size,
		    "  - name: %s\n"
		    "    replication-factor: 1\n"
		    "    storage-engine:\n"
		    "      type: memory\n"
		    "      write-block-size: 1M\n"
		    "      data-size: %s\n"
		    "      files: [ %s ]\n"
		    "      filesize: %s\n", sp->ns, fmt_size(sz, sizeof(sz), sp->size), path,
		    fmt_size(extra, sizeof(extra), sp->size + DEV_HEADER_BYTES));
	}
	if (sp->memory)
		return bench_path(buf, size,
		    "  - name: %s\n"
		    "    replication-factor: 1\n"
		    "    storage-engine:\n"
		    "      type: memory\n"
		    "      write-block-size: 1M\n"
		    "      data-size: %s\n", sp->ns, fmt_size(sz, sizeof(sz), sp->size));
	rc = file_path(st, path, sizeof(path), sp->file);
	if (rc != 0)
		return rc;
	if (sp->fresh)
		unlink(path);
	if (sp->no_post_write_cache)
		o += (size_t)snprintf(extra + o, sizeof(extra) - o, "      post-write-cache: 0\n");
	if (sp->lwm >= 0)
		snprintf(extra + o, sizeof(extra) - o, "      defrag-lwm-pct: %d\n", sp->lwm);
	return bench_path(buf, size,
	    "  - name: %s\n"
	    "    replication-factor: 1\n"
	    "    storage-engine:\n"
	    "      type: device\n"
	    "      write-block-size: 1M\n"
	    "      files: [ %s ]\n"
	    "      filesize: %s\n"
	    "      direct-io: true\n"
	    "%s", sp->ns, path, fmt_size(sz, sizeof(sz), sp->size), extra);
}

/* Open a node with the namespace of sp (and of sp2, unless NULL);
 * *open_s = node_open's time. */
static int
dev_node_open(struct bench_ctx *ctx, const struct dev_spec *sp, const struct dev_spec *sp2,
    const char *id, const char *label, double *open_s)
{
	struct bench_device_state *st = ctx->device;
	char yaml[4 * PATH_MAX], ns1[PATH_MAX + 512], ns2[PATH_MAX + 512] = "", err[512];
	uint64_t t0;
	int rc;

	dev_node_close(st, true);
	rc = ns_yaml(st, sp, ns1, sizeof(ns1));
	if (rc == 0 && sp2 != NULL)
		rc = ns_yaml(st, sp2, ns2, sizeof(ns2));
	if (rc == 0)
		rc = bench_path(yaml, sizeof(yaml),
		    "service:\n"
		    "  cluster-name: bench\n"
		    "  work-directory: %s\n"
		    "  ticker-interval: 0\n"
		    "logging:\n"
		    "  file: %s\n"
		    "  level: info\n"
		    "namespaces:\n"
		    "%s%s",
		    st->dir, st->log_path, ns1, ns2);
	if (rc != 0) {
		bench_row_error(ctx, id, label, "path too long");
		return rc;
	}
	rc = config_load_string(&st->cfg, yaml, "recfs-bench", err, sizeof(err));
	st->cfg_loaded = true;
	if (rc != 0) {
		bench_row_error(ctx, id, label, "config: %s", err);
		return rc;
	}
	t0 = bench_now_ns();
	rc = node_open(&st->node, &st->cfg);
	if (open_s != NULL)
		*open_s = (double)(bench_now_ns() - t0) / 1e9;
	if (rc != 0) {
		char tail[160];

		st->node = NULL;
		bench_file_tail(st->log_path, tail, sizeof(tail), 2);
		bench_row_error(ctx, id, label, "node_open: %s (%s)", recfs_strerror(rc), tail);
		return rc;
	}
	st->ns = node_namespace_find(st->node, sp->ns, strlen(sp->ns));
	if (sp2 != NULL)
		st->ns2 = node_namespace_find(st->node, sp2->ns, strlen(sp2->ns));
	if (st->ns == NULL || (sp2 != NULL && st->ns2 == NULL)) {
		bench_row_error(ctx, id, label, "namespace missing after node_open");
		return -ENOENT;
	}
	return 0;
}

static struct dev_spec
small_spec(struct bench_device_state *st, bool fresh, bool cold)
{
	return (struct dev_spec){ .ns = "dev", .file = FILE_SMALL, .size = st->small_filesize,
	    .no_post_write_cache = cold, .lwm = -1, .fresh = fresh };
}

/* The 1 KiB data set exists in FILE_SMALL (device.write left it, or one
 * untimed pass of creates now). */
static int
dev_need_small(struct bench_ctx *ctx, const char *id, const char *label)
{
	struct bench_device_state *st = ctx->device;
	struct dev_spec sp = small_spec(st, true, false);
	struct dev_job job = { .op = OP_FILL, .keys = st->small_keys, .rec_size = SMALL_RECORD,
	    .sample_mask = 15 };
	struct bench_phase p;
	uint64_t t0 = bench_now_ns();
	int rc;

	if (st->small_loaded)
		return 0;
	rc = dev_node_open(ctx, &sp, NULL, id, label, NULL);
	if (rc != 0)
		return rc;
	job.ns = st->ns;
	rc = dev_phase(ctx, &job, ctx->opt.threads, 0, id, label, &p);
	if (rc != 0)
		return rc;
	st->small_loaded = true;
	bench_progress("device: loaded %llu records of 1 KiB (%.1f s)",
	    (unsigned long long)st->small_keys, (double)(bench_now_ns() - t0) / 1e9);
	return 0;
}

/* Log lines of the cold start written after offset `from`. */
static void
cold_start_log(struct bench_device_state *st, off_t from, uint64_t *wblocks, double *scan_s,
    uint64_t *records, uint64_t *high_water)
{
	FILE *f = fopen(st->log_path, "re");
	char line[1024];

	*wblocks = *records = *high_water = 0;
	*scan_s = 0;
	if (f == NULL)
		return;
	if (fseeko(f, from, SEEK_SET) != 0) {
		fclose(f);
		return;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		const char *p = strstr(line, "cold start scanned ");
		unsigned long long a, b, c;
		double s;

		if (p != NULL && sscanf(p, "cold start scanned %llu wblocks (%llu MiB) in %lf s",
		    &a, &b, &s) == 3) {
			*wblocks += a;
			if (s > *scan_s)
				*scan_s = s;
			p = strstr(p, "): ");
			if (p != NULL && sscanf(p, "): %llu records", &c) == 1)
				*records += c;
		}
		p = strstr(line, "high water ");
		if (p != NULL && sscanf(p, "high water %llu", &a) == 1)
			*high_water = a;
	}
	fclose(f);
}

/* Close the node cleanly and open FILE_SMALL again: a cold start that
 * leaves nothing of the data in RAM (post-write-cache 0). */
static int
dev_cold_open(struct bench_ctx *ctx, const char *id, const char *label, double *open_s,
    uint64_t *wblocks, double *scan_s, uint64_t *records)
{
	struct bench_device_state *st = ctx->device;
	struct dev_spec sp = small_spec(st, false, true);
	struct stat sb;
	uint64_t hw;
	off_t from;
	int rc;

	dev_node_close(st, true);
	from = stat(st->log_path, &sb) == 0 ? sb.st_size : 0;
	rc = dev_node_open(ctx, &sp, NULL, id, label, open_s);
	if (rc != 0)
		return rc;
	cold_start_log(st, from, wblocks, scan_s, records, &hw);
	if (*wblocks == 0) {
		bench_row_error(ctx, id, label, "no cold start scan in the log (%s)", st->log_path);
		return -EPROTO;
	}
	st->scanned_bytes = *wblocks * DEV_WBS;
	st->small_cold = true;
	return 0;
}

/* ---- device.write ------------------------------------------------------------- */

int
bench_device_write(struct bench_ctx *ctx, const struct bench_def *def)
{
	static const char *const label_m = "1 KiB write, memory engine (CPU limit)";
	static const char *const label_d = "1 KiB write, device engine";
	struct bench_device_state *st;
	struct bench_phase sum_m = { 0 }, sum_d = { 0 }, p;
	struct bench_row *row;
	struct dev_stats s;
	struct dev_job jm = { .op = OP_SEQ_WRITE, .rec_size = SMALL_RECORD, .sample_mask = 15 };
	struct dev_job jd;
	unsigned phases = ctx->opt.quick ? 4 : 8;
	double d = ctx->opt.duration_s * 2 / phases;
	uint64_t mem_size;
	char n1[32], n2[32], sz[32];
	int rc;

	rc = dev_ready(ctx, label_d);
	if (rc != 0)
		return rc < 0 ? rc : 0;
	st = ctx->device;
	jm.keys = st->small_keys;
	jd = jm;

	/* One node, two namespaces: the device engine on a fresh file and the
	 * same workload on the memory engine (the CPU-bound limit), in short
	 * phases M D D M (M D D M) so a spell of load from elsewhere lands on
	 * both.  Each side creates its keys in its first phase. */
	mem_size = pow2_at_least(st->small_keys * (SMALL_RECORD + 128) * 3, 256ull << 20);
	struct dev_spec ms = { .ns = "mem", .memory = true, .size = mem_size, .lwm = -1 };
	struct dev_spec ds = small_spec(st, true, false);
	st->small_loaded = false;
	rc = dev_node_open(ctx, &ds, &ms, "", label_d, NULL);
	if (rc != 0)
		return rc;
	jd.ns = st->ns;
	jm.ns = st->ns2;
	for (unsigned r = 0; r < phases && !bench_interrupted; r++) {
		bool mem = r % 4 == 0 || r % 4 == 3;
		struct dev_job *job = mem ? &jm : &jd;

		rc = dev_phase(ctx, job, ctx->opt.threads, d, mem ? "memory" : "device",
		    mem ? label_m : label_d, &p);
		if (rc != 0)
			return rc;
		job->loaded = true;
		phase_accumulate(mem ? &sum_m : &sum_d, &p);
	}
	st->small_loaded = true;

	row = bench_row_add(ctx, "memory", label_m);
	if (row == NULL)
		return -ENOSPC;
	bench_row_from_phase(row, &sum_m);
	snprintf(row->note, sizeof(row->note), "data-size %s; %s creates, then %s overwrites",
	    fmt_size(sz, sizeof(sz), mem_size), bench_fmt_count(n1, sizeof(n1), (double)jm.keys),
	    bench_fmt_count(n2, sizeof(n2), (double)(sum_m.ops - jm.keys)));
	double mem_rate = row->value;

	dev_stats_get(st, &s);
	row = bench_row_add(ctx, "device", label_d);
	if (row == NULL)
		return -ENOSPC;
	bench_row_from_phase(row, &sum_d);
	snprintf(row->note, sizeof(row->note), "filesize %s; %s creates + %s overwrites; %llu wblocks "
	    "written (%.0f MB/s to the device), write_waits %llu",
	    fmt_size(sz, sizeof(sz), st->small_filesize), bench_fmt_count(n1, sizeof(n1), (double)jd.keys),
	    bench_fmt_count(n2, sizeof(n2), (double)(sum_d.ops - jd.keys)),
	    (unsigned long long)s.storage_writes,
	    sum_d.seconds > 0 ? (double)s.storage_writes * DEV_WBS / sum_d.seconds / 1e6 : 0,
	    (unsigned long long)s.write_waits);
	bench_row_judge(ctx, row, TARGET_WRITE_ABS, 500000, true);
	double dev_rate = row->value;

	row = bench_row_add(ctx, "ratio", "1 KiB write device/memory");
	if (row == NULL)
		return -ENOSPC;
	row->threads = ctx->opt.threads;
	row->unit = "x";
	row->value = mem_rate > 0 ? dev_rate / mem_rate : 0;
	bench_row_judge(ctx, row, TARGET_WRITE_RATIO, def->target_bound, true);
	return 0;
}

/* ---- device.write_large --------------------------------------------------------- */

static unsigned
dev_rounds(const struct bench_ctx *ctx)
{
	return ctx->opt.quick ? 1 : 2;
}

static void
ratio_row(struct bench_ctx *ctx, const struct bench_def *def, const char *label, double num,
    double den, unsigned threads)
{
	struct bench_row *row = bench_row_add(ctx, "ratio", label);

	if (row == NULL)
		return;
	row->threads = threads;
	row->unit = "x";
	row->value = den > 0 ? num / den : 0;
	if (def->target != NULL)
		bench_row_judge(ctx, row, def->target, def->target_bound, true);
}

/* Without fio the peer and the ratio are skipped (the engine row stands). */
static bool
fio_or_skip(struct bench_ctx *ctx, const char *fio_label, const char *ratio_label)
{
	if (ctx->device->fio[0])
		return true;
	dev_skip(ctx, "fio", fio_label, "fio not found in PATH");
	dev_skip(ctx, "ratio", ratio_label, "no peer without fio");
	return false;
}

int
bench_device_write_large(struct bench_ctx *ctx, const struct bench_def *def)
{
	static const char *const label = "128 KiB write, device engine";
	struct bench_device_state *st;
	struct bench_phase sum = { 0 }, p;
	struct bench_row *row;
	struct dev_stats s;
	uint64_t keys = ctx->opt.quick ? 256 : 2048;
	uint64_t fsize = ctx->opt.quick ? 1ull << 30 : 4ull << 30;
	uint64_t fio_size = ctx->opt.quick ? 512ull << 20 : 2ull << 30;
	unsigned rounds = dev_rounds(ctx);
	double d = ctx->opt.duration_s / rounds, fio_bytes = 0, fio_s = 0;
	char fio_file[PATH_MAX + 16], size_arg[48], rt_arg[48], sz[32], why[200];
	struct dev_job job = { .op = OP_SEQ_WRITE, .keys = keys, .rec_size = LARGE_RECORD,
	    .sample_mask = 0 };
	bool have_fio;
	int rc;

	rc = dev_ready(ctx, label);
	if (rc != 0)
		return rc < 0 ? rc : 0;
	st = ctx->device;
	dev_node_close(st, true);   /* the 1 KiB data set stays in its file */
	struct dev_spec sp = { .ns = "large", .file = FILE_LARGE, .size = fsize, .lwm = -1,
	    .fresh = true };
	rc = dev_node_open(ctx, &sp, NULL, "", label, NULL);
	if (rc != 0)
		goto out;
	job.ns = st->ns;
	have_fio = st->fio[0] != '\0';
	if (bench_path(fio_file, sizeof(fio_file), "--filename=%s/%s", st->dir, FILE_FIO) != 0) {
		bench_row_error(ctx, "", label, "path too long");
		rc = -ENAMETOOLONG;
		goto out;
	}
	snprintf(size_arg, sizeof(size_arg), "--size=%llu", (unsigned long long)fio_size);
	snprintf(rt_arg, sizeof(rt_arg), "--runtime=%llums", (unsigned long long)(d * 1000));
	for (unsigned r = 0; r < rounds * 2 && !bench_interrupted; r++) {
		/* engine, fio | fio, engine | ... */
		bool engine = ((r / 2) % 2 == 0) == (r % 2 == 0);

		if (engine) {
			rc = dev_phase(ctx, &job, ctx->opt.threads, d, "", label, &p);
			if (rc != 0)
				goto out;
			phase_accumulate(&sum, &p);
		} else if (have_fio) {
			const char *const opts[] = { fio_file, "--rw=write", "--bs=1M", "--iodepth=8",
			    "--ioengine=io_uring", "--direct=1", size_arg, "--time_based", rt_arg, NULL };
			struct bench_fio_out fo;

			rc = fio_run(ctx, "seqwrite", "write", opts, d + 120, &fo, why, sizeof(why));
			if (rc != 0) {
				fio_failed(ctx, "fio seq write 1M QD8", rc, why);
				goto out;
			}
			fio_bytes += fo.io_bytes;
			fio_s += fo.runtime_s;
		}
	}
	dev_stats_get(st, &s);
	row = bench_row_add(ctx, "engine", label);
	if (row == NULL) {
		rc = -ENOSPC;
		goto out;
	}
	bench_row_from_phase(row, &sum);
	row->unit = "MB/s";
	row->value = row->mb_per_s;
	snprintf(row->note, sizeof(row->note), "%llu keys, %u round%s; filesize %s; 7 records per "
	    "1 MiB wblock: %.0f MB/s reached the device", (unsigned long long)keys, rounds,
	    rounds == 1 ? "" : "s", fmt_size(sz, sizeof(sz), fsize),
	    sum.seconds > 0 ? (double)s.storage_writes * DEV_WBS / sum.seconds / 1e6 : 0);
	double eng_mb = row->value;
	if (!fio_or_skip(ctx, "fio seq write 1M QD8", "128 KiB write engine/fio"))
		goto out;
	row = bench_row_add(ctx, "fio", "fio seq write 1M QD8");
	if (row == NULL) {
		rc = -ENOSPC;
		goto out;
	}
	row->unit = "MB/s";
	row->seconds = fio_s;
	row->value = row->mb_per_s = fio_s > 0 ? fio_bytes / fio_s / 1e6 : 0;
	snprintf(row->note, sizeof(row->note), "io_uring, direct=1, size %s, same directory",
	    fmt_size(sz, sizeof(sz), fio_size));
	ratio_row(ctx, def, "128 KiB write engine/fio", eng_mb, row->value, ctx->opt.threads);
out:
	dev_node_close(st, false);
	file_remove(st, FILE_LARGE);
	file_remove(st, FILE_FIO);
	return rc;
}

/* ---- device.cold_start ---------------------------------------------------------- */

static int
fio_seqread_file(struct bench_ctx *ctx, const char *name, const char *tag, uint64_t bytes,
    struct bench_fio_out *fo, char *why, size_t why_size);

static int
fio_seqread(struct bench_ctx *ctx, const char *tag, uint64_t bytes, struct bench_fio_out *fo,
    char *why, size_t why_size)
{
	return fio_seqread_file(ctx, FILE_SMALL, tag, bytes, fo, why, why_size);
}

static int
fio_seqread_file(struct bench_ctx *ctx, const char *name, const char *tag, uint64_t bytes,
    struct bench_fio_out *fo, char *why, size_t why_size)
{
	struct bench_device_state *st = ctx->device;
	char file[PATH_MAX + 16], size_arg[48], off_arg[48];
	const char *const opts[] = { file, "--rw=read", "--bs=1M", "--iodepth=4",
	    "--ioengine=io_uring", "--direct=1", "--readonly", off_arg, size_arg, NULL };

	if (bench_path(file, sizeof(file), "--filename=%s/%s", st->dir, name) != 0) {
		snprintf(why, why_size, "path too long");
		return -ENAMETOOLONG;
	}
	snprintf(off_arg, sizeof(off_arg), "--offset=%llu", (unsigned long long)DEV_HEADER_BYTES);
	snprintf(size_arg, sizeof(size_arg), "--size=%llu", (unsigned long long)bytes);
	return fio_run(ctx, tag, "read", opts, 300, fo, why, why_size);
}

int
bench_device_cold_start(struct bench_ctx *ctx, const struct bench_def *def)
{
	static const char *const label = "cold start scan (node_open)";
	struct bench_device_state *st;
	struct bench_fio_out f1 = { 0 }, f2 = { 0 };
	struct bench_row *row;
	uint64_t wblocks, records;
	double open_s, scan_s;
	char why[200], n1[32];
	bool have_fio;
	int rc;

	rc = dev_ready(ctx, label);
	if (rc != 0)
		return rc < 0 ? rc : 0;
	st = ctx->device;
	rc = dev_need_small(ctx, "", label);
	if (rc != 0)
		return rc;
	/* The scan range is known only after a first cold start, so the fio
	 * pass before it covers what the file holds now: close cleanly first
	 * (flushing everything) and take the range from the header's mark via
	 * one untimed open when no cold start has happened yet. */
	if (st->scanned_bytes == 0) {
		rc = dev_cold_open(ctx, "", label, &open_s, &wblocks, &scan_s, &records);
		if (rc != 0)
			return rc;
	}
	have_fio = st->fio[0] != '\0';
	dev_node_close(st, true);
	if (have_fio) {
		rc = fio_seqread(ctx, "seqread1", st->scanned_bytes, &f1, why, sizeof(why));
		if (rc != 0)
			return fio_failed(ctx, "fio seq read 1M QD4", rc, why);
	}
	rc = dev_cold_open(ctx, "", label, &open_s, &wblocks, &scan_s, &records);
	if (rc != 0)
		return rc;
	if (have_fio) {
		rc = fio_seqread(ctx, "seqread2", st->scanned_bytes, &f2, why, sizeof(why));
		if (rc != 0)
			return fio_failed(ctx, "fio seq read 1M QD4", rc, why);
	}
	row = bench_row_add(ctx, "engine", label);
	if (row == NULL)
		return -ENOSPC;
	row->unit = "MB/s";
	row->ops = records;
	row->seconds = open_s;
	row->value = row->mb_per_s = (double)st->scanned_bytes / open_s / 1e6;
	snprintf(row->note, sizeof(row->note), "%llu MiB (%llu wblocks) in %.2f s, scan alone %.2f s; "
	    "%s records (%.0f/s)", (unsigned long long)(st->scanned_bytes >> 20),
	    (unsigned long long)wblocks, open_s, scan_s, bench_fmt_count(n1, sizeof(n1), (double)records),
	    (double)records / open_s);
	double eng = row->value;
	if (!fio_or_skip(ctx, "fio seq read 1M QD4", "cold start engine/fio"))
		return 0;
	row = bench_row_add(ctx, "fio", "fio seq read 1M QD4");
	if (row == NULL)
		return -ENOSPC;
	row->unit = "MB/s";
	row->seconds = f1.runtime_s + f2.runtime_s;
	row->value = row->mb_per_s = (f1.io_bytes + f2.io_bytes) / row->seconds / 1e6;
	snprintf(row->note, sizeof(row->note), "same file and range, io_uring, direct=1; before %.0f, "
	    "after %.0f MB/s", f1.bw_bytes / 1e6, f2.bw_bytes / 1e6);
	ratio_row(ctx, def, "cold start engine/fio", eng, row->value, 0);
	return 0;
}

/* ---- device.read ---------------------------------------------------------------- */

int
bench_device_read(struct bench_ctx *ctx, const struct bench_def *def)
{
	static const char *const label = "random 1 KiB read, not in RAM";
	struct bench_device_state *st;
	struct bench_phase sum = { 0 }, p;
	struct bench_row *row;
	struct dev_stats s0, s1;
	unsigned rounds = dev_rounds(ctx), t = ctx->opt.threads;
	double d = ctx->opt.duration_s / rounds, fio_ios = 0, fio_s = 0, open_s, scan_s;
	uint64_t wblocks, records, data_end = 0;
	char file[PATH_MAX + 16], path[PATH_MAX], size_arg[48], off_arg[48], rt_arg[48], jobs_arg[32];
	char why[200], fio_label[48];
	struct dev_job job = { .op = OP_RAND_READ, .rec_size = SMALL_RECORD, .sample_mask = 0 };
	bool have_fio;
	int rc, fd;

	rc = dev_ready(ctx, label);
	if (rc != 0)
		return rc < 0 ? rc : 0;
	st = ctx->device;
	rc = dev_need_small(ctx, "", label);
	if (rc != 0)
		return rc;
	if (!st->small_cold) {
		rc = dev_cold_open(ctx, "", label, &open_s, &wblocks, &scan_s, &records);
		if (rc != 0)
			return rc;
	}
	job.ns = st->ns;
	job.keys = st->small_keys;
	have_fio = st->fio[0] != '\0';
	/* fio reads where data is: up to the first hole after the header (the
	 * engine fills wblocks in order; above the mark the file is sparse and
	 * a hole reads without touching the disk). */
	if (file_path(st, path, sizeof(path), FILE_SMALL) != 0 ||
	    bench_path(file, sizeof(file), "--filename=%s", path) != 0) {
		bench_row_error(ctx, "", label, "path too long");
		return -ENAMETOOLONG;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		off_t h = lseek(fd, (off_t)DEV_HEADER_BYTES, SEEK_HOLE);

		if (h > (off_t)DEV_HEADER_BYTES)
			data_end = (uint64_t)h;
		close(fd);
	}
	if (data_end == 0)
		data_end = DEV_HEADER_BYTES + st->scanned_bytes;
	snprintf(off_arg, sizeof(off_arg), "--offset=%llu", (unsigned long long)DEV_HEADER_BYTES);
	snprintf(size_arg, sizeof(size_arg), "--size=%llu",
	    (unsigned long long)(data_end - DEV_HEADER_BYTES));
	snprintf(rt_arg, sizeof(rt_arg), "--runtime=%llums", (unsigned long long)(d * 1000));
	snprintf(jobs_arg, sizeof(jobs_arg), "--numjobs=%u", t);
	snprintf(fio_label, sizeof(fio_label), "fio 4K randread psync, %u job%s", t, t == 1 ? "" : "s");
	dev_stats_get(st, &s0);
	for (unsigned r = 0; r < rounds * 2 && !bench_interrupted; r++) {
		bool engine = ((r / 2) % 2 == 0) == (r % 2 == 0);

		if (engine) {
			job.salt = r;
			rc = dev_phase(ctx, &job, t, d, "", label, &p);
			if (rc != 0)
				return rc;
			phase_accumulate(&sum, &p);
		} else if (have_fio) {
			const char *const opts[] = { file, "--rw=randread", "--bs=4k", "--ioengine=psync",
			    jobs_arg, "--group_reporting", "--direct=1", "--readonly", "--norandommap",
			    "--randrepeat=0", off_arg, size_arg, "--time_based", rt_arg, NULL };
			struct bench_fio_out fo;

			rc = fio_run(ctx, "randread", "read", opts, d + 120, &fo, why, sizeof(why));
			if (rc != 0)
				return fio_failed(ctx, fio_label, rc, why);
			fio_ios += fo.iops * fo.runtime_s;
			fio_s += fo.runtime_s;
		}
	}
	dev_stats_get(st, &s1);
	row = bench_row_add(ctx, "engine", label);
	if (row == NULL)
		return -ENOSPC;
	bench_row_from_phase(row, &sum);
	uint64_t reads = s1.storage_reads - s0.storage_reads;
	snprintf(row->note, sizeof(row->note), "%llu keys after a cold start, post-write-cache 0; "
	    "%llu storage reads, cache_read_pct %llu (since open); %u round%s",
	    (unsigned long long)st->small_keys, (unsigned long long)reads,
	    (unsigned long long)s1.cache_read_pct, rounds, rounds == 1 ? "" : "s");
	double eng = row->value;
	if (!fio_or_skip(ctx, fio_label, "random read engine/fio"))
		return 0;
	row = bench_row_add(ctx, "fio", fio_label);
	if (row == NULL)
		return -ENOSPC;
	row->threads = t;
	row->unit = "ops/s";
	row->seconds = fio_s;
	row->ops = (uint64_t)fio_ios;
	row->value = fio_s > 0 ? fio_ios / fio_s : 0;
	row->mb_per_s = row->value * 4096 / 1e6;
	snprintf(row->note, sizeof(row->note), "same file, %llu MiB with data, direct=1, QD %u "
	    "(one pread per job)", (unsigned long long)((data_end - DEV_HEADER_BYTES) >> 20), t);
	ratio_row(ctx, def, "random read engine/fio", eng, row->value, t);
	return 0;
}

/* ---- device.defrag --------------------------------------------------------------- */

struct defrag_run {
	struct bench_phase p;
	struct dev_stats before, after, filled;
	bool full;                  /* ENOSPC ended the measured phase */
	double io_read, io_write;   /* storage bytes this process moved in the phase, < 0 = unknown */
};

/* Bytes this process had the storage layer read and write so far
 * (/proc/self/io; direct I/O included), or -1 each if unknown. */
static void
proc_io_get(double *rd, double *wr)
{
	FILE *f = fopen("/proc/self/io", "re");
	char line[128];
	unsigned long long v;

	*rd = *wr = -1;
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "read_bytes: %llu", &v) == 1)
			*rd = (double)v;
		else if (sscanf(line, "write_bytes: %llu", &v) == 1)
			*wr = (double)v;
	}
	fclose(f);
}

static int
defrag_run(struct bench_ctx *ctx, const char *id, const char *label, const char *file,
    uint64_t filesize, int lwm, uint64_t keys, struct defrag_run *out)
{
	struct bench_device_state *st = ctx->device;
	struct dev_spec sp = { .ns = "defrag", .file = file, .size = filesize, .lwm = lwm, .fresh = true };
	struct dev_job job = { .op = OP_FILL, .keys = keys, .rec_size = DEFRAG_RECORD,
	    .sample_mask = 15 };
	struct bench_phase p;
	unsigned t = ctx->opt.threads;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = dev_node_open(ctx, &sp, NULL, id, label, NULL);
	if (rc != 0)
		goto out;
	job.ns = st->ns;
	rc = dev_phase(ctx, &job, t, 0, id, label, &p);          /* fill */
	if (rc != 0)
		goto out;
	dev_stats_get(st, &out->filled);
	/* Warm-up: 1.5 overwrites per key, so wblocks written since the fill
	 * have decayed too and defrag is in its steady state. */
	job.op = OP_RAND_WRITE;
	job.enospc_stops = true;
	job.count_per_thread = keys * 3 / 2 / t;
	job.salt = 1;
	rc = dev_phase(ctx, &job, t, 0, id, label, &p);
	if (rc != 0)
		goto out;
	dev_stats_get(st, &out->before);
	job.count_per_thread = 0;
	job.salt = 2;
	job.full = 0;  /* the measured phase reports its own ENOSPC */
	double rd0, wr0;
	proc_io_get(&rd0, &wr0);
	rc = dev_phase(ctx, &job, t, ctx->opt.duration_s, id, label, &out->p);
	if (rc != 0)
		goto out;
	proc_io_get(&out->io_read, &out->io_write);
	if (rd0 < 0 || wr0 < 0 || out->io_read < 0 || out->io_write < 0) {
		out->io_read = out->io_write = -1;
	} else {
		out->io_read -= rd0;
		out->io_write -= wr0;
	}
	out->full = atomic_load_relaxed(&job.full) != 0;
	dev_stats_get(st, &out->after);
out:
	dev_node_close(st, false);
	file_remove(st, file);
	return rc;
}

/*
 * What 0.70 would take of the device.  The defrag run's device traffic
 * (/proc/self/io: its reads and writes in the measured phase, direct I/O
 * included) per client write, times 0.70 of the no-defrag run's writes/s,
 * is the traffic the target needs; rows set it beside what the device did:
 * fio's random 1 MiB reads and writes in the defrag run's proportion (same
 * file size, a deep queue: this VM's disk gains up to QD256), the defrag
 * run's own traffic, and the no-defrag run's (writes only).  No target:
 * the target row is the ratio above; these say what stands in its way.
 */
static int
defrag_needed(struct bench_ctx *ctx, const struct defrag_run *a, const struct defrag_run *b,
    uint64_t fsize, double without)
{
	static const char *const label = "fio randrw 1M at the defrag mix";
	struct bench_device_state *st = ctx->device;
	double rd = a->io_read, wr = a->io_write;
	char fio_file[PATH_MAX + 16], size_arg[48], rt_arg[48], mix_arg[48], sz[32], why[200];
	struct bench_fio_out fr, fw;
	struct bench_row *row;
	int rc, mix;

	if (!fio_or_skip(ctx, label, "device traffic 0.70 would need"))
		return 0;
	if (rd < 0 || wr < 0) {
		dev_skip(ctx, "fio", label, "no /proc/self/io: the defrag run's device traffic is unknown");
		return 0;
	}
	if (a->p.ops == 0 || a->p.seconds <= 0 || rd + wr <= 0) {
		dev_skip(ctx, "fio", label, "the defrag run moved nothing");
		return 0;
	}
	mix = (int)(100.0 * rd / (rd + wr) + 0.5);
	if (bench_path(fio_file, sizeof(fio_file), "--filename=%s/%s", st->dir, FILE_FIO) != 0) {
		bench_row_error(ctx, "fio", label, "path too long");
		return -ENAMETOOLONG;
	}
	snprintf(size_arg, sizeof(size_arg), "--size=%llu", (unsigned long long)fsize);
	snprintf(rt_arg, sizeof(rt_arg), "--runtime=%llums", (unsigned long long)(ctx->opt.duration_s * 1000));
	snprintf(mix_arg, sizeof(mix_arg), "--rwmixread=%d", mix);
	const char *const opts[] = { fio_file, "--rw=randrw", mix_arg, "--bs=1M", "--iodepth=256",
	    "--ioengine=io_uring", "--direct=1", size_arg, "--time_based", rt_arg, NULL };
	rc = fio_run(ctx, "randrw", "read", opts, ctx->opt.duration_s + 120, &fr, why, sizeof(why));
	if (rc == 0) {
		char json[PATH_MAX];

		rc = bench_path(json, sizeof(json), "%s/fio-randrw.json", ctx->tmp);
		if (rc == 0)
			rc = bench_fio_parse(json, "write", &fw, why, sizeof(why));
	}
	file_remove(st, FILE_FIO);
	if (rc != 0)
		return fio_failed(ctx, label, rc, why);
	double fio_bps = fr.bw_bytes + fw.bw_bytes;
	double engine_bps = (rd + wr) / a->p.seconds;
	double per_op = (rd + wr) / (double)a->p.ops;
	row = bench_row_add(ctx, "fio", label);
	if (row == NULL)
		return -ENOSPC;
	row->unit = "MB/s";
	row->seconds = fr.runtime_s;
	row->value = row->mb_per_s = fio_bps / 1e6;
	snprintf(row->note, sizeof(row->note), "%d%% reads (the defrag run's), QD256, direct=1, size %s: "
	    "%.0f read + %.0f write MB/s; the defrag run moved %.0f MB/s (%.2f of it)", mix,
	    fmt_size(sz, sizeof(sz), fsize), fr.bw_bytes / 1e6, fw.bw_bytes / 1e6, engine_bps / 1e6,
	    fio_bps > 0 ? engine_bps / fio_bps : 0);
	row = bench_row_add(ctx, "needed", "device traffic 0.70 would need");
	if (row == NULL)
		return -ENOSPC;
	row->unit = "MB/s";
	row->value = row->mb_per_s = 0.70 * without * per_op / 1e6;
	double nd_bps = b->io_read >= 0 && b->p.seconds > 0 ? (b->io_read + b->io_write) / b->p.seconds : 0;
	snprintf(row->note, sizeof(row->note), "%.0f device bytes per write x 0.70 of %.0f writes/s; "
	    "the device did: fio mix %.0f, defrag run %.0f, no-defrag run (writes) %.0f MB/s",
	    per_op, without, fio_bps / 1e6, engine_bps / 1e6, nd_bps / 1e6);
	return 0;
}

int
bench_device_defrag(struct bench_ctx *ctx, const struct bench_def *def)
{
	static const char *const label = "4 KiB overwrite, 50% fill";
	static const char *const label_nd = "4 KiB overwrite, defrag off";
	struct bench_device_state *st;
	struct defrag_run a, b;
	struct bench_row *row;
	uint64_t fsize = ctx->opt.quick ? 256ull << 20 : 1ull << 30;
	uint64_t bigsize = ctx->opt.quick ? 8ull << 30 : 32ull << 30;
	uint64_t keys = (fsize / 2) / DEFRAG_RECORD_ON_DEVICE;
	char sz[32], sz2[32];
	int rc;

	rc = dev_ready(ctx, label);
	if (rc != 0)
		return rc < 0 ? rc : 0;
	st = ctx->device;
	dev_node_close(st, true);
	rc = defrag_run(ctx, "defrag", label, FILE_DEFRAG, fsize, -1, keys, &a);
	if (rc != 0)
		return rc;
	rc = defrag_run(ctx, "no_defrag", label_nd, FILE_NODEFRAG, bigsize, 0, keys, &b);
	if (rc != 0)
		return rc;

	row = bench_row_add(ctx, "defrag", label);
	if (row == NULL)
		return -ENOSPC;
	bench_row_from_phase(row, &a.p);
	snprintf(row->note, sizeof(row->note), "filesize %s, %llu keys, fill %llu%%; in the phase: "
	    "defrag_reads %llu, defrag_writes %llu, defrag_records %llu, write_waits %llu (totals %llu/%llu)%s",
	    fmt_size(sz, sizeof(sz), fsize), (unsigned long long)keys,
	    (unsigned long long)a.filled.data_used_pct,
	    (unsigned long long)(a.after.defrag_reads - a.before.defrag_reads),
	    (unsigned long long)(a.after.defrag_writes - a.before.defrag_writes),
	    (unsigned long long)(a.after.defrag_records - a.before.defrag_records),
	    (unsigned long long)(a.after.write_waits - a.before.write_waits),
	    (unsigned long long)a.after.defrag_reads, (unsigned long long)a.after.defrag_writes,
	    a.full ? "; ENOSPC ended it: defrag fell behind" : "");
	double with = row->value;
	row = bench_row_add(ctx, "no_defrag", label_nd);
	if (row == NULL)
		return -ENOSPC;
	bench_row_from_phase(row, &b.p);
	snprintf(row->note, sizeof(row->note), "filesize %s, defrag-lwm-pct 0; defrag_reads %llu, "
	    "free wblocks at end %llu of %llu%s", fmt_size(sz2, sizeof(sz2), bigsize),
	    (unsigned long long)b.after.defrag_reads, (unsigned long long)b.after.free_wblocks,
	    (unsigned long long)b.after.total_wblocks, b.full ? "; device filled: phase cut short" : "");
	double without = row->value;
	ratio_row(ctx, def, "defrag/no-defrag", with, without, ctx->opt.threads);
	return defrag_needed(ctx, &a, &b, fsize, without);
}

/* ---- cleanup ------------------------------------------------------------------- */

/* ---- shadow: the memory engine with a shadow file ----------------------------- */

#define FILE_SHADOW "shadow.dat"
#define TARGET_SHADOW "target >= 1,000,000 ops/s on 2 cores, shadow_write_q bounded"

/*
 * Issue #4's rows: 1 KiB writes and random reads on a memory namespace
 * whose every write block is also written to a shadow file, then the cold
 * start that reads the shadow back into RAM, against fio's sequential read
 * of the same file range.  The write row also reports the shadow write
 * queue at its deepest (sampled every phase) and the writers' waits.
 */
int
bench_shadow(struct bench_ctx *ctx, const struct bench_def *def)
{
	static const char *const label_w = "1 KiB write, memory + shadow";
	static const char *const label_r = "1 KiB random read, memory + shadow";
	static const char *const label_c = "cold start from the shadow";
	struct bench_device_state *st;
	struct bench_phase sum_w = { 0 }, sum_r = { 0 }, p;
	struct bench_row *row;
	struct bench_fio_out f1 = { 0 };
	unsigned phases = ctx->opt.quick ? 2 : 4;
	double d = ctx->opt.duration_s / phases;
	uint64_t max_q = 0, size;
	char why[200], n1[32], sz[32];
	double open_s;
	int rc;

	rc = dev_ready(ctx, label_w);
	if (rc != 0)
		return rc < 0 ? rc : 0;
	st = ctx->device;
	size = pow2_at_least(st->small_keys * (SMALL_RECORD + 128) * 3, 256ull << 20);
	struct dev_spec sp = { .ns = "shadow", .memory = true, .shadow = true, .file = FILE_SHADOW,
	    .size = size, .lwm = -1, .fresh = true };
	struct dev_job jw = { .op = OP_SEQ_WRITE, .keys = st->small_keys, .rec_size = SMALL_RECORD,
	    .sample_mask = 15 };
	struct dev_job jr = { .op = OP_RAND_READ, .keys = st->small_keys, .rec_size = SMALL_RECORD,
	    .sample_mask = 15 };

	rc = dev_node_open(ctx, &sp, NULL, "", label_w, NULL);
	if (rc != 0)
		return rc;
	jw.ns = jr.ns = st->ns;
	for (unsigned r = 0; r < phases && !bench_interrupted; r++) {
		rc = dev_phase(ctx, &jw, ctx->opt.threads, d, "shadow write", label_w, &p);
		if (rc != 0)
			return rc;
		jw.loaded = true;
		phase_accumulate(&sum_w, &p);
		struct dev_stats s;
		dev_stats_get(st, &s);
		if (s.write_q > max_q)
			max_q = s.write_q;
	}
	for (unsigned r = 0; r < phases && !bench_interrupted; r++) {
		rc = dev_phase(ctx, &jr, ctx->opt.threads, d, "shadow read", label_r, &p);
		if (rc != 0)
			return rc;
		phase_accumulate(&sum_r, &p);
	}
	struct dev_stats s;
	dev_stats_get(st, &s);
	row = bench_row_add(ctx, "write", label_w);
	if (row == NULL)
		return -ENOSPC;
	bench_row_from_phase(row, &sum_w);
	snprintf(row->note, sizeof(row->note), "data-size %s; %s keys; shadow_write_q at most %llu "
	    "(max-write-cache allows 64), write_waits %llu; defrag moved %llu records (%.2f per write)",
	    fmt_size(sz, sizeof(sz), size), bench_fmt_count(n1, sizeof(n1), (double)jw.keys),
	    (unsigned long long)max_q, (unsigned long long)s.write_waits,
	    (unsigned long long)s.defrag_records,
	    sum_w.ops ? (double)s.defrag_records / (double)sum_w.ops : 0.0);
	bench_row_judge(ctx, row, TARGET_SHADOW, 1e6, true);
	row = bench_row_add(ctx, "read", label_r);
	if (row == NULL)
		return -ENOSPC;
	bench_row_from_phase(row, &sum_r);
	snprintf(row->note, sizeof(row->note), "served from RAM (cache_read_pct %llu)",
	    (unsigned long long)s.cache_read_pct);
	bench_row_judge(ctx, row, TARGET_SHADOW, 1e6, true);

	/* Cold start: the shadow read back into RAM, against fio over the
	 * bytes the shadow really holds (its sparse rest reads as free zeros). */
	dev_node_close(st, true);
	uint64_t bytes = size;
	char spath[PATH_MAX];
	struct stat fsb;
	if (file_path(st, spath, sizeof(spath), FILE_SHADOW) == 0 && stat(spath, &fsb) == 0 &&
	    (uint64_t)fsb.st_blocks * 512 > DEV_HEADER_BYTES + DEV_WBS)
		bytes = (uint64_t)fsb.st_blocks * 512 - DEV_HEADER_BYTES;
	bool have_fio = st->fio[0] != '\0';
	if (have_fio) {
		rc = fio_seqread_file(ctx, FILE_SHADOW, "shadowread", bytes, &f1, why, sizeof(why));
		if (rc != 0)
			return fio_failed(ctx, "fio seq read 1M QD4 (shadow)", rc, why);
	}
	sp.fresh = false;
	struct stat sb;
	off_t from = stat(st->log_path, &sb) == 0 ? sb.st_size : 0;
	rc = dev_node_open(ctx, &sp, NULL, "", label_c, &open_s);
	if (rc != 0)
		return rc;
	uint64_t wblocks, records, hw;
	double scan_s;
	cold_start_log(st, from, &wblocks, &scan_s, &records, &hw);
	dev_node_close(st, true);
	row = bench_row_add(ctx, "cold_start", label_c);
	if (row == NULL)
		return -ENOSPC;
	/* The rate is the scan's (reading the shadow into RAM and indexing
	 * it); node_open also maps and touches the namespace's whole data-size
	 * of RAM first, which the note reports. */
	row->unit = "MB/s";
	row->ops = records;
	row->seconds = scan_s > 0 ? scan_s : open_s;
	row->value = row->mb_per_s = (double)wblocks * DEV_WBS / row->seconds / 1e6;
	snprintf(row->note, sizeof(row->note), "%llu MiB of shadow read into RAM in %.2f s (%s "
	    "records); node_open %.2f s with mapping %s of RAM", (unsigned long long)(wblocks * DEV_WBS >> 20),
	    row->seconds, bench_fmt_count(n1, sizeof(n1), (double)records), open_s,
	    fmt_size(sz, sizeof(sz), size));
	double eng = row->value;
	if (!fio_or_skip(ctx, "fio seq read 1M QD4 (shadow)", "shadow cold start engine/fio"))
		return 0;
	row = bench_row_add(ctx, "fio", "fio seq read 1M QD4 (shadow)");
	if (row == NULL)
		return -ENOSPC;
	row->unit = "MB/s";
	row->seconds = f1.runtime_s;
	row->value = row->mb_per_s = f1.bw_bytes / 1e6;
	snprintf(row->note, sizeof(row->note), "same file, its %llu MiB of data, io_uring, direct=1",
	    (unsigned long long)(bytes >> 20));
	ratio_row(ctx, def, "shadow cold start engine/fio", eng, row->value, 0);
	file_remove(st, FILE_SHADOW);
	return 0;
}

void
bench_device_cleanup(struct bench_ctx *ctx)
{
	struct bench_device_state *st = ctx->device;

	if (st == NULL)
		return;
	dev_node_close(st, false);
	if (st->dir_made) {
		int rc = bench_remove_tree(st->dir);

		if (rc != 0)
			fprintf(stderr, "recfs-bench: could not remove %s: %s\n", st->dir, strerror(-rc));
	}
	if (st->log_opened)
		log_close();
	free(st);
	ctx->device = NULL;
}
