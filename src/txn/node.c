/*
 * node.c - the engine instance: opens every configured namespace and
 * reports node- and namespace-level statistics (see txn.h).
 *
 * Statistics are produced by walking counter tables (NS_COUNTERS in
 * namespace.h) and the storage engine's stats, so adding a counter is one
 * line in one table.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/sysinfo.h>

#include "../base/atomic.h"
#include "../base/clock.h"
#include "../base/log.h"
#include "txn_i.h"

int
node_open(struct node **out, struct recfs_config *cfg)
{
	struct node *node = calloc(1, sizeof(*node));
	int rc = 0;

	if (node == NULL)
		return -ENOMEM;
	node->cfg = cfg;
	node->start_ms = clock_epoch_ms();
	for (unsigned i = 0; i < cfg->n_namespaces; i++) {
		rc = namespace_open(&node->namespaces[i], &cfg->ns[i]);
		if (rc != 0) {
			log_error("node", "namespace %s: cannot open: %s", cfg->ns[i].name,
			    recfs_strerror(rc));
			node_close(node, false);
			return rc;
		}
		node->namespaces[i]->root_cfg = cfg;
		node->namespaces[i]->cfg_index = (int)i;
		node->n_namespaces++;
	}
	*out = node;
	return 0;
}

void
node_close(struct node *node, bool clean)
{
	if (node == NULL)
		return;
	for (unsigned i = 0; i < node->n_namespaces; i++)
		namespace_close(node->namespaces[i], clean);
	free(node);
}

unsigned
node_namespace_count(const struct node *node)
{
	return node->n_namespaces;
}

struct namespace *
node_namespace(struct node *node, unsigned i)
{
	return i < node->n_namespaces ? node->namespaces[i] : NULL;
}

struct namespace *
node_namespace_find(struct node *node, const char *name, size_t len)
{
	for (unsigned i = 0; i < node->n_namespaces; i++) {
		struct namespace *ns = node->namespaces[i];

		if (strlen(ns->name) == len && memcmp(ns->name, name, len) == 0)
			return ns;
	}
	return NULL;
}

const char *
namespace_name(const struct namespace *ns)
{
	return ns->name;
}

const struct ns_config *
namespace_config(const struct namespace *ns)
{
	return ns->cfg;
}

/* ---- statistics --------------------------------------------------------- */

static void
emit_u64(txn_stat_fn fn, void *arg, const char *name, uint64_t v)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	fn(arg, name, buf);
}

static void
ns_counters_sum(const struct namespace *ns, struct ns_counters *sum)
{
#define X(name, help) sum->name += atomic_load_relaxed(&ns->counters.name);
	NS_COUNTERS(X)
#undef X
}

void
txn_node_stats(struct node *node, txn_stat_fn fn, void *arg)
{
	struct ns_counters sum = { 0 };
	uint64_t objects = 0, tombstones = 0, index_bytes = 0;
	struct sysinfo si;
	struct rusage ru;

	for (unsigned i = 0; i < node->n_namespaces; i++) {
		struct namespace *ns = node->namespaces[i];

		ns_counters_sum(ns, &sum);
		objects += atomic_load_relaxed(&ns->objects);
		tombstones += atomic_load_relaxed(&ns->tombstones);
		index_bytes += index_memory_bytes(ns->index);
	}
	emit_u64(fn, arg, "uptime", (clock_epoch_ms() - node->start_ms) / 1000);
	emit_u64(fn, arg, "cluster_size", 1);
	emit_u64(fn, arg, "namespaces", node->n_namespaces);
	emit_u64(fn, arg, "objects", objects);
	emit_u64(fn, arg, "tombstones", tombstones);
	emit_u64(fn, arg, "index_used_bytes", index_bytes);
#define X(name, help) emit_u64(fn, arg, #name, sum.name);
	NS_COUNTERS(X)
#undef X
	if (sysinfo(&si) == 0) {
		uint64_t total = (uint64_t)si.totalram * si.mem_unit;
		uint64_t avail = ((uint64_t)si.freeram + si.bufferram) * si.mem_unit;

		emit_u64(fn, arg, "system_total_mem_bytes", total);
		emit_u64(fn, arg, "system_free_mem_pct", total ? avail * 100 / total : 0);
	}
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		emit_u64(fn, arg, "process_max_rss_bytes", (uint64_t)ru.ru_maxrss * 1024);
}

void
txn_namespace_stats(struct namespace *ns, txn_stat_fn fn, void *arg)
{
	struct storage_stats ss;
	uint64_t objects = atomic_load_relaxed(&ns->objects);
	uint64_t tombstones = atomic_load_relaxed(&ns->tombstones);
	uint64_t index_bytes = index_memory_bytes(ns->index);
	size_t n_params;
	const struct config_param *params = config_params(&n_params);

	storage_stats(ns->storage, &ss);
	emit_u64(fn, arg, "objects", objects);
	emit_u64(fn, arg, "tombstones", tombstones);
	emit_u64(fn, arg, "index_used_bytes", index_bytes);
	emit_u64(fn, arg, "data_total_bytes", ss.total_bytes);
	emit_u64(fn, arg, "data_used_bytes", ss.used_bytes);
	emit_u64(fn, arg, "data_used_pct", ss.total_bytes ? ss.used_bytes * 100 / ss.total_bytes : 0);
	emit_u64(fn, arg, "data_avail_pct", ss.avail_pct);
	emit_u64(fn, arg, "free_wblocks", ss.free_wblocks);
	emit_u64(fn, arg, "total_wblocks", ss.n_wblocks);
	emit_u64(fn, arg, "write_q", ss.write_q);
	emit_u64(fn, arg, "defrag_q", ss.defrag_q);
	emit_u64(fn, arg, "defrag_reads", ss.defrag_reads);
	emit_u64(fn, arg, "defrag_writes", ss.defrag_writes);
	emit_u64(fn, arg, "defrag_records", ss.defrag_records);
	emit_u64(fn, arg, "storage_writes", ss.writes);
	emit_u64(fn, arg, "storage_reads", ss.reads);
	emit_u64(fn, arg, "cache_read_pct", ss.reads ? ss.cache_reads * 100 / ss.reads : 0);
	emit_u64(fn, arg, "read_errors", ss.read_errors);
	emit_u64(fn, arg, "write_errors", ss.write_errors);
	emit_u64(fn, arg, "checksum_errors", ss.checksum_errors);
	emit_u64(fn, arg, "stop_writes", 0);
	emit_u64(fn, arg, "tombstones_reclaimed", atomic_load_relaxed(&ns->tombstones_reclaimed));
	emit_u64(fn, arg, "tomb_raider_passes", atomic_load_relaxed(&ns->raider_passes));
	emit_u64(fn, arg, "write_waits", ss.write_waits);
	emit_u64(fn, arg, "partial_writes", ss.partial_writes);
#define X(name, help) emit_u64(fn, arg, #name, atomic_load_relaxed(&ns->counters.name));
	NS_COUNTERS(X)
#undef X
	/* The effective configuration, from the one parameter table. */
	for (size_t i = 0; params != NULL && i < n_params; i++) {
		const struct config_param *p = &params[i];
		char value[CONFIG_PATH_MAX];

		if (p->section != CONFIG_NAMESPACE && p->section != CONFIG_STORAGE)
			continue;
		if (config_get_text(ns->root_cfg, ns->cfg_index, p->section, p->name, value,
		    sizeof(value)) == 0)
			fn(arg, p->name, value);
	}
}

void
txn_namespace_space(struct namespace *ns, struct txn_space *out)
{
	struct storage_stats ss;

	storage_stats(ns->storage, &ss);
	out->total_bytes = ss.total_bytes;
	out->used_bytes = ss.used_bytes;
	out->avail_bytes = ss.free_wblocks * ns->cfg->storage.write_block_size;
	out->objects = atomic_load_relaxed(&ns->objects);
	/* Smallest record is 80 bytes on storage. */
	out->max_objects = ss.total_bytes / RECORD_FLAT_MIN_SIZE;
}
