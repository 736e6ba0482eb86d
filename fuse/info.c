/*
 * info.c - the /.info files: statistics, latencies, Prometheus metrics and
 * the configuration files (see info.h).
 *
 * Every statistic is a row of the one table (base/statistic.h).  The
 * engine fills a value per row (txn_node_values, txn_namespace_values,
 * txn_namespace_latencies), the daemon fills its own sections (stats.h, and
 * here: build, node, cluster), and this file only walks rows: the text
 * files print "name=value", the metrics print the same rows as Prometheus
 * families with the row's help and kind.  So a new row shows up in the
 * files, the metrics and the docs without a line changing here.
 *
 * Why snapshots: the size of a statistics file is only known once it is
 * formatted.  The file is built whole at open and served from the handle
 * (direct_io, so read(2) returns exactly what we send), and built again
 * for getattr so st_size is the length cat will see: rsync and tar trust
 * st_size and would copy an empty file otherwise.  Numbers move between
 * that getattr and the open, so the snapshot getattr measured is kept in
 * the inode for a second and handed to the next open: what tar reads is
 * then exactly st_size bytes.  A configuration change drops every kept
 * snapshot (a generation number), so a value read after a write is new.
 *
 * Building a snapshot takes no engine-wide lock: the engine's values are
 * atomics and a few loads under each storage stripe's lock, so reading
 * statistics never holds up writers.
 *
 * Rejected: building lazily at read with st_size 0 (rsync and tar copy
 * nothing); a snapshot cached for long (the numbers would lag); a global
 * table of kept snapshots (it was full as soon as sets and config files
 * outnumbered its slots).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "base/atomic.h"
#include "base/clock.h"
#include "base/log.h"
#include "chunkfile.h"
#include "handle.h"
#include "info.h"
#include "inode.h"
#include "readahead.h"
#include "stats.h"

/* Dense ids of the sections this file fills itself. */
enum info_build_row {
#define X(name, kind, unit, flags, help) BUILD_##name,
	STATISTICS_BUILD(X)
#undef X
	BUILD_COUNT
};
enum info_node_row {
#define X(name, kind, unit, flags, help) NODEID_##name,
	STATISTICS_NODE_ID(X)
#undef X
	NODEID_COUNT
};
enum info_cluster_row {
#define X(name, kind, unit, flags, help) CLUSTER_##name,
	STATISTICS_CLUSTER(X)
#undef X
	CLUSTER_COUNT
};

/* Values of one node-wide section: numbers, or strings for TEXT rows. */
#define INFO_ROWS_MAX 112
_Static_assert(STAT_NODE_COUNT <= INFO_ROWS_MAX && STAT_COUNT <= INFO_ROWS_MAX &&
    STAT_NS_COUNT <= INFO_ROWS_MAX && STAT_SET_COUNT <= INFO_ROWS_MAX &&
    STAT_FABRIC_COUNT <= INFO_ROWS_MAX,
    "INFO_ROWS_MAX too small for a statistics section");

struct info_values {
	uint64_t v[INFO_ROWS_MAX];
	const char *text[INFO_ROWS_MAX];
};

static const char *const info_names[INFO_FILE_COUNT] = {
#define X(e, name) name,
	INFO_FILES(X)
#undef X
};

static char info_node_id[32] = "0000000000000000";
static char info_cluster_key[32] = "0000000000000000";
static char info_start_time[32] = "";

/* The text of a networked node's cluster rows (one reader at a time). */
static pthread_mutex_t info_cluster_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char key[17], principal[17], time[32], cause[160];
	char succession[TXN_CLUSTER_NODES_MAX * 17];
} info_cluster_text;

static void
iso_time(uint64_t epoch_ms, char *buf, size_t cap)
{
	time_t t = (time_t)(epoch_ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* .info/cluster: a single node without network is its own cluster; with
 * one, the installed state (texts in info_cluster_text, which the caller
 * uses under info_cluster_lock). */
static void
cluster_values(struct info_values *out)
{
	struct txn_cluster *tc = malloc(sizeof(*tc));
	size_t off = 0;

	out->text[CLUSTER_cluster_name] = recfsd.cfg->cluster_name;
	out->v[CLUSTER_migrate_partitions_remaining] = 0;
	if (tc == NULL || !txn_node_cluster(recfsd.node, tc)) {
		out->v[CLUSTER_cluster_size] = 1;
		out->text[CLUSTER_cluster_key] = info_cluster_key;
		out->text[CLUSTER_cluster_principal] = info_node_id;
		out->v[CLUSTER_cluster_integrity] = 1;
		out->text[CLUSTER_cluster_succession] = info_node_id;
		out->text[CLUSTER_cluster_change_time] = info_start_time;
		out->text[CLUSTER_cluster_change_cause] = "started";
		free(tc);
		return;
	}
	out->v[CLUSTER_migrate_partitions_remaining] = tc->migrate_partitions_remaining;
	snprintf(info_cluster_text.key, sizeof(info_cluster_text.key), "%016" PRIx64, tc->cluster_key);
	snprintf(info_cluster_text.principal, sizeof(info_cluster_text.principal), "%016" PRIx64,
	    tc->principal);
	iso_time(tc->change_epoch_ms, info_cluster_text.time, sizeof(info_cluster_text.time));
	snprintf(info_cluster_text.cause, sizeof(info_cluster_text.cause), "%s", tc->cause);
	info_cluster_text.succession[0] = '\0';
	for (unsigned i = 0; i < tc->size && i < TXN_CLUSTER_NODES_MAX; i++)
		off += (size_t)snprintf(info_cluster_text.succession + off,
		    sizeof(info_cluster_text.succession) - off, "%s%016" PRIx64, i ? "," : "", tc->succession[i]);
	out->v[CLUSTER_cluster_size] = tc->size;
	out->text[CLUSTER_cluster_key] = info_cluster_text.key;
	out->text[CLUSTER_cluster_principal] = info_cluster_text.principal;
	out->v[CLUSTER_cluster_integrity] = tc->integrity;
	out->text[CLUSTER_cluster_succession] = info_cluster_text.succession;
	out->text[CLUSTER_cluster_change_time] = info_cluster_text.time;
	out->text[CLUSTER_cluster_change_cause] = info_cluster_text.cause;
	out->v[CLUSTER_cluster_changes] = tc->changes;
	out->v[CLUSTER_cluster_proposals] = tc->proposals;
	out->v[CLUSTER_cluster_proposals_aborted] = tc->proposals_aborted;
	out->v[CLUSTER_cluster_nodes_left_out] = tc->nodes_left_out;
	free(tc);
}

/* Lines of /.info/peers at most (the heartbeat's table and the fabric's
 * dialers bound what exists well below this). */
#define INFO_PEERS_MAX 512

/* How long a snapshot measured by getattr is handed to the next open. */
#define INFO_REUSE_NS 1000000000LL

/* Bumped by every configuration change: older kept snapshots are stale. */
static uint64_t info_generation;   /* atomic */

#define INFO_READERS 8   /* openers remembered per file; more get fresh sizes */

struct info_cached {
	char *text;
	size_t len;
	int64_t built_ns;
	uint64_t generation;
	/* Read-only handles open on the file, by the process that opened
	 * them: that process's stat gets the length of the snapshot it reads. */
	struct {
		pid_t pid;
		unsigned n;
		size_t len;
	} readers[INFO_READERS];
};

/* Prometheus histogram buckets shown: upper bounds (histogram.h buckets)
 * from 4 us to 8 s, every other bucket; finer ones add lines, not insight. */
static const unsigned metric_buckets[] = { 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 23 };

/* ---- a growing text buffer ------------------------------------------------ */

/* err is sticky so callers check once at the end. */
struct sbuf {
	char *p;
	size_t len, cap;
	int err;
};

static void
sbuf_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->err != 0)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (p == NULL) {
			b->err = -ENOMEM;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
sbuf_str(struct sbuf *b, const char *s)
{
	sbuf_add(b, s, strlen(s));
}

static void __attribute__((format(printf, 2, 3)))
sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->err = -EINVAL;
		return;
	}
	sbuf_add(b, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

static void
sbuf_kv(struct sbuf *b, const char *name, const char *value)
{
	sbuf_str(b, name);
	sbuf_add(b, "=", 1);
	sbuf_str(b, value);
	sbuf_add(b, "\n", 1);
}

/* txn_stat_fn: the engine's statistics become lines. */
static void
info_stat_line(void *arg, const char *name, const char *value)
{
	sbuf_kv(arg, name, value);
}

/* ---- values of the sections ------------------------------------------------ */

/* A node-wide section's values: the engine's, the daemon's, or this file's. */
static void
section_values(enum stat_section s, struct info_values *out)
{

	memset(out, 0, sizeof(*out));
	switch (s) {
	case STAT_SECTION_NODE:
		txn_node_values(recfsd.node, out->v);
		break;
	case STAT_SECTION_FUSE:
		stats_sum(out->v);
		out->v[STAT_fuse_inodes] = inode_count();
		out->v[STAT_fuse_open_handles] = handle_count();
		out->v[STAT_fuse_dirty_chunk_bytes] = chunkfile_dirty_bytes();
		out->v[STAT_fuse_read_ahead_bytes] = readahead_bytes();
		break;
	case STAT_SECTION_FABRIC:
		txn_node_fabric_values(recfsd.node, out->v);
		break;
	case STAT_SECTION_BUILD:
		out->text[BUILD_version] = RECFS_VERSION;
		out->text[BUILD_fuse_library] = fuse_pkgversion();
		break;
	case STAT_SECTION_NODE_ID:
		out->text[NODEID_node_id] = info_node_id;
		break;
	case STAT_SECTION_CLUSTER:
		cluster_values(out);
		break;
	default:
		break;
	}
}

static void
set_values(const struct txn_set_info *si, uint64_t v[STAT_SET_COUNT])
{
	v[STAT_SET_objects] = si->objects;
	v[STAT_SET_tombstones] = si->tombstones;
	v[STAT_SET_data_used_bytes] = si->data_bytes;
}

/* "name=value" lines for the rows of a section. */
static void
emit_text(struct sbuf *b, enum stat_section s, const uint64_t *v, const char *const *text)
{
	size_t n;
	const struct statistic *rows = statistic_rows(s, &n);

	for (size_t i = 0; i < n; i++) {
		char buf[32];

		if (rows[i].kind == STAT_TEXT) {
			sbuf_kv(b, rows[i].name, text != NULL && text[i] != NULL ? text[i] : "");
			continue;
		}
		statistic_format(&rows[i], v[i], buf, sizeof(buf));
		sbuf_kv(b, rows[i].name, buf);
	}
}

static void
emit_section(struct sbuf *b, enum stat_section s)
{
	struct info_values iv;

	pthread_mutex_lock(&info_cluster_lock);   /* the cluster section's texts */
	section_values(s, &iv);
	emit_text(b, s, iv.v, iv.text);
	pthread_mutex_unlock(&info_cluster_lock);
}

/* ---- peers ---------------------------------------------------------------------- */

/* One line per other node: "node_id=... address=... state=alive ...". */
static void
info_peers(struct sbuf *b)
{
	struct txn_peer *p;
	unsigned n;

	p = calloc(INFO_PEERS_MAX, sizeof(*p));
	if (p == NULL) {
		b->err = -ENOMEM;
		return;
	}
	n = txn_node_peers(recfsd.node, p, INFO_PEERS_MAX);
	for (unsigned i = 0; i < n && i < INFO_PEERS_MAX; i++) {
		char age[24];

		if (p[i].heard)
			snprintf(age, sizeof(age), "%" PRIu64, p[i].age_ms);
		else
			snprintf(age, sizeof(age), "never");
		sbuf_printf(b, "node_id=%016" PRIx64 " address=%s state=%s heartbeat_age_ms=%s "
		    "connection=%s bytes_sent=%" PRIu64 " bytes_received=%" PRIu64
		    " msgs_sent=%" PRIu64 " msgs_received=%" PRIu64 " connects=%" PRIu64
		    " auth_failures=%" PRIu64 " queued_bytes=%" PRIu64 "\n",
		    p[i].node_id, p[i].address[0] != '\0' ? p[i].address : "-",
		    p[i].alive ? "alive" : "dead", age, p[i].connected ? "connected" : "disconnected",
		    p[i].bytes_sent, p[i].bytes_received, p[i].msgs_sent, p[i].msgs_received,
		    p[i].connects, p[i].auth_failures, p[i].queued_bytes);
	}
	free(p);
}

/* ---- partitions ------------------------------------------------------------------ */

/* One line per partition and namespace:
 * "ns=test pid=0 role=master state=S replicas=00..03,00..01 working_master=00..03"
 * (role: of the working master, where operations run; replicas: the final ones). */
static void
info_partitions(struct sbuf *b)
{
	unsigned n_ns = node_namespace_count(recfsd.node);
	struct txn_partition p;

	for (unsigned i = 0; i < n_ns; i++) {
		struct namespace *ns = node_namespace(recfsd.node, i);

		for (uint32_t pid = 0; pid < PARTITION_COUNT && b->err == 0; pid++) {
			if (txn_partition_get(ns, pid, &p) != 0)
				break;
			sbuf_printf(b, "ns=%s pid=%" PRIu32 " role=%s state=%c replicas=", namespace_name(ns),
			    pid, p.am_master ? "master" : p.am_replica ? "prole" : "none", p.state);
			for (unsigned k = 0; k < p.n_replicas; k++)
				sbuf_printf(b, "%s%016" PRIx64, k ? "," : "", p.replicas[k]);
			sbuf_printf(b, " working_master=%016" PRIx64, p.master);
			sbuf_add(b, "\n", 1);
		}
	}
}

/* ---- latencies ---------------------------------------------------------------- */

/* "{test}-read.count=12" ... for one histogram. */
static void
latency_lines(struct sbuf *b, const char *name, const struct histogram_snapshot *h)
{
	sbuf_printf(b, "%s.count=%" PRIu64 "\n", name, h->count);
	sbuf_printf(b, "%s.ge_1ms_pct=%.2f\n", name, histogram_at_least_ms_pct(h, 1));
	sbuf_printf(b, "%s.ge_8ms_pct=%.2f\n", name, histogram_at_least_ms_pct(h, 8));
	sbuf_printf(b, "%s.ge_64ms_pct=%.2f\n", name, histogram_at_least_ms_pct(h, 64));
	sbuf_printf(b, "%s.p50_us=%" PRIu64 "\n", name, histogram_percentile_us(h, 50.0));
	sbuf_printf(b, "%s.p99_us=%" PRIu64 "\n", name, histogram_percentile_us(h, 99.0));
	sbuf_printf(b, "%s.p999_us=%" PRIu64 "\n", name, histogram_percentile_us(h, 99.9));
}

static void
info_latencies(struct sbuf *b)
{
	unsigned n_ns = node_namespace_count(recfsd.node);
	struct histogram_snapshot ns_h[STAT_LAT_NS_COUNT], fuse_h[STAT_LAT_FUSE_COUNT];
	struct histogram_snapshot fabric_h[STAT_LAT_FABRIC_COUNT];
	size_t n;
	const struct statistic *rows = statistic_rows(STAT_SECTION_LATENCY_NS, &n);
	char name[96];

	for (unsigned i = 0; i < n_ns; i++) {
		struct namespace *ns = node_namespace(recfsd.node, i);

		txn_namespace_latencies(ns, ns_h);
		for (size_t r = 0; r < n; r++) {
			snprintf(name, sizeof(name), "{%s}-%s", namespace_name(ns), rows[r].name);
			latency_lines(b, name, &ns_h[r]);
		}
	}
	rows = statistic_rows(STAT_SECTION_LATENCY_FUSE, &n);
	stats_latencies(fuse_h);
	for (size_t r = 0; r < n; r++) {
		snprintf(name, sizeof(name), "fuse-%s", rows[r].name);
		latency_lines(b, name, &fuse_h[r]);
	}
	rows = statistic_rows(STAT_SECTION_LATENCY_FABRIC, &n);
	txn_node_fabric_latencies(recfsd.node, fabric_h);
	for (size_t r = 0; r < n; r++) {
		snprintf(name, sizeof(name), "fabric-%s", rows[r].name);
		latency_lines(b, name, &fabric_h[r]);
	}
}

/* ---- metrics (Prometheus text exposition format 0.0.4) ------------------------ */

/* Length of the valid UTF-8 sequence at s (1..4), or 0. */
static size_t
utf8_len(const unsigned char *s)
{
	size_t n = s[0] < 0x80 ? 1 : s[0] >= 0xc2 && s[0] < 0xe0 ? 2 : s[0] >= 0xe0 && s[0] < 0xf0 ? 3 :
	    s[0] >= 0xf0 && s[0] < 0xf5 ? 4 : 0;

	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

/* A label value: backslash, double quote and newline escaped.  Set names
 * are bytes and labels must be UTF-8: a byte that starts no valid UTF-8
 * sequence, or a control character, becomes '?'. */
static void
metric_label_value(struct sbuf *b, const char *s)
{
	while (*s != '\0') {
		unsigned char c = (unsigned char)*s;
		size_t n = utf8_len((const unsigned char *)s);

		if (c == '\\' || c == '"') {
			sbuf_add(b, "\\", 1);
			sbuf_add(b, s, 1);
		} else if (c == '\n') {
			sbuf_add(b, "\\n", 2);
		} else if (n == 0 || c < 0x20 || c == 0x7f) {
			sbuf_add(b, "?", 1);
			n = 1;
		} else {
			sbuf_add(b, s, n);
		}
		s += n;
	}
}

static void
metric_head(struct sbuf *b, const char *family, const struct statistic *row)
{
	sbuf_printf(b, "# HELP %s ", family);
	/* HELP text escapes backslash and newline only. */
	for (const char *h = row->help; *h != '\0'; h++) {
		if (*h == '\\')
			sbuf_add(b, "\\\\", 2);
		else if (*h == '\n')
			sbuf_add(b, "\\n", 2);
		else
			sbuf_add(b, h, 1);
	}
	sbuf_printf(b, "\n# TYPE %s %s\n", family, statistic_metric_type(row));
}

/* The family name (statistic_metric_name: Prometheus's suffixes). */
static void
metric_family(const struct stat_section_info *si, const struct statistic *row, char *buf,
    size_t size)
{
	statistic_metric_name(row, si, buf, size);
}

/* A numeric row's sample value, in its family's unit. */
static void
metric_value(struct sbuf *b, const struct statistic *row, uint64_t v)
{
	char buf[32];

	statistic_metric_value(row, v, buf, sizeof(buf));
	sbuf_str(b, buf);
	sbuf_add(b, "\n", 1);
}

/* "0.000004": seconds of a bucket bound, without trailing zeros. */
static void
metric_seconds(uint64_t us, char *buf, size_t size)
{
	size_t n;

	snprintf(buf, size, "%" PRIu64 ".%06" PRIu64, us / 1000000, us % 1000000);
	n = strlen(buf);
	while (n > 0 && buf[n - 1] == '0')
		buf[--n] = '\0';
	if (n > 0 && buf[n - 1] == '.')
		buf[--n] = '\0';
}

/* One histogram's samples; labels is "" or `namespace="test",`. */
static void
metric_histogram(struct sbuf *b, const char *family, const char *labels,
    const struct histogram_snapshot *h)
{
	char le[32];

	for (size_t i = 0; i < sizeof(metric_buckets) / sizeof(metric_buckets[0]); i++) {
		uint64_t limit = histogram_bucket_limit_us(metric_buckets[i]);

		metric_seconds(limit, le, sizeof(le));
		sbuf_printf(b, "%s_bucket{%sle=\"%s\"} %" PRIu64 "\n", family, labels, le,
		    histogram_count_below_us(h, limit));
	}
	sbuf_printf(b, "%s_bucket{%sle=\"+Inf\"} %" PRIu64 "\n", family, labels, h->count);
	sbuf_printf(b, "%s_sum%s%.*s%s %.9f\n", family, labels[0] ? "{" : "",
	    labels[0] ? (int)strlen(labels) - 1 : 0, labels, labels[0] ? "}" : "",
	    (double)h->sum_ns / 1e9);
	sbuf_printf(b, "%s_count%s%.*s%s %" PRIu64 "\n", family, labels[0] ? "{" : "",
	    labels[0] ? (int)strlen(labels) - 1 : 0, labels, labels[0] ? "}" : "", h->count);
}

/* A node-wide section: one sample per row. */
static void
metrics_node_section(struct sbuf *b, enum stat_section s)
{
	const struct stat_section_info *si = statistic_section(s);
	struct info_values iv;
	size_t n;
	const struct statistic *rows = statistic_rows(s, &n);
	char family[128];

	pthread_mutex_lock(&info_cluster_lock);   /* the cluster section's texts */
	section_values(s, &iv);
	for (size_t i = 0; i < n; i++) {
		if (rows[i].flags & STAT_F_ALIAS)
			continue;
		metric_family(si, &rows[i], family, sizeof(family));
		metric_head(b, family, &rows[i]);
		if (rows[i].kind == STAT_TEXT) {
			sbuf_printf(b, "%s{%s=\"", family, rows[i].name);
			metric_label_value(b, iv.text[i] != NULL ? iv.text[i] : "");
			sbuf_str(b, "\"} 1\n");
		} else {
			sbuf_printf(b, "%s ", family);
			metric_value(b, &rows[i], iv.v[i]);
		}
	}
	pthread_mutex_unlock(&info_cluster_lock);
}

struct set_list {
	struct set_entry {
		unsigned ns;
		struct txn_set_info info;
	} *e;
	size_t n, cap;
	unsigned ns;
	int err;
};

static int
set_list_add(void *arg, const struct txn_set_info *info)
{
	struct set_list *l = arg;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct set_entry *e = realloc(l->e, cap * sizeof(*e));

		if (e == NULL) {
			l->err = -ENOMEM;
			return 1;
		}
		l->e = e;
		l->cap = cap;
	}
	l->e[l->n].ns = l->ns;
	l->e[l->n].info = *info;
	l->n++;
	return 0;
}

static void
metric_ns_label(struct sbuf *b, struct namespace *ns)
{
	sbuf_str(b, "namespace=\"");
	metric_label_value(b, namespace_name(ns));
	sbuf_str(b, "\"");
}

/*
 * Everything in one exposition.  Prometheus wants each family's samples
 * together, so values are gathered first (every namespace, every set) and
 * printed row by row.
 */
static void
info_metrics(struct sbuf *b)
{
	static const enum stat_section node_sections[] = {
		STAT_SECTION_NODE, STAT_SECTION_FUSE, STAT_SECTION_FABRIC, STAT_SECTION_BUILD,
		STAT_SECTION_NODE_ID, STAT_SECTION_CLUSTER,
	};
	unsigned n_ns = node_namespace_count(recfsd.node);
	uint64_t (*nsv)[STAT_NS_COUNT] = calloc(n_ns ? n_ns : 1, sizeof(*nsv));
	struct histogram_snapshot (*lat)[STAT_LAT_NS_COUNT] = calloc(n_ns ? n_ns : 1, sizeof(*lat));
	struct histogram_snapshot fuse_h[STAT_LAT_FUSE_COUNT], fabric_h[STAT_LAT_FABRIC_COUNT];
	struct set_list sets = { 0 };
	const struct stat_section_info *si;
	const struct statistic *rows;
	char family[128];
	size_t n;

	if (nsv == NULL || lat == NULL) {
		b->err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < sizeof(node_sections) / sizeof(node_sections[0]); i++)
		metrics_node_section(b, node_sections[i]);

	for (unsigned i = 0; i < n_ns; i++) {
		struct namespace *ns = node_namespace(recfsd.node, i);

		txn_namespace_values(ns, nsv[i]);
		txn_namespace_latencies(ns, lat[i]);
		sets.ns = i;
		txn_set_foreach(ns, set_list_add, &sets);
	}
	if (sets.err != 0) {
		b->err = sets.err;
		goto out;
	}
	si = statistic_section(STAT_SECTION_NAMESPACE);
	rows = statistic_rows(STAT_SECTION_NAMESPACE, &n);
	for (size_t r = 0; r < n; r++) {
		metric_family(si, &rows[r], family, sizeof(family));
		metric_head(b, family, &rows[r]);
		for (unsigned i = 0; i < n_ns; i++) {
			sbuf_printf(b, "%s{", family);
			metric_ns_label(b, node_namespace(recfsd.node, i));
			sbuf_str(b, "} ");
			metric_value(b, &rows[r], nsv[i][r]);
		}
	}
	si = statistic_section(STAT_SECTION_SET);
	rows = statistic_rows(STAT_SECTION_SET, &n);
	for (size_t r = 0; r < n; r++) {
		metric_family(si, &rows[r], family, sizeof(family));
		metric_head(b, family, &rows[r]);
		for (size_t j = 0; j < sets.n; j++) {
			uint64_t v[STAT_SET_COUNT];

			set_values(&sets.e[j].info, v);
			sbuf_printf(b, "%s{", family);
			metric_ns_label(b, node_namespace(recfsd.node, sets.e[j].ns));
			sbuf_str(b, ",set=\"");
			metric_label_value(b, sets.e[j].info.name);
			sbuf_str(b, "\"} ");
			metric_value(b, &rows[r], v[r]);
		}
	}
	si = statistic_section(STAT_SECTION_LATENCY_NS);
	rows = statistic_rows(STAT_SECTION_LATENCY_NS, &n);
	for (size_t r = 0; r < n; r++) {
		metric_family(si, &rows[r], family, sizeof(family));
		metric_head(b, family, &rows[r]);
		for (unsigned i = 0; i < n_ns; i++) {
			struct sbuf labels = { 0 };

			metric_ns_label(&labels, node_namespace(recfsd.node, i));
			sbuf_add(&labels, ",", 1);
			if (labels.err != 0) {
				b->err = labels.err;
			} else {
				metric_histogram(b, family, labels.p, &lat[i][r]);
			}
			free(labels.p);
		}
	}
	si = statistic_section(STAT_SECTION_LATENCY_FUSE);
	rows = statistic_rows(STAT_SECTION_LATENCY_FUSE, &n);
	stats_latencies(fuse_h);
	for (size_t r = 0; r < n; r++) {
		metric_family(si, &rows[r], family, sizeof(family));
		metric_head(b, family, &rows[r]);
		metric_histogram(b, family, "", &fuse_h[r]);
	}
	si = statistic_section(STAT_SECTION_LATENCY_FABRIC);
	rows = statistic_rows(STAT_SECTION_LATENCY_FABRIC, &n);
	txn_node_fabric_latencies(recfsd.node, fabric_h);
	for (size_t r = 0; r < n; r++) {
		metric_family(si, &rows[r], family, sizeof(family));
		metric_head(b, family, &rows[r]);
		metric_histogram(b, family, "", &fabric_h[r]);
	}
out:
	free(nsv);
	free(lat);
	free(sets.e);
}

/* ---- configuration files ------------------------------------------------------ */

static const struct config_param *
config_row(const struct inode *ino)
{
	size_t n;
	const struct config_param *p = config_params(&n);

	return ino->slot < n ? &p[ino->slot] : NULL;
}

static int
ns_index_of(const struct inode *ino)
{
	return ino->ns != NULL ? namespace_config_index(ino->ns) : -1;
}

bool
info_writable(const struct inode *ino)
{
	const struct config_param *p;

	if (ino->kind != INODE_INFO_FILE || ino->info != INFO_CONFIG)
		return false;
	p = config_row(ino);
	return p != NULL && p->dynamic;
}

static int
info_config(struct sbuf *b, const struct inode *ino)
{
	const struct config_param *p = config_row(ino);
	char *value = malloc(CONFIG_PATH_MAX);
	int rc;

	if (value == NULL)
		return -ENOMEM;
	rc = p == NULL ? -ENOENT : config_get_text(recfsd.cfg, ns_index_of(ino), p->section, p->name,
	    value, CONFIG_PATH_MAX);
	if (rc == 0) {
		sbuf_str(b, value);
		sbuf_add(b, "\n", 1);
	}
	free(value);
	return rc;
}

/* Apply what a writer wrote (inode lock held); the pending bytes go either way. */
static int
config_apply_locked(struct handle *h)
{
	struct inode *ino = h->inode;
	const struct config_param *p = config_row(ino);
	char err[256] = "";
	int rc;

	if (p == NULL)
		return -ENOENT;
	h->data[h->len] = '\0';
	rc = node_config_set(recfsd.node, ns_index_of(ino), p->section, p->name, h->data, err,
	    sizeof(err));
	h->len = 0;
	h->dirty = false;
	if (rc == 0)
		atomic_inc(&info_generation);
	return rc;
}

long
info_write(struct handle *h, const char *buf, size_t size, off_t off)
{
	struct inode *ino = h->inode;
	long rc = (long)size;

	if (!info_writable(ino) || (h->flags & O_ACCMODE) == O_RDONLY)
		return -EBADF;
	if (off < 0 || (uint64_t)off + size >= CONFIG_PATH_MAX)
		return -EINVAL;  /* no value is that long */
	pthread_mutex_lock(&ino->lock);
	if ((size_t)off + size + 1 > h->cap) {
		size_t cap = (size_t)off + size + 1 < 64 ? 64 : (size_t)off + size + 1;
		char *p = realloc(h->data, cap);

		if (p == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		h->data = p;
		h->cap = cap;
	}
	if ((size_t)off > h->len)
		memset(h->data + h->len, ' ', (size_t)off - h->len);
	memcpy(h->data + off, buf, size);
	if ((size_t)off + size > h->len)
		h->len = (size_t)off + size;
	h->dirty = true;
	/* "echo 40 > file": a whole line is a value; apply it now, so that a
	 * refused value fails this write(2), which the shell reports. */
	if (h->len > 0 && h->data[h->len - 1] == '\n') {
		int r = config_apply_locked(h);

		if (r != 0)
			rc = r;
	}
out:
	pthread_mutex_unlock(&ino->lock);
	return rc;
}

int
info_flush(struct handle *h)
{
	struct inode *ino = h->inode;
	int rc = 0;

	if (!info_writable(ino))
		return 0;
	pthread_mutex_lock(&ino->lock);
	/* A value written without a newline (printf 40 > file) applies at close. */
	if (h->dirty && h->len > 0)
		rc = config_apply_locked(h);
	h->dirty = false;
	pthread_mutex_unlock(&ino->lock);
	return rc;
}

/* ---- snapshots ------------------------------------------------------------------ */

static void
info_namespaces(struct sbuf *b)
{
	unsigned n = node_namespace_count(recfsd.node);

	for (unsigned i = 0; i < n; i++) {
		sbuf_str(b, namespace_name(node_namespace(recfsd.node, i)));
		sbuf_add(b, "\n", 1);
	}
}

const char *
info_file_name(enum info_file f)
{
	return f < INFO_FILE_COUNT ? info_names[f] : "?";
}

void
info_set_node_id(const char *id)
{
	uint64_t key = 0;

	snprintf(info_node_id, sizeof(info_node_id), "%s", id);
	/* The membership (this node alone) begins now: a fresh cluster key.
	 * Without the random source, the start time will do. */
	if (getrandom(&key, sizeof(key), 0) != (ssize_t)sizeof(key) || key == 0)
		key = clock_mono_ns() ^ ((uint64_t)getpid() << 32);
	snprintf(info_cluster_key, sizeof(info_cluster_key), "%016" PRIx64, key);
	iso_time(clock_epoch_ms(), info_start_time, sizeof(info_start_time));
}

static int
info_build(const struct inode *ino, char **out, size_t *len)
{
	struct sbuf b = { 0 };
	int rc = 0;

	switch ((enum info_file)ino->info) {
	case INFO_STATISTICS:
		emit_section(&b, STAT_SECTION_NODE);
		emit_section(&b, STAT_SECTION_FUSE);
		emit_section(&b, STAT_SECTION_FABRIC);
		break;
	case INFO_BUILD:
		emit_section(&b, STAT_SECTION_BUILD);
		break;
	case INFO_NODE:
		emit_section(&b, STAT_SECTION_NODE_ID);
		break;
	case INFO_NAMESPACES:
		info_namespaces(&b);
		break;
	case INFO_LATENCIES:
		info_latencies(&b);
		break;
	case INFO_METRICS:
		info_metrics(&b);
		break;
	case INFO_CLUSTER:
		emit_section(&b, STAT_SECTION_CLUSTER);
		break;
	case INFO_PEERS:
		info_peers(&b);
		break;
	case INFO_PARTITIONS:
		info_partitions(&b);
		break;
	case INFO_NAMESPACE:
		txn_namespace_stats(ino->ns, info_stat_line, &b);
		break;
	case INFO_SET: {
		struct txn_set_info si;
		uint64_t v[STAT_SET_COUNT];

		rc = txn_set_info(ino->ns, ino->name, ino->set_len, &si);
		if (rc != 0)
			break;  /* the set is gone */
		set_values(&si, v);
		emit_text(&b, STAT_SECTION_SET, v, NULL);
		break;
	}
	case INFO_CONFIG:
		rc = info_config(&b, ino);
		break;
	}
	sbuf_add(&b, "", 0);  /* an empty file still gets a buffer */
	if (rc == 0)
		rc = b.err;
	if (rc != 0) {
		free(b.p);
		return rc;
	}
	*out = b.p;
	*len = b.len;
	return 0;
}

/* The inode's cache entry, created on first use; inode lock held. */
static struct info_cached *
cached_locked(struct inode *ino)
{
	if (ino->info_cached == NULL)
		ino->info_cached = calloc(1, sizeof(*ino->info_cached));
	return ino->info_cached;
}

int
info_snapshot(struct inode *ino, char **out, size_t *len)
{
	struct info_cached *c;
	int64_t now = recfsd_now_ns();

	/* Hand out the snapshot whose length stat just reported, if recent,
	 * so that tar and rsync read exactly st_size bytes. */
	pthread_mutex_lock(&ino->lock);
	c = ino->info_cached;
	if (c != NULL && now - c->built_ns < INFO_REUSE_NS &&
	    c->generation == atomic_load_relaxed(&info_generation)) {
		*out = malloc(c->len + 1);
		if (*out != NULL) {
			memcpy(*out, c->text, c->len + 1);
			*len = c->len;
			pthread_mutex_unlock(&ino->lock);
			return 0;
		}
	}
	pthread_mutex_unlock(&ino->lock);
	return info_build(ino, out, len);
}

void
info_reader_open(struct inode *ino, pid_t pid, size_t len)
{
	struct info_cached *c;

	if (pid <= 0)
		return;
	pthread_mutex_lock(&ino->lock);
	c = cached_locked(ino);
	for (unsigned i = 0; c != NULL && i < INFO_READERS; i++) {
		if (c->readers[i].n == 0 || c->readers[i].pid == pid) {
			c->readers[i].pid = pid;
			c->readers[i].n++;
			c->readers[i].len = len;
			break;
		}
	}
	pthread_mutex_unlock(&ino->lock);
}

void
info_reader_close(struct inode *ino, pid_t pid)
{
	struct info_cached *c;

	pthread_mutex_lock(&ino->lock);
	c = ino->info_cached;
	for (unsigned i = 0; c != NULL && pid > 0 && i < INFO_READERS; i++) {
		if (c->readers[i].n > 0 && c->readers[i].pid == pid) {
			c->readers[i].n--;
			break;
		}
	}
	pthread_mutex_unlock(&ino->lock);
}

size_t
info_size(struct inode *ino, pid_t pid)
{
	uint64_t gen = atomic_load_relaxed(&info_generation);
	struct info_cached *c;
	char *p;
	size_t len;

	pthread_mutex_lock(&ino->lock);
	c = ino->info_cached;
	for (unsigned i = 0; c != NULL && pid > 0 && i < INFO_READERS; i++) {
		if (c->readers[i].n > 0 && c->readers[i].pid == pid) {
			len = c->readers[i].len;
			pthread_mutex_unlock(&ino->lock);
			return len;
		}
	}
	pthread_mutex_unlock(&ino->lock);
	if (info_build(ino, &p, &len) != 0)
		return 0;
	pthread_mutex_lock(&ino->lock);
	c = cached_locked(ino);
	if (c != NULL) {
		free(c->text);
		c->text = p;
		c->len = len;
		c->built_ns = recfsd_now_ns();
		c->generation = gen;
		p = NULL;
	}
	pthread_mutex_unlock(&ino->lock);
	free(p);
	return len;
}

void
info_inode_fini(struct inode *ino)
{
	if (ino->info_cached != NULL) {
		free(ino->info_cached->text);
		free(ino->info_cached);
		ino->info_cached = NULL;
	}
}
