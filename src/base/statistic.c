/*
 * statistic.c - the statistics table as data, and docs/statistics.md (see
 * statistic.h).
 *
 * The X-macro sections become one const array per section, so a producer's
 * dense enum (STAT_NS_objects...) indexes its section's rows directly.
 * Formatting lives here so that every file shows a value the same way.
 *
 * Rejected: a single flat table with a section column (a producer would
 * have to filter it at run time and could not have a compile-time enum of
 * its own rows); rows shared between sections by a bitmask (help texts
 * differ per file: "records of the set" is not "records of the node").
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "statistic.h"

#define X(sec, table, file, prefix, what) \
	static const struct statistic rows_##sec[] = { table(X_ROW_##sec) };
/* Each section's rows carry its own section id. */
#define X_ROW_NODE(n, k, u, f, h) { #n, STAT_SECTION_NODE, STAT_##k, u, f, h },
#define X_ROW_FUSE(n, k, u, f, h) { #n, STAT_SECTION_FUSE, STAT_##k, u, f, h },
#define X_ROW_FABRIC(n, k, u, f, h) { #n, STAT_SECTION_FABRIC, STAT_##k, u, f, h },
#define X_ROW_BUILD(n, k, u, f, h) { #n, STAT_SECTION_BUILD, STAT_##k, u, f, h },
#define X_ROW_NODE_ID(n, k, u, f, h) { #n, STAT_SECTION_NODE_ID, STAT_##k, u, f, h },
#define X_ROW_CLUSTER(n, k, u, f, h) { #n, STAT_SECTION_CLUSTER, STAT_##k, u, f, h },
#define X_ROW_NAMESPACE(n, k, u, f, h) { #n, STAT_SECTION_NAMESPACE, STAT_##k, u, f, h },
#define X_ROW_SET(n, k, u, f, h) { #n, STAT_SECTION_SET, STAT_##k, u, f, h },
#define X_ROW_LATENCY_NS(n, k, u, f, h) { #n, STAT_SECTION_LATENCY_NS, STAT_##k, u, f, h },
#define X_ROW_LATENCY_FUSE(n, k, u, f, h) { #n, STAT_SECTION_LATENCY_FUSE, STAT_##k, u, f, h },
#define X_ROW_LATENCY_FABRIC(n, k, u, f, h) { #n, STAT_SECTION_LATENCY_FABRIC, STAT_##k, u, f, h },
STATISTICS_SECTIONS(X)
#undef X

static const struct {
	const struct statistic *rows;
	size_t n;
	struct stat_section_info info;
} sections[STAT_SECTION_COUNT] = {
#define X(sec, table, file, prefix, what) \
	[STAT_SECTION_##sec] = { rows_##sec, sizeof(rows_##sec) / sizeof(rows_##sec[0]), \
	    { #sec, file, prefix, what } },
	STATISTICS_SECTIONS(X)
#undef X
};

const struct statistic *
statistic_rows(enum stat_section s, size_t *n)
{
	if ((unsigned)s >= STAT_SECTION_COUNT) {
		*n = 0;
		return NULL;
	}
	*n = sections[s].n;
	return sections[s].rows;
}

const struct stat_section_info *
statistic_section(enum stat_section s)
{
	return (unsigned)s < STAT_SECTION_COUNT ? &sections[s].info : NULL;
}

int
statistic_section_find(const char *name)
{
	for (int s = 0; s < STAT_SECTION_COUNT; s++)
		if (strcmp(sections[s].info.name, name) == 0)
			return s;
	return -1;
}

const char *
statistic_metric_type(const struct statistic *row)
{
	switch (row->kind) {
	case STAT_COUNTER:
		return "counter";
	case STAT_HISTOGRAM:
		return "histogram";
	default:
		return "gauge";  /* BOOL as 0/1, TEXT as an _info gauge of 1 */
	}
}

/* Prometheus wants base units (seconds, bytes, ratios of 1) named in the
 * family, and counters ending in _total; the .info files keep Aerospike's
 * names and units.  Decided here, by kind and unit, for every row. */
void
statistic_metric_name(const struct statistic *row, const struct stat_section_info *si, char *buf,
    size_t size)
{
	const char *name = row->name;
	size_t len = strlen(name);
	const char *unit = row->unit;
	const char *suffix = "";
	int keep = (int)len;

	if (row->kind == STAT_TEXT) {
		suffix = "_info";
	} else if (row->kind == STAT_HISTOGRAM) {
		suffix = "_latency_seconds";
	} else if (strcmp(unit, "%") == 0) {
		if (len > 4 && strcmp(name + len - 4, "_pct") == 0)
			keep = (int)len - 4;
		suffix = "_ratio";
	} else if (strcmp(unit, "s") == 0 || strcmp(unit, "ms") == 0 || strcmp(unit, "us") == 0) {
		suffix = "_seconds";
	} else if (strcmp(unit, "bytes") == 0 &&
	    !(len > 6 && strcmp(name + len - 6, "_bytes") == 0)) {
		suffix = "_bytes";
	}
	snprintf(buf, size, "%s%.*s%s%s", si->prefix, keep, name, suffix,
	    row->kind == STAT_COUNTER ? "_total" : "");
}

/* "12.345": n / 10^digits, without trailing zeros. */
static void
format_decimal(uint64_t n, unsigned digits, char *buf, size_t size)
{
	uint64_t div = 1;
	size_t len;

	for (unsigned i = 0; i < digits; i++)
		div *= 10;
	snprintf(buf, size, "%" PRIu64 ".%0*" PRIu64, n / div, (int)digits, n % div);
	len = strlen(buf);
	while (len > 0 && buf[len - 1] == '0')
		buf[--len] = '\0';
	if (len > 0 && buf[len - 1] == '.')
		buf[--len] = '\0';
}

void
statistic_metric_value(const struct statistic *row, uint64_t value, char *buf, size_t size)
{
	if (strcmp(row->unit, "%") == 0)
		format_decimal(value, 2, buf, size);
	else if (strcmp(row->unit, "ms") == 0)
		format_decimal(value, 3, buf, size);
	else if (strcmp(row->unit, "us") == 0)
		format_decimal(value, 6, buf, size);
	else
		snprintf(buf, size, "%" PRIu64, value);
}

void
statistic_format(const struct statistic *row, uint64_t value, char *buf, size_t size)
{
	if (row->kind == STAT_BOOL)
		snprintf(buf, size, "%s", value ? "true" : "false");
	else
		snprintf(buf, size, "%" PRIu64, value);
}

/* ---- docs/statistics.md ------------------------------------------------- */

static const char *
kind_doc(enum stat_kind k)
{
	static const char *const names[] = {
		[STAT_COUNTER] = "counter", [STAT_GAUGE] = "gauge", [STAT_BOOL] = "bool",
		[STAT_TEXT] = "text", [STAT_HISTOGRAM] = "histogram",
	};
	return names[k];
}

/* The Prometheus family a row becomes (see fuse/info.c). */
static void
metric_doc(const struct statistic *r, const struct stat_section_info *si, char *buf, size_t size)
{
	if (r->flags & STAT_F_ALIAS)
		snprintf(buf, size, "(as in %s)", "statistics");
	else {
		char name[128];

		statistic_metric_name(r, si, name, sizeof(name));
		if (r->kind == STAT_TEXT)
			snprintf(buf, size, "`%s{%s=\"...\"}`", name, r->name);
		else
			snprintf(buf, size, "`%s`", name);
	}
}

void
statistic_write_markdown(FILE *out)
{
	fputs("# Statistics\n\n"
	    "<!-- Generated by tools/gen-stats-doc from src/base/statistic.h; do not edit.\n"
	    "     tests/check_docs.sh fails make check when this file is stale. -->\n\n"
	    "Every statistic recfs shows is one row of the table in `src/base/statistic.h`;\n"
	    "the `.info` files, `.info/metrics`, the ticker log line and this page are\n"
	    "generated from it.  Names follow Aerospike's where the concept is the same.\n\n"
	    "## Where they are\n\n"
	    "Files under `MOUNT/.info/` are read-only snapshots built when opened, one\n"
	    "`name=value` per line, with `st_size` equal to what `cat` returns (so `cp`,\n"
	    "`rsync` and `tar` copy them whole; while a process has a file open, its\n"
	    "`stat` reports the length of the snapshot it reads, so tar never sees it\n"
	    "grow):\n\n"
	    "| file | content |\n|---|---|\n"
	    "| `statistics` | node statistics, then the daemon's `fuse_*` counters |\n"
	    "| `build`, `node` | version; node id |\n"
	    "| `namespaces` | one namespace name per line |\n"
	    "| `namespace/<ns>` | the namespace's statistics, then its effective configuration |\n"
	    "| `sets/<ns>/<set>` | one set's statistics |\n"
	    "| `latencies` | latency histograms per operation (below) |\n"
	    "| `cluster` | the cluster as this node sees it |\n"
	    "| `metrics` | all of the above in the Prometheus text exposition format |\n"
	    "| `config/<section>/<name>`, `config/namespaces/<ns>/<name>` | one file per "
	    "configuration parameter (see `configuration.md`): reading gives its value, writing "
	    "changes a dynamic one at once (a bad value is `EINVAL` and changes nothing; a static "
	    "one is read-only, `EACCES`); every change is logged |\n\n"
	    "Kinds: a *counter* only grows (until restart), a *gauge* goes up and down, a *bool*\n"
	    "reads `true`/`false` (1/0 in metrics), *text* is a string (in metrics an `_info`\n"
	    "gauge of 1 with the string as a label).  A metric is named `recfs_` plus the\n"
	    "file's prefix plus the statistic's name, then the suffixes Prometheus's naming\n"
	    "conventions want (`promtool check metrics` passes): counters end in `_total`,\n"
	    "percentages become ratios of 1 (`data_used_pct` 42 is\n"
	    "`recfs_namespace_data_used_ratio` 0.42), durations and times are in seconds\n"
	    "(`_seconds`), sizes in bytes (`_bytes`).  The metric column below gives each\n"
	    "name.\n\n"
	    "## Latencies\n\n"
	    "Each histogram shows in `.info/latencies` as `{<ns>}-<op>.<field>` (namespace\n"
	    "operations), `fuse-<op>.<field>` (FUSE requests) or `fabric-<op>.<field>`\n"
	    "(requests to other nodes) lines, with the fields\n"
	    "`count`, `ge_1ms_pct`, `ge_8ms_pct`, `ge_64ms_pct` (percent of operations\n"
	    "that took at least that long), `p50_us`, `p99_us`, `p999_us` (the 50th, 99th\n"
	    "and 99.9th percentile, as the upper bound of the bucket that holds it).\n"
	    "Buckets are powers of 2 of a microsecond below 1 ms and powers of 2 of a\n"
	    "millisecond above, as Aerospike's.  In metrics each is a Prometheus histogram\n"
	    "in seconds (`_bucket`, `_sum`, `_count`).\n\n"
	    "## The ticker\n\n"
	    "Every `ticker-interval` seconds (0 = off; dynamic) the log gets one line per\n"
	    "namespace with the statistics marked *ticker* below; counters show as a rate\n"
	    "per second since the previous line:\n\n"
	    "```\n"
	    "2026-01-01T00:00:10.000Z INFO ticker: {test} objects=5 data_used_bytes=5120 "
	    "data_avail_pct=99 write_q=0 defrag_q=0 client_read_success_per_sec=0.5 "
	    "client_write_success_per_sec=1.2\n"
	    "```\n", out);
	for (int s = 0; s < STAT_SECTION_COUNT; s++) {
		const struct stat_section_info *si = &sections[s].info;

		fprintf(out, "\n## `%s` (%s)\n\n%s\n\n", si->file, si->name, si->what);
		fputs("| name | kind | unit | metric | help |\n|---|---|---|---|---|\n", out);
		for (size_t i = 0; i < sections[s].n; i++) {
			const struct statistic *r = &sections[s].rows[i];
			char metric[160];

			metric_doc(r, si, metric, sizeof(metric));
			fprintf(out, "| `%s` | %s%s | %s | %s | ", r->name, kind_doc(r->kind),
			    (r->flags & STAT_F_TICK) ? ", ticker" : "", r->unit, metric);
			/* A '|' would end the table cell. */
			for (const char *h = r->help; *h != '\0'; h++)
				fputs(*h == '|' ? "\\|" : (char[]){ *h, '\0' }, out);
			fputs(" |\n", out);
		}
	}
}
