/*
 * bench_memory.c - embedded benchmarks of the memory engine (no FUSE): the
 * transaction layer called straight from worker threads, as recfsd's FUSE
 * threads call it, so the figures are the engine's own ceiling.
 *
 * Workload (docs/benchmarks.md, "memory engine read/write, 1 KiB"):
 *   write  every key of one set once (creates), then overwrites in key
 *          order until the phase duration is over; each thread owns a
 *          contiguous slice of the keys, so no two threads write one record
 *   read   uniformly random keys over the whole key space
 *   mixed  uniformly random keys, each op a write or a read with equal
 *          chance: the "write+read combined" figure the target is about
 * The index statistics are taken right after the write phase.
 *
 * Timing: one op in 16 is timed with clock_gettime (the rest only counted),
 * so two vDSO clock reads (~50 ns) do not become a visible share of a ~1 us
 * op; throughput comes from the phase's wall time, not from the samples.
 * Keys are formatted by hand for the same reason (snprintf costs ~0.2 us).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/log.h"
#include "config/config.h"
#include "txn/txn.h"
#include "bench.h"

#define MEM_NS "bench"
#define MEM_SET "bench"
#define MEM_RECORD_SIZE 1024
#define MEM_KEY_LEN BENCH_KEY_LEN
#define MEM_SAMPLE_MASK 15      /* time one op in 16 */

struct bench_memory_state {
	struct recfs_config cfg;
	bool cfg_loaded;
	struct node *node;
	struct namespace *ns;
	char log_path[PATH_MAX];
	uint64_t keys;
	bool loaded;                /* every key written at least once */
	/* taken after the write phase, for index.memory */
	bool have_index;
	uint64_t objects, index_bytes, data_used_bytes;
};

enum mem_op { MEM_WRITE, MEM_READ, MEM_MIXED };

/* ---- helpers ---------------------------------------------------------------- */

static int
mem_write_one(struct namespace *ns, uint64_t n, uint8_t *data)
{
	char key[MEM_KEY_LEN];
	struct txn_key k = { MEM_SET, sizeof(MEM_SET) - 1, key, MEM_KEY_LEN };
	struct txn_write w = { .set_file = true, .file_data = data, .file_len = MEM_RECORD_SIZE };

	bench_key_format(key, n);
	/* The key number in the payload lets a read check it got its record. */
	memcpy(data, &n, sizeof(n));
	return txn_write(ns, &k, &w, NULL);
}

static int
mem_read_one(struct namespace *ns, uint64_t n)
{
	char key[MEM_KEY_LEN];
	struct txn_key k = { MEM_SET, sizeof(MEM_SET) - 1, key, MEM_KEY_LEN };
	struct txn_record r;
	uint64_t got;
	int rc;

	bench_key_format(key, n);
	rc = txn_read(ns, &k, &r);
	if (rc != 0)
		return rc;
	if (r.file_bin == NULL || r.file_bin->v.bytes.len != MEM_RECORD_SIZE) {
		rc = -EIO;
	} else {
		memcpy(&got, r.file_bin->v.bytes.data, sizeof(got));
		if (got != n)
			rc = -EIO;
	}
	txn_record_release(&r);
	return rc;
}

/* ---- workers ---------------------------------------------------------------- */

struct mem_job {
	struct bench_memory_state *m;
	enum mem_op op;
};

static void
mem_worker(struct bench_worker *w, void *arg)
{
	struct mem_job *job = arg;
	struct namespace *ns = job->m->ns;
	uint64_t keys = job->m->keys, n_threads = w->phase->n_threads;
	uint64_t lo = keys * w->id / n_threads, hi = keys * (w->id + 1) / n_threads;
	uint64_t seed = 0x9E3779B97F4A7C15ull * (w->id + 1) + (uint64_t)job->op;
	uint8_t data[MEM_RECORD_SIZE];
	bool first_pass = job->op == MEM_WRITE;
	uint64_t next = lo;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 131 + w->id);
	for (;;) {
		uint64_t n, t0 = 0;
		bool sample = (w->ops & MEM_SAMPLE_MASK) == 0, write;
		int rc;

		/* The write phase ignores the stop flag until its first pass
		 * is done: the read phases need every key to exist. */
		if (bench_interrupted || (!first_pass && bench_phase_stopping(w->phase)))
			break;
		if (job->op == MEM_WRITE) {
			if (next == hi) {
				next = lo;
				first_pass = false;
				continue;
			}
			n = next++;
			write = true;
		} else {
			uint64_t r = bench_rand_next(&seed);

			/* The key from the high bits, the op from a low one. */
			n = (uint64_t)(((unsigned __int128)r * keys) >> 64);
			write = job->op == MEM_MIXED && (r & (1u << 20));
		}
		if (sample)
			t0 = bench_now_ns();
		rc = write ? mem_write_one(ns, n, data) : mem_read_one(ns, n);
		if (sample)
			bench_hist_add(&w->hist, bench_now_ns() - t0);
		if (rc != 0) {
			/* The first error says it all (ENOSPC, EIO); repeating it
			 * a million times would only hide it. */
			w->errors++;
			w->first_error = rc;
			break;
		}
		w->ops++;
		w->bytes += MEM_RECORD_SIZE;
	}
}

/* ---- the node ---------------------------------------------------------------- */

static void
stat_collect(void *arg, const char *name, const char *value)
{
	struct bench_memory_state *m = arg;

	if (strcmp(name, "objects") == 0)
		m->objects = strtoull(value, NULL, 10);
	else if (strcmp(name, "index_used_bytes") == 0)
		m->index_bytes = strtoull(value, NULL, 10);
	else if (strcmp(name, "data_used_bytes") == 0)
		m->data_used_bytes = strtoull(value, NULL, 10);
}

/* Open the embedded node: one memory namespace sized for the key count
 * with room for overwrites (defrag keeps up well below 50% fill). */
static int
mem_open(struct bench_ctx *ctx, const char *id)
{
	struct bench_memory_state *m;
	char dir[PATH_MAX], yaml[2 * PATH_MAX + 1024], err[512];
	uint64_t need, size = 256ull << 20;
	uint64_t t0 = bench_now_ns();
	int rc;

	if (ctx->memory != NULL)
		return 0;
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return -ENOMEM;
	ctx->memory = m;
	m->keys = ctx->opt.keys;
	need = m->keys * (MEM_RECORD_SIZE + 128) * 3;
	while (size < need)
		size *= 2;
	if (bench_path(dir, sizeof(dir), "%s/embedded", ctx->tmp) != 0 ||
	    bench_path(m->log_path, sizeof(m->log_path), "%s/embedded.log", ctx->tmp) != 0) {
		bench_row_error(ctx, id, "open embedded node", "temp dir path too long");
		return -ENAMETOOLONG;
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		rc = -errno;
		bench_row_error(ctx, id, "open embedded node", "mkdir %s: %s", dir, strerror(-rc));
		return rc;
	}
	/* Through the product's own loader, so the bench runs exactly what a
	 * user's config file would give. */
	rc = bench_path(yaml, sizeof(yaml),
	    "service:\n"
	    "  cluster-name: bench\n"
	    "  work-directory: %s\n"
	    "  ticker-interval: 0\n"
	    "logging:\n"
	    "  file: %s\n"
	    "  level: info\n"
	    "namespaces:\n"
	    "  - name: " MEM_NS "\n"
	    "    replication-factor: 1\n"
	    "    storage-engine:\n"
	    "      type: memory\n"
	    "      data-size: %lluM\n"
	    "      write-block-size: 1M\n",
	    dir, m->log_path, (unsigned long long)(size >> 20));
	if (rc != 0) {
		bench_row_error(ctx, id, "open embedded node", "temp dir path too long");
		return rc;
	}
	rc = config_load_string(&m->cfg, yaml, "recfs-bench", err, sizeof(err));
	m->cfg_loaded = true;
	if (rc != 0) {
		bench_row_error(ctx, id, "open embedded node", "config: %s", err);
		return rc;
	}
	rc = log_open(m->cfg.log_file, LOG_LEVEL_INFO);
	if (rc != 0) {
		bench_row_error(ctx, id, "open embedded node", "log %s: %s", m->cfg.log_file,
		    strerror(-rc));
		return rc;
	}
	rc = node_open(&m->node, &m->cfg);
	if (rc != 0) {
		char tail[160];

		bench_file_tail(m->log_path, tail, sizeof(tail), 2);
		bench_row_error(ctx, id, "open embedded node", "node_open: %s (%s)",
		    recfs_strerror(rc), tail);
		m->node = NULL;
		return rc;
	}
	m->ns = node_namespace_find(m->node, MEM_NS, strlen(MEM_NS));
	if (m->ns == NULL) {
		bench_row_error(ctx, id, "open embedded node", "namespace " MEM_NS " missing");
		return -ENOENT;
	}
	bench_note(ctx, "embedded: memory engine, data-size %lluM, write-block-size 1M, "
	    "key %zu bytes, latency sampled on 1 op in %u", (unsigned long long)(size >> 20),
	    (size_t)MEM_KEY_LEN, MEM_SAMPLE_MASK + 1);
	bench_progress("embedded node open: memory engine, data-size %lluM, %.1f s",
	    (unsigned long long)(size >> 20), (double)(bench_now_ns() - t0) / 1e9);
	return 0;
}

static int
mem_phase(struct bench_ctx *ctx, enum mem_op op, const char *id, const char *label,
    struct bench_row **out)
{
	struct bench_memory_state *m = ctx->memory;
	struct mem_job job = { m, op };
	struct bench_phase p = {
		.n_threads = ctx->opt.threads,
		.duration_s = ctx->opt.duration_s,
		.fn = mem_worker,
		.arg = &job,
	};
	struct bench_row *row;
	int rc;

	*out = NULL;
	rc = bench_phase_run(&p);
	if (rc == 0 && p.errors != 0)
		rc = p.first_error;
	if (rc != 0) {
		bench_row_error(ctx, id, label, "%llu errors, first: %s",
		    (unsigned long long)p.errors, recfs_strerror(rc));
		return rc;
	}
	if (bench_interrupted)
		return -EINTR;
	row = bench_row_add(ctx, id, label);
	if (row == NULL)
		return -ENOSPC;
	bench_row_from_phase(row, &p);
	*out = row;
	return 0;
}

/* ---- benchmarks --------------------------------------------------------------- */

int
bench_memory_write(struct bench_ctx *ctx, const struct bench_def *def)
{
	struct bench_memory_state *m;
	struct bench_row *row;
	char label[64], n1[32], n2[32];
	int rc;

	rc = mem_open(ctx, "");
	if (rc != 0)
		return rc;
	m = ctx->memory;
	snprintf(label, sizeof(label), "write, %s keys", bench_fmt_count(n1, sizeof(n1),
	    (double)m->keys));
	rc = mem_phase(ctx, MEM_WRITE, "", label, &row);
	if (rc != 0)
		return rc;
	m->loaded = true;
	snprintf(row->note, sizeof(row->note), "%s creates, then %s overwrites",
	    bench_fmt_count(n1, sizeof(n1), (double)m->keys),
	    bench_fmt_count(n2, sizeof(n2), (double)(row->ops - m->keys)));
	if (def->target != NULL)
		bench_row_judge(ctx, row, def->target, 1e6, true);
	txn_namespace_stats(m->ns, stat_collect, m);
	m->have_index = true;
	return 0;
}

/* The read phases need the keys the write phase stored. */
static int
mem_need_loaded(struct bench_ctx *ctx, const char *label)
{
	if (ctx->memory != NULL && ctx->memory->loaded)
		return 0;
	bench_row_error(ctx, "", label, "needs memory.write first (same run)");
	return -ENOENT;
}

int
bench_memory_read(struct bench_ctx *ctx, const struct bench_def *def)
{
	struct bench_row *row;
	int rc;

	rc = mem_need_loaded(ctx, "read, random keys");
	if (rc != 0)
		return rc;
	rc = mem_phase(ctx, MEM_READ, "", "read, random keys", &row);
	if (rc != 0)
		return rc;
	if (def->target != NULL)
		bench_row_judge(ctx, row, def->target, 1e6, true);
	return 0;
}

int
bench_memory_mixed(struct bench_ctx *ctx, const struct bench_def *def)
{
	struct bench_row *row;
	int rc;

	rc = mem_need_loaded(ctx, "mixed 50% write + 50% read");
	if (rc != 0)
		return rc;
	rc = mem_phase(ctx, MEM_MIXED, "", "mixed 50% write + 50% read", &row);
	if (rc != 0)
		return rc;
	if (def->target != NULL)
		bench_row_judge(ctx, row, def->target, 1e6, true);
	return 0;
}

int
bench_index_memory(struct bench_ctx *ctx, const struct bench_def *def)
{
	struct bench_memory_state *m = ctx->memory;
	struct bench_row *row;
	double per;

	if (m == NULL || !m->have_index) {
		bench_row_error(ctx, "", "index bytes per record", "needs memory.write first (same run)");
		return -ENOENT;
	}
	if (m->objects == 0) {
		bench_row_error(ctx, "", "index bytes per record", "no objects after the write phase");
		return -ENOENT;
	}
	per = (double)m->index_bytes / (double)m->objects;
	row = bench_row_add(ctx, "per_record", "index bytes per record");
	if (row == NULL)
		return -ENOSPC;
	row->value = per;
	row->unit = "B";
	row->ops = m->objects;
	snprintf(row->note, sizeof(row->note), "index_used_bytes %llu / objects %llu; "
	    "data_used_bytes %llu", (unsigned long long)m->index_bytes,
	    (unsigned long long)m->objects, (unsigned long long)m->data_used_bytes);
	row = bench_row_add(ctx, "per_record_minus_key", "index bytes per record - key");
	if (row == NULL)
		return -ENOSPC;
	row->value = per - (double)MEM_KEY_LEN;
	row->unit = "B";
	row->ops = m->objects;
	snprintf(row->note, sizeof(row->note), "key %zu bytes", (size_t)MEM_KEY_LEN);
	if (def->target != NULL)
		bench_row_judge(ctx, row, def->target, 100, false);
	return 0;
}

void
bench_memory_cleanup(struct bench_ctx *ctx)
{
	struct bench_memory_state *m = ctx->memory;

	if (m == NULL)
		return;
	if (m->node != NULL)
		node_close(m->node, true);
	if (m->cfg_loaded)
		config_free(&m->cfg);
	log_close();
	free(m);
	ctx->memory = NULL;
}
