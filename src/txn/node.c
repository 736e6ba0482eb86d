/*
 * node.c - the engine instance: opens every configured namespace, reports
 * node- and namespace-level statistics, writes the ticker line, and applies
 * configuration changes made at run time (see txn.h).
 *
 * Statistics: the rows are in base/statistic.h; this file fills one value
 * per row of the NODE and NAMESPACE sections, indexed by the sections'
 * enums, and every text or log output is made by walking those rows.  The
 * namespace's event counters (NS_COUNTERS in namespace.h) are copied by
 * name into STAT_NS_<name>, so a counter without a row fails to compile.
 *
 * The ticker is a thread of the node: it wakes every second, and every
 * ticker-interval seconds (read live; 0 = off) logs one line per namespace
 * with the rows flagged STAT_F_TICK, counters as a rate since the last line.
 * Rejected: a timer in the daemon (the engine is also embedded by
 * recfs-bench and tests, which should log the same lines).
 *
 * What the transaction layer keeps per namespace (latency histograms, nsup)
 * is a struct txn_namespace (txn_i.h) that node_open hangs on the
 * namespace's owner pointer and node_close frees.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/sysinfo.h>
#include <time.h>

#include "../base/atomic.h"
#include "../base/clock.h"
#include "../base/log.h"
#include "txn_i.h"

/* ---- the ticker ----------------------------------------------------------- */

static void ticker_tick(struct node *node, uint64_t prev[][STAT_NS_COUNT], double secs);

static void *
ticker_main(void *arg)
{
	struct node *node = arg;
	uint64_t (*prev)[STAT_NS_COUNT] = calloc(CONFIG_NS_MAX, sizeof(*prev));
	uint64_t last = clock_mono_ns();

	if (prev == NULL) {
		log_error("ticker", "out of memory: no ticker lines");
		return NULL;
	}
	pthread_mutex_lock(&node->ticker_lock);
	while (!node->ticker_stop) {
		struct timespec ts;
		uint32_t interval;
		uint64_t now;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&node->ticker_cv, &node->ticker_lock, &ts);
		if (node->ticker_stop)
			break;
		interval = atomic_load_relaxed(&node->cfg->ticker_interval);
		now = clock_mono_ns();
		if (interval == 0 || now - last < (uint64_t)interval * 1000000000ULL)
			continue;
		pthread_mutex_unlock(&node->ticker_lock);
		ticker_tick(node, prev, (double)(now - last) / 1e9);
		last = now;
		pthread_mutex_lock(&node->ticker_lock);
	}
	pthread_mutex_unlock(&node->ticker_lock);
	free(prev);
	return NULL;
}

void
txn_node_network_set(struct node *node, struct txn_network *net)
{
	struct txn_network *old;
	uint64_t self;

	pthread_mutex_lock(&node->network_lock);
	old = node->network;
	node->network = net;
	/* The data path: operations route through the partition table from now
	 * on (detached: each namespace serves everything itself again). */
	for (unsigned i = 0; i < node->n_namespaces; i++) {
		if (net != NULL) {
			atomic_store_relaxed(&txn_namespace_of(node->namespaces[i])->had_network, true);
			atomic_store_relaxed(&node->namespaces[i]->clustered, true);
		}
		atomic_store_release(&txn_namespace_of(node->namespaces[i])->remote,
		    net != NULL ? txn_network_remote(net) : NULL);
	}
	pthread_mutex_unlock(&node->network_lock);
	/* The partition tables follow the attached network's successions, or
	 * this node alone without one. */
	if (old != NULL && old != net)
		txn_network_attach(old, NULL);
	if (net != NULL) {
		txn_network_attach(net, node);
	} else if ((self = atomic_load_relaxed(&node->node_id)) != 0) {
		txn_node_partitions_rebuild(node, &self, 1, 0);
	}
}

bool
txn_node_cluster(struct node *node, struct txn_cluster *out)
{
	bool on;

	pthread_mutex_lock(&node->network_lock);
	on = node->network != NULL;
	if (on)
		txn_network_cluster(node->network, out);
	pthread_mutex_unlock(&node->network_lock);
	return on;
}

void
txn_node_fabric_values(struct node *node, uint64_t *v)
{
	pthread_mutex_lock(&node->network_lock);
	txn_network_values(node->network, v);   /* NULL: all 0 */
	pthread_mutex_unlock(&node->network_lock);
}

void
txn_node_fabric_latencies(struct node *node, struct histogram_snapshot *out)
{
	pthread_mutex_lock(&node->network_lock);
	txn_network_latencies(node->network, out);   /* NULL: all empty */
	pthread_mutex_unlock(&node->network_lock);
}

unsigned
txn_node_peers(struct node *node, struct txn_peer *out, unsigned max)
{
	unsigned n;

	pthread_mutex_lock(&node->network_lock);
	n = txn_network_peers(node->network, out, max);   /* NULL: 0 */
	pthread_mutex_unlock(&node->network_lock);
	return n;
}

/* One line per namespace: "{test} objects=5 ... client_write_success_per_sec=1.5";
 * with a network, first "cl-size=3 cl-key=... cl-principal=...". */
static void
ticker_tick(struct node *node, uint64_t prev[][STAT_NS_COUNT], double secs)
{
	size_t n_rows;
	const struct statistic *rows = statistic_rows(STAT_SECTION_NAMESPACE, &n_rows);
	struct txn_cluster *tc = malloc(sizeof(*tc));

	if (tc != NULL && txn_node_cluster(node, tc))
		log_info("ticker", "cl-size=%u cl-key=%016" PRIx64 " cl-principal=%016" PRIx64
		    " cl-integrity=%s", tc->size, tc->cluster_key, tc->principal,
		    tc->integrity ? "true" : "false");
	free(tc);

	for (unsigned i = 0; i < node->n_namespaces; i++) {
		struct namespace *ns = node->namespaces[i];
		uint64_t v[STAT_NS_COUNT];
		char line[1024];
		size_t off;

		txn_namespace_values(ns, v);
		off = (size_t)snprintf(line, sizeof(line), "{%s}", ns->name);
		for (size_t r = 0; r < n_rows && off < sizeof(line); r++) {
			char text[32];

			if (!(rows[r].flags & STAT_F_TICK))
				continue;
			if (rows[r].kind == STAT_COUNTER) {
				double rate = secs > 0 ? (double)(v[r] - prev[i][r]) / secs : 0.0;

				off += (size_t)snprintf(line + off, sizeof(line) - off, " %s_per_sec=%.1f",
				    rows[r].name, rate);
			} else {
				statistic_format(&rows[r], v[r], text, sizeof(text));
				off += (size_t)snprintf(line + off, sizeof(line) - off, " %s=%s",
				    rows[r].name, text);
			}
		}
		memcpy(prev[i], v, sizeof(v));
		log_info("ticker", "%s", line);
	}
}

static int
ticker_start(struct node *node)
{
	int rc;

	pthread_mutex_init(&node->ticker_lock, NULL);
	pthread_cond_init(&node->ticker_cv, NULL);
	rc = pthread_create(&node->ticker_thread, NULL, ticker_main, node);
	if (rc != 0)
		return -rc;
	pthread_setname_np(node->ticker_thread, "ticker");
	node->ticker_started = true;
	return 0;
}

static void
ticker_stop(struct node *node)
{
	if (!node->ticker_started)
		return;
	pthread_mutex_lock(&node->ticker_lock);
	node->ticker_stop = true;
	pthread_cond_broadcast(&node->ticker_cv);
	pthread_mutex_unlock(&node->ticker_lock);
	pthread_join(node->ticker_thread, NULL);
	node->ticker_started = false;
	pthread_cond_destroy(&node->ticker_cv);
	pthread_mutex_destroy(&node->ticker_lock);
}

/* ---- open and close -------------------------------------------------------- */

int
node_open(struct node **out, struct recfs_config *cfg)
{
	struct node *node = calloc(1, sizeof(*node));
	int rc = 0;

	if (node == NULL)
		return -ENOMEM;
	node->cfg = cfg;
	node->start_ms = clock_epoch_ms();
	pthread_mutex_init(&node->config_lock, NULL);
	pthread_mutex_init(&node->network_lock, NULL);
	for (unsigned i = 0; i < cfg->n_namespaces; i++) {
		/* Histograms are 64-byte aligned (one shard per cache line). */
		struct txn_namespace *x = aligned_alloc(64, (sizeof(*x) + 63) & ~(size_t)63);

		if (x == NULL) {
			rc = -ENOMEM;
			goto fail;
		}
		memset(x, 0, sizeof(*x));
		x->recent = calloc(TXN_RECENT_OPS, sizeof(*x->recent));
		if (x->recent == NULL) {
			free(x);
			rc = -ENOMEM;
			goto fail;
		}
		pthread_mutex_init(&x->table_lock, NULL);
		pthread_mutex_init(&x->chunk_hold_lock, NULL);
		pthread_mutex_init(&x->recent_lock, NULL);
		{
			pthread_condattr_t ca;

			pthread_condattr_init(&ca);
			pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
			pthread_cond_init(&x->table_cv, &ca);
			pthread_condattr_destroy(&ca);
		}
		/* The storage engine sees only its section: hand it the service's bound. */
		cfg->ns[i].storage.lock_wait_s = cfg->lock_wait;
		/* A node with seeds keeps its tombstones at cold start: another
		 * node may hold an older copy (namespace_loaded). */
		cfg->ns[i].clustered = cfg->n_seeds > 0;
		rc = namespace_open(&node->namespaces[i], &cfg->ns[i]);
		if (rc != 0) {
			free(x->recent);
			free(x);
			log_error("node", "namespace %s: cannot open: %s", cfg->ns[i].name,
			    recfs_strerror(rc));
			goto fail;
		}
		node->namespaces[i]->root_cfg = cfg;
		node->namespaces[i]->cfg_index = (int)i;
		node->namespaces[i]->owner = x;
		atomic_store_release(&node->namespaces[i]->raider_reclaim, txn_raider_reclaim);
		x->node = node;
		node->n_namespaces++;
		rc = txn_partitions_open(node, i);
		if (rc != 0) {
			log_error("node", "namespace %s: cannot create its partition table: %s",
			    cfg->ns[i].name, recfs_strerror(rc));
			goto fail;
		}
		rc = nsup_start(node->namespaces[i]);
		if (rc != 0) {
			log_error("node", "namespace %s: cannot start nsup: %s", cfg->ns[i].name,
			    recfs_strerror(rc));
			goto fail;
		}
	}
	rc = ticker_start(node);
	if (rc != 0) {
		log_error("node", "cannot start the ticker thread: %s", recfs_strerror(rc));
		goto fail;
	}
	*out = node;
	return 0;
fail:
	node_close(node, false);
	return rc;
}

void
node_close(struct node *node, bool clean)
{
	if (node == NULL)
		return;
	ticker_stop(node);
	for (unsigned i = 0; i < node->n_namespaces; i++) {
		struct txn_namespace *x = txn_namespace_of(node->namespaces[i]);

		nsup_stop(node->namespaces[i]);
		if (clean)
			txn_sets_store_times(node->namespaces[i]);
		namespace_close(node->namespaces[i], clean);
		txn_partitions_close(x);
		pthread_cond_destroy(&x->table_cv);
		pthread_mutex_destroy(&x->table_lock);
		pthread_mutex_destroy(&x->chunk_hold_lock);
		pthread_mutex_destroy(&x->recent_lock);
		free(x->chunk_holds);
		free(x->recent);
		free(x);
	}
	pthread_mutex_destroy(&node->config_lock);
	pthread_mutex_destroy(&node->network_lock);
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

int
namespace_config_index(const struct namespace *ns)
{
	return ns->cfg_index;
}

/* ---- run-time configuration ------------------------------------------------ */

/* "defrag-lwm-pct" for service rows, "logging.level" for other sections. */
static void
config_path(enum config_section section, const char *name, char *buf, size_t size)
{
	static const char *const sections[] = {
		[CONFIG_SERVICE] = "", [CONFIG_LOGGING] = "logging.", [CONFIG_FUSE] = "fuse.",
		[CONFIG_NETWORK] = "network.", [CONFIG_NAMESPACE] = "", [CONFIG_STORAGE] = "",
	};

	snprintf(buf, size, "%s%s", sections[section], name);
}

int
node_config_set(struct node *node, int ns_index, enum config_section section, const char *name,
    const char *value, char *err, size_t err_size)
{
	bool per_ns = section == CONFIG_NAMESPACE || section == CONFIG_STORAGE;
	char *before = malloc(CONFIG_PATH_MAX), *after = malloc(CONFIG_PATH_MAX);
	char path[96], who[CONFIG_NAME_MAX + 4] = "";
	int rc;

	if (before == NULL || after == NULL) {
		free(before);
		free(after);
		return -ENOMEM;
	}
	if (per_ns && (ns_index < 0 || (unsigned)ns_index >= node->n_namespaces)) {
		rc = -ENOENT;
		goto out;
	}
	config_path(section, name, path, sizeof(path));
	if (per_ns)
		snprintf(who, sizeof(who), "{%s} ", node->namespaces[ns_index]->name);
	pthread_mutex_lock(&node->config_lock);
	if (config_get_text(node->cfg, ns_index, section, name, before, CONFIG_PATH_MAX) != 0)
		snprintf(before, CONFIG_PATH_MAX, "?");
	rc = config_set_text(node->cfg, ns_index, section, name, value, err, err_size);
	if (rc == 0) {
		if (config_get_text(node->cfg, ns_index, section, name, after, CONFIG_PATH_MAX) != 0)
			snprintf(after, CONFIG_PATH_MAX, "?");
		/* Most parameters are read live by the engine; these need a nudge. */
		if (section == CONFIG_STORAGE) {
			struct storage *st = node->namespaces[ns_index]->storage;

			/* e.g. defrag-lwm-pct: the engine re-sweeps its wblocks. */
			if (st->ops->config_changed != NULL)
				st->ops->config_changed(st);
		} else if (section == CONFIG_SERVICE && strcmp(name, "ticker-interval") == 0 &&
		    node->ticker_started) {
			pthread_mutex_lock(&node->ticker_lock);
			pthread_cond_broadcast(&node->ticker_cv);
			pthread_mutex_unlock(&node->ticker_lock);
		}
	}
	pthread_mutex_unlock(&node->config_lock);
	if (rc == 0)
		log_info("config", "%s%s: %s -> %s", who, path, before, after);
	else if (rc == -EINVAL || rc == -EACCES)
		log_warn("config", "%s%s: refused: %s", who, path,
		    err != NULL && err_size > 0 && err[0] != '\0' ? err : recfs_strerror(rc));
out:
	free(before);
	free(after);
	return rc;
}

/* ---- statistics ------------------------------------------------------------ */

static void
emit_rows(enum stat_section section, const uint64_t *v, txn_stat_fn fn, void *arg)
{
	size_t n;
	const struct statistic *rows = statistic_rows(section, &n);

	for (size_t i = 0; i < n; i++) {
		char text[32];

		statistic_format(&rows[i], v[i], text, sizeof(text));
		fn(arg, rows[i].name, text);
	}
}

void
txn_node_values(struct node *node, uint64_t v[STAT_NODE_COUNT])
{
	struct sysinfo si;
	struct rusage ru;

	memset(v, 0, STAT_NODE_COUNT * sizeof(v[0]));
	for (unsigned i = 0; i < node->n_namespaces; i++) {
		struct namespace *ns = node->namespaces[i];

		v[STAT_NODE_objects] += atomic_load_relaxed(&ns->objects);
		v[STAT_NODE_tombstones] += atomic_load_relaxed(&ns->tombstones);
		v[STAT_NODE_index_used_bytes] += index_memory_bytes(ns->index);
		struct ns_counters c;

		namespace_counters(ns, &c);
#define X(name, help) v[STAT_NODE_##name] += c.name;
		NS_COUNTERS(X)
#undef X
	}
	v[STAT_NODE_uptime] = (clock_epoch_ms() - node->start_ms) / 1000;
	v[STAT_NODE_cluster_size] = 1;
	{
		struct txn_cluster *tc = malloc(sizeof(*tc));

		if (tc != NULL && txn_node_cluster(node, tc))
			v[STAT_NODE_cluster_size] = tc->size;
		free(tc);
	}
	v[STAT_NODE_namespaces] = node->n_namespaces;
	if (sysinfo(&si) == 0) {
		uint64_t total = (uint64_t)si.totalram * si.mem_unit;
		uint64_t avail = ((uint64_t)si.freeram + si.bufferram) * si.mem_unit;

		v[STAT_NODE_system_total_mem_bytes] = total;
		v[STAT_NODE_system_free_mem_pct] = total ? avail * 100 / total : 0;
	}
	if (getrusage(RUSAGE_SELF, &ru) == 0)
		v[STAT_NODE_process_max_rss_bytes] = (uint64_t)ru.ru_maxrss * 1024;
}

void
txn_node_stats(struct node *node, txn_stat_fn fn, void *arg)
{
	uint64_t v[STAT_NODE_COUNT];

	txn_node_values(node, v);
	emit_rows(STAT_SECTION_NODE, v, fn, arg);
}

void
txn_namespace_values(struct namespace *ns, uint64_t v[STAT_NS_COUNT])
{
	struct storage_stats ss;

	storage_stats(ns->storage, &ss);
	v[STAT_NS_objects] = atomic_load_relaxed(&ns->objects);
	v[STAT_NS_tombstones] = atomic_load_relaxed(&ns->tombstones);
	v[STAT_NS_objects_chunks] = atomic_load_relaxed(&ns->chunk_objects);
	v[STAT_NS_index_used_bytes] = index_memory_bytes(ns->index);
	v[STAT_NS_data_total_bytes] = ss.total_bytes;
	v[STAT_NS_data_used_bytes] = ss.used_bytes;
	v[STAT_NS_data_used_pct] = ss.total_bytes ? ss.used_bytes * 100 / ss.total_bytes : 0;
	v[STAT_NS_data_avail_pct] = ss.avail_pct;
	v[STAT_NS_total_wblocks] = ss.n_wblocks;
	v[STAT_NS_free_wblocks] = ss.free_wblocks;
	/* A memory namespace's write queue is its shadow files' (Aerospike's
	 * shadow_write_q); a device namespace's is the device's. */
	v[STAT_NS_write_q] = ss.shadow ? 0 : ss.write_q;
	v[STAT_NS_shadow_write_q] = ss.shadow ? ss.write_q : 0;
	v[STAT_NS_defrag_q] = ss.defrag_q;
	v[STAT_NS_defrag_reads] = ss.defrag_reads;
	v[STAT_NS_defrag_writes] = ss.defrag_writes;
	v[STAT_NS_defrag_records] = ss.defrag_records;
	v[STAT_NS_storage_writes] = ss.writes;
	v[STAT_NS_partial_writes] = ss.partial_writes;
	v[STAT_NS_write_waits] = ss.write_waits;
	v[STAT_NS_storage_reads] = ss.reads;
	v[STAT_NS_cache_read_pct] = ss.reads ? ss.cache_reads * 100 / ss.reads : 0;
	v[STAT_NS_read_errors] = ss.read_errors;
	v[STAT_NS_write_errors] = ss.write_errors;
	v[STAT_NS_checksum_errors] = ss.checksum_errors;
	v[STAT_NS_damaged_records] = atomic_load_relaxed(&ns->damaged_records);
	v[STAT_NS_objects_directories] = atomic_load_relaxed(&ns->objects_dirs);
	v[STAT_NS_objects_links] = atomic_load_relaxed(&ns->objects_links);
	/* Read one by one while writes go on: never below 0. */
	uint64_t not_files = v[STAT_NS_objects_chunks] + v[STAT_NS_objects_directories] +
	    v[STAT_NS_objects_links];

	v[STAT_NS_objects_files] = v[STAT_NS_objects] > not_files ? v[STAT_NS_objects] - not_files : 0;
	v[STAT_NS_directory_index_directories] = index_dir_count(ns->index);
	v[STAT_NS_cold_start_torn_writes] = atomic_load_relaxed(&ns->cold_start_torn_writes);
	v[STAT_NS_cold_start_dropped_records] = ss.cold_start_dropped;
	v[STAT_NS_partition_version_syncs] = ss.pversion_syncs;
	v[STAT_NS_partition_version_pages] = ss.pversion_pages;
	v[STAT_NS_tombstones_reclaimed] = atomic_load_relaxed(&ns->tombstones_reclaimed);
	v[STAT_NS_tomb_raider_passes] = atomic_load_relaxed(&ns->raider_passes);
	struct txn_namespace *tn = txn_namespace_of(ns);

	v[STAT_NS_tomb_reclaims_sent] = atomic_load_relaxed(&tn->reclaims_sent);
	v[STAT_NS_tomb_reclaims_refused] = atomic_load_relaxed(&tn->reclaims_refused);
	v[STAT_NS_tomb_reclaims_received] = atomic_load_relaxed(&tn->reclaims_received);

	v[STAT_NS_stop_writes] = atomic_load_relaxed(&tn->stop_writes);
	v[STAT_NS_hwm_breached] = atomic_load_relaxed(&tn->hwm_breached);
	v[STAT_NS_evict_void_time] = atomic_load_relaxed(&tn->evict_void_time);
	v[STAT_NS_nsup_cycle_duration] = atomic_load_relaxed(&tn->nsup_cycle_ms);
	txn_partition_values(ns, v);
	struct ns_counters c;

	namespace_counters(ns, &c);
#define X(name, help) v[STAT_NS_##name] = c.name;
	NS_COUNTERS(X)
#undef X
}

void
txn_namespace_config(struct namespace *ns, txn_stat_fn fn, void *arg)
{
	size_t n_params;
	const struct config_param *params = config_params(&n_params);
	char *value = malloc(CONFIG_PATH_MAX);

	if (value == NULL)
		return;
	/* The effective configuration, from the one parameter table. */
	for (size_t i = 0; params != NULL && i < n_params; i++) {
		const struct config_param *p = &params[i];

		if (p->section != CONFIG_NAMESPACE && p->section != CONFIG_STORAGE)
			continue;
		if (config_get_text(ns->root_cfg, ns->cfg_index, p->section, p->name, value,
		    CONFIG_PATH_MAX) == 0)
			fn(arg, p->name, value);
	}
	free(value);
}

void
txn_namespace_stats(struct namespace *ns, txn_stat_fn fn, void *arg)
{
	uint64_t v[STAT_NS_COUNT];

	txn_namespace_values(ns, v);
	emit_rows(STAT_SECTION_NAMESPACE, v, fn, arg);
	txn_namespace_config(ns, fn, arg);
}

void
txn_namespace_latencies(struct namespace *ns, struct histogram_snapshot out[STAT_LAT_NS_COUNT])
{
	struct txn_namespace *x = txn_namespace_of(ns);

	for (unsigned i = 0; i < STAT_LAT_NS_COUNT; i++)
		histogram_read(&x->latency[i], &out[i]);
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
