/*
 * recfs-bench.c - the benchmark driver (docs/benchmarks.md): runs every
 * benchmark of the table below, prints a human-readable table and a JSON
 * document of the same rows.
 *
 * The machines this runs on are noisy (2 shared vCPUs), so every target
 * that can be is a ratio to a peer measured side by side in the same run
 * (passthrough_ll over tmpfs, fio on the same file system, the memory
 * engine as the CPU-bound limit of device writes, a single recfsd for
 * the cluster); absolute
 * targets (memory engine ops/s, index bytes) are printed with the load
 * average at start and end so a reader can judge the noise.
 *
 * Adding a benchmark is one row in bench_table (name, group, title,
 * target, function) plus its function in a tools/bench_<group>.c file;
 * state shared by a group is released by the group's cleanup (group_table).
 * A MISS is a result, not a failure: the exit status is 0 when every
 * benchmark measured, 1 when one could not, 2 on a usage error, 130 on
 * an interrupt.  docs/benchmarks.md explains every figure.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#ifndef RECFS_VERSION
#define RECFS_VERSION "unknown"
#endif

volatile sig_atomic_t bench_interrupted;

/* ---- the benchmarks -------------------------------------------------------- */

#define TARGET_MEMORY "target >= 1,000,000 ops/s (write+read combined on 2 cores)"
#define TARGET_INDEX  "target <= 100 + key bytes per record (index + key)"
#define TARGET_MOUNT  "target recfs/passthrough >= 1.0"

#define SECTION_MEMORY "embedded memory engine, 1 KiB records (no FUSE)"
#define SECTION_INDEX  "index memory (after the embedded write phase)"
#define TARGET_DEVICE_WRITE  "target >= 500,000 records/s and device/memory >= 0.70"
#define TARGET_DEVICE_FIO    "target engine/fio >= 0.80"
#define TARGET_DEVICE_DEFRAG "target defrag/no-defrag >= 0.70"

#define SECTION_DEVICE_WRITE  "device engine: 1 KiB record writes vs the memory engine (CPU limit)"
#define SECTION_DEVICE_LARGE  "device engine: 128 KiB record writes vs fio sequential O_DIRECT write"
#define SECTION_DEVICE_COLD   "device engine: cold start scan vs fio sequential read, same file"
#define SECTION_DEVICE_READ   "device engine: random 1 KiB reads from storage vs fio random read"
#define SECTION_DEVICE_DEFRAG "device engine: random 4 KiB overwrites at 50% fill vs defrag off"
#define SECTION_SHADOW "memory engine with a shadow file: 1 KiB records, cold start vs fio sequential read"
#define TARGET_SHADOW_FIO "target >= 1,000,000 ops/s; shadow cold start engine/fio >= 0.80"
#define SECTION_FABRIC "fabric: two in-process nodes on 127.0.0.1 vs a plain loopback TCP connection"
#define SECTION_MOUNT  "through the mount: recfsd vs passthrough_ll over tmpfs, 4 KiB files"
#define TARGET_CLUSTER_MOUNT "target RF 2 writes through the mount >= 0.7x single node"
#define TARGET_CLUSTER_PROXY "target proxied p50 <= local p50 + 2 x TCP RTT"
#define SECTION_CLUSTER_MOUNT "cluster of 3 recfsd on 127.0.0.1 vs a single recfsd, through node A's mount"
#define TARGET_CLUSTER_EMBEDDED "target RF 2 embedded writes >= 0.5x single node"
#define SECTION_CLUSTER_EMBEDDED "cluster: the embedded API (txn_write) in this process as a member at RF 2 vs a single node"
#define SECTION_CLUSTER_PROXY "cluster: reads through node A, proxied vs local, next to loopback TCP"
#define TARGET_CLUSTER_MIGRATE "target moved / min(fio, TCP) >= 0.5; writes during / before >= 0.7"
#define SECTION_CLUSTER_MIGRATE "cluster: a 4th recfsd joins 3 holding a data set at RF 2: migration vs fio and TCP"

static const struct bench_def bench_table[] = {
	{ "memory.write", "memory", SECTION_MEMORY, NULL, bench_memory_write },
	{ "memory.read", "memory", SECTION_MEMORY, NULL, bench_memory_read },
	{ "memory.mixed", "memory", SECTION_MEMORY, TARGET_MEMORY, bench_memory_mixed },
	{ "index.memory", "memory", SECTION_INDEX, TARGET_INDEX, bench_index_memory },
	/* Device engine (bench_device.c): each row judged against a peer measured
	 * in the same run: the memory engine (CPU-bound limit) or fio on the same
	 * file system.  Order matters only for speed: cold_start reopens the
	 * data device.write left, and read uses that reopened node. */
	{ "device.write", "device", SECTION_DEVICE_WRITE, TARGET_DEVICE_WRITE, bench_device_write, 0.7 },
	{ "device.write_large", "device", SECTION_DEVICE_LARGE, TARGET_DEVICE_FIO, bench_device_write_large, 0.8 },
	{ "device.cold_start", "device", SECTION_DEVICE_COLD, TARGET_DEVICE_FIO, bench_device_cold_start, 0.8 },
	{ "device.read", "device", SECTION_DEVICE_READ, TARGET_DEVICE_FIO, bench_device_read, 0.8 },
	{ "device.defrag", "device", SECTION_DEVICE_DEFRAG, TARGET_DEVICE_DEFRAG, bench_device_defrag, 0.7 },
	/* Memory engine with a shadow file (#shadow): same machinery. */
	{ "shadow", "device", SECTION_SHADOW, TARGET_SHADOW_FIO, bench_shadow, 0.8 },
	/* The fabric (bench_fabric.c): informational, next to plain TCP. */
	{ "fabric", "fabric", SECTION_FABRIC, NULL, bench_fabric },
	{ "mount.create", "mount", SECTION_MOUNT, TARGET_MOUNT, bench_mount_create },
	{ "mount.read", "mount", SECTION_MOUNT, TARGET_MOUNT, bench_mount_read },
	/* The cluster (bench_cluster.c): 3 real recfsd nodes against a single
	 * one, side by side; ratios of the same run. */
	{ "cluster.mount", "cluster", SECTION_CLUSTER_MOUNT, TARGET_CLUSTER_MOUNT, bench_cluster_mount, 0.7 },
	{ "cluster.proxy", "cluster", SECTION_CLUSTER_PROXY, TARGET_CLUSTER_PROXY, bench_cluster_proxy },
	/* Last: it stops node A's daemon and takes its place in the cluster. */
	{ "cluster.embedded", "cluster", SECTION_CLUSTER_EMBEDDED, TARGET_CLUSTER_EMBEDDED,
	    bench_cluster_embedded, 0.5 },
	/* Migration (bench_migrate.c): its own four nodes on the device engine;
	 * its rows judge their two targets themselves. */
	{ "cluster.migrate", "migrate", SECTION_CLUSTER_MIGRATE, TARGET_CLUSTER_MIGRATE,
	    bench_cluster_migrate },
};

struct bench_group {
	const char *name;
	void (*cleanup)(struct bench_ctx *ctx);
};

static const struct bench_group group_table[] = {
	{ "memory", bench_memory_cleanup },
	{ "device", bench_device_cleanup },
	{ "mount", bench_mount_cleanup },
	{ "cluster", bench_cluster_cleanup },
	{ "migrate", bench_migrate_cleanup },
};

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- rows ------------------------------------------------------------------ */

struct bench_row *
bench_row_add(struct bench_ctx *ctx, const char *id, const char *label)
{
	struct bench_row *row;

	if (ctx->n_rows >= BENCH_ROWS_MAX)
		return NULL;
	row = &ctx->rows[ctx->n_rows++];
	memset(row, 0, sizeof(*row));
	snprintf(row->id, sizeof(row->id), "%s%s%s", ctx->bench, id[0] ? "." : "", id);
	snprintf(row->label, sizeof(row->label), "%s", label);
	row->mb_per_s = -1;
	row->unit = "";
	row->section = ctx->section;
	return row;
}

void
bench_row_judge(struct bench_ctx *ctx, struct bench_row *row, const char *target, double bound,
    bool at_least)
{
	bool ok = at_least ? row->value >= bound : row->value <= bound;

	row->target = target;
	row->verdict = ok ? VERDICT_PASS : VERDICT_MISS;
	if (!ok)
		ctx->misses++;
}

struct bench_row *
bench_row_error(struct bench_ctx *ctx, const char *id, const char *label, const char *fmt, ...)
{
	struct bench_row *row = bench_row_add(ctx, id, label);
	va_list ap;

	ctx->errors++;
	if (row == NULL)
		return NULL;
	row->verdict = VERDICT_ERROR;
	va_start(ap, fmt);
	vsnprintf(row->note, sizeof(row->note), fmt, ap);
	va_end(ap);
	bench_progress("ERROR %s: %s", row->id, row->note);
	return row;
}

void
bench_note(struct bench_ctx *ctx, const char *fmt, ...)
{
	char line[sizeof(ctx->notes[0])];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	for (size_t i = 0; i < ctx->n_notes; i++)
		if (strcmp(ctx->notes[i], line) == 0)
			return;
	if (ctx->n_notes < BENCH_NOTES_MAX)
		memcpy(ctx->notes[ctx->n_notes++], line, sizeof(line));
}

void
bench_progress(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---- the report ------------------------------------------------------------ */

static const char *
verdict_name(enum bench_verdict v)
{
	switch (v) {
	case VERDICT_PASS: return "PASS";
	case VERDICT_MISS: return "MISS";
	case VERDICT_SKIP: return "SKIP";
	case VERDICT_ERROR: return "ERROR";
	default: return "";
	}
}

static const char *
fmt_lat(char *buf, size_t size, bool valid, double us)
{
	if (!valid)
		snprintf(buf, size, "-");
	else if (us < 100)
		snprintf(buf, size, "%.2f", us);
	else
		snprintf(buf, size, "%.0f", us);
	return buf;
}

static const char *
fmt_value(char *buf, size_t size, const struct bench_row *row)
{
	char n[48];

	if (row->verdict == VERDICT_ERROR || row->verdict == VERDICT_SKIP)
		snprintf(buf, size, "-");
	else if (strcmp(row->unit, "ops/s") == 0)
		snprintf(buf, size, "%s ops/s", bench_fmt_count(n, sizeof(n), row->value));
	else
		snprintf(buf, size, "%.2f %s", row->value, row->unit);
	return buf;
}

/* "PASS target ...; note", "ERROR why", or just the note. */
static void
fmt_result(char *buf, size_t size, const struct bench_row *r)
{
	const char *v = verdict_name(r->verdict);
	const char *target = r->verdict == VERDICT_PASS || r->verdict == VERDICT_MISS ? r->target : NULL;

	snprintf(buf, size, "%s%s%s%s%s", v, v[0] && (target || r->note[0]) ? " " : "",
	    target ? target : "", target && r->note[0] ? "; " : "", r->note);
}

static void
print_table(const struct bench_ctx *ctx, FILE *out, const double load[2])
{
	const char *section = NULL;

	fprintf(out, "recfs-bench %s: %u thread%s, %.1f s per phase%s, %ld CPUs, "
	    "load average %.2f at start, %.2f at end\n", RECFS_VERSION, ctx->opt.threads,
	    ctx->opt.threads == 1 ? "" : "s", ctx->opt.duration_s, ctx->opt.quick ? " (quick)" : "",
	    sysconf(_SC_NPROCESSORS_ONLN), load[0], load[1]);
	fprintf(out, "%-42s %3s %18s %9s %9s %9s %9s  %s\n", "benchmark", "thr", "figure", "MB/s",
	    "p50 us", "p99 us", "p99.9 us", "result");
	for (size_t i = 0; i < ctx->n_rows; i++) {
		const struct bench_row *r = &ctx->rows[i];
		char v[48], mb[24], a[24], b[24], c[24], thr[16], res[512];

		if (r->section != NULL && (section == NULL || strcmp(r->section, section) != 0)) {
			fprintf(out, "%s\n", r->section);
			section = r->section;
		}
		if (r->threads)
			snprintf(thr, sizeof(thr), "%u", r->threads);
		else
			snprintf(thr, sizeof(thr), "-");
		if (r->mb_per_s >= 0 && r->verdict != VERDICT_ERROR)
			snprintf(mb, sizeof(mb), "%.1f", r->mb_per_s);
		else
			snprintf(mb, sizeof(mb), "-");
		fmt_result(res, sizeof(res), r);
		fprintf(out, "  %-40s %3s %18s %9s %9s %9s %9s%s%s\n", r->label, thr,
		    fmt_value(v, sizeof(v), r), mb,
		    fmt_lat(a, sizeof(a), r->lat.valid, r->lat.p50_us),
		    fmt_lat(b, sizeof(b), r->lat.valid, r->lat.p99_us),
		    fmt_lat(c, sizeof(c), r->lat.valid, r->lat.p999_us), res[0] ? "  " : "", res);
	}
	for (size_t i = 0; i < ctx->n_notes; i++)
		fprintf(out, "note: %s\n", ctx->notes[i]);
	fprintf(out, "result: %zu rows, %u below target (MISS), %u not measured (ERROR)%s\n",
	    ctx->n_rows, ctx->misses, ctx->errors, bench_interrupted ? ", interrupted" : "");
}

static void
json_string(FILE *out, const char *s)
{
	fputc('"', out);
	for (; s != NULL && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

/* JSON has no NaN or infinity: those become null. */
static void
json_number(FILE *out, double v)
{
	if (isfinite(v))
		fprintf(out, "%.6g", v);
	else
		fputs("null", out);
}

static void
print_json(const struct bench_ctx *ctx, FILE *out, const double load[2], const char *started)
{
	fprintf(out, "{\n  \"program\": \"recfs-bench\",\n  \"version\": ");
	json_string(out, RECFS_VERSION);
	fprintf(out, ",\n  \"started\": ");
	json_string(out, started);
	fprintf(out, ",\n  \"host\": { \"cpus\": %ld, \"loadavg_start\": %.2f, \"loadavg_end\": %.2f },\n",
	    sysconf(_SC_NPROCESSORS_ONLN), load[0], load[1]);
	fprintf(out, "  \"options\": { \"threads\": %u, \"duration_s\": ", ctx->opt.threads);
	json_number(out, ctx->opt.duration_s);
	fprintf(out, ", \"quick\": %s, \"keys\": %llu, \"skip_mount\": %s },\n",
	    ctx->opt.quick ? "true" : "false", (unsigned long long)ctx->opt.keys,
	    ctx->opt.skip_mount ? "true" : "false");
	fprintf(out, "  \"rows\": [");
	for (size_t i = 0; i < ctx->n_rows; i++) {
		const struct bench_row *r = &ctx->rows[i];

		fprintf(out, "%s\n    { \"id\": ", i ? "," : "");
		json_string(out, r->id);
		fprintf(out, ", \"label\": ");
		json_string(out, r->label);
		fprintf(out, ", \"threads\": %u, \"ops\": %llu, \"seconds\": ", r->threads,
		    (unsigned long long)r->ops);
		json_number(out, r->seconds);
		fprintf(out, ",\n      \"value\": ");
		if (r->verdict == VERDICT_ERROR || r->verdict == VERDICT_SKIP)
			fputs("null", out);
		else
			json_number(out, r->value);
		fprintf(out, ", \"unit\": ");
		json_string(out, r->unit);
		fprintf(out, ", \"mb_per_s\": ");
		if (r->mb_per_s >= 0)
			json_number(out, r->mb_per_s);
		else
			fputs("null", out);
		if (r->lat.valid) {
			fprintf(out, ",\n      \"latency_us\": { \"samples\": %llu, \"p50\": ",
			    (unsigned long long)r->lat.samples);
			json_number(out, r->lat.p50_us);
			fprintf(out, ", \"p99\": ");
			json_number(out, r->lat.p99_us);
			fprintf(out, ", \"p99.9\": ");
			json_number(out, r->lat.p999_us);
			fprintf(out, " }");
		}
		fprintf(out, ",\n      \"target\": ");
		if (r->target)
			json_string(out, r->target);
		else
			fputs("null", out);
		fprintf(out, ", \"verdict\": ");
		if (r->verdict != VERDICT_NONE)
			json_string(out, verdict_name(r->verdict));
		else
			fputs("null", out);
		fprintf(out, ", \"note\": ");
		json_string(out, r->note);
		fprintf(out, " }");
	}
	fprintf(out, "\n  ],\n  \"notes\": [");
	for (size_t i = 0; i < ctx->n_notes; i++) {
		fprintf(out, "%s\n    ", i ? "," : "");
		json_string(out, ctx->notes[i]);
	}
	fprintf(out, "\n  ],\n  \"misses\": %u,\n  \"errors\": %u,\n  \"completed\": %s\n}\n",
	    ctx->misses, ctx->errors, ctx->errors == 0 && !bench_interrupted ? "true" : "false");
}

/* ---- driver ---------------------------------------------------------------- */

static void
on_signal(int sig)
{
	(void)sig;
	bench_interrupted = 1;
}

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: recfs-bench [OPTIONS]\n"
	    "Benchmarks recfs (docs/benchmarks.md): the embedded memory engine, index\n"
	    "memory, the embedded device engine against fio on the same file system\n"
	    "(--only device), and file operations through a recfsd mount against\n"
	    "libfuse's passthrough_ll example over tmpfs, side by side, and a cluster\n"
	    "of three recfsd nodes on 127.0.0.1 against a single one (--only cluster),\n"
	    "and the migration rate when a fourth joins them (--only cluster.migrate).\n"
	    "Prints a table and a JSON document (after the table, or into --json FILE).\n"
	    "\n"
	    "  --quick           small counts (the whole run takes ~45 s; for tests)\n"
	    "  --threads N       worker threads (default 2; mount figures also at 1)\n"
	    "  --duration S      seconds per measured phase (default 5, quick 0.5)\n"
	    "  --keys N          distinct keys of the embedded runs (default 500000)\n"
	    "  --json FILE       write the JSON document to FILE ('-' = stdout)\n"
	    "  --skip-mount      embedded benchmarks only (no recfsd, no FUSE, no cluster)\n"
	    "  --only LIST       run only these benchmarks (comma-separated names)\n"
	    "  --recfsd PATH     the daemon to test (default: recfsd next to this program)\n"
	    "  --device-dir DIR  storage files of the device benchmarks and cluster.migrate\n"
	    "                    in a temp dir under DIR\n"
	    "                    (default: the temp dir; must be on the disk to measure)\n"
	    "  --keep            keep the temp dir (logs, configs) after unmounting\n"
	    "                    (the device storage files are removed all the same)\n"
	    "  --list            list the benchmarks and their targets\n"
	    "  -h, --help        this text\n"
	    "\n"
	    "Exit status: 0 the run completed (a MISS against a target is reported,\n"
	    "not a failure), 1 a benchmark could not run, 2 usage, 130 interrupted.\n"
	    "Needs root for the mount part (tmpfs), /dev/fuse, fusermount3, a C\n"
	    "compiler, pkg-config and libfuse3-dev (passthrough_ll is built at run time).\n");
}

static bool
selected(const struct bench_opts *o, const char *name)
{
	const char *p = o->only;
	size_t len = strlen(name);

	if (p == NULL)
		return true;
	while (*p) {
		size_t n = strcspn(p, ",");

		/* "memory" selects memory.write, memory.read, ... */
		if ((n == len && strncmp(p, name, n) == 0) ||
		    (n < len && strncmp(p, name, n) == 0 && name[n] == '.'))
			return true;
		p += n;
		if (*p == ',')
			p++;
	}
	return false;
}

static int
parse_opts(int argc, char **argv, struct bench_opts *o)
{
	static const struct option longopts[] = {
		{ "quick", no_argument, NULL, 'q' },
		{ "threads", required_argument, NULL, 't' },
		{ "duration", required_argument, NULL, 'd' },
		{ "keys", required_argument, NULL, 'k' },
		{ "json", required_argument, NULL, 'j' },
		{ "skip-mount", no_argument, NULL, 's' },
		{ "only", required_argument, NULL, 'o' },
		{ "recfsd", required_argument, NULL, 'r' },
		{ "list", no_argument, NULL, 'l' },
		{ "keep", no_argument, NULL, 'K' },
		{ "device-dir", required_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool have_duration = false, have_keys = false;
	char *end;
	int c;

	o->threads = 2;
	o->duration_s = 5;
	o->keys = 500000;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'q':
			o->quick = true;
			break;
		case 't':
			errno = 0;
			o->threads = (unsigned)strtoul(optarg, &end, 10);
			if (errno || *end || o->threads < 1 || o->threads > BENCH_THREADS_MAX) {
				fprintf(stderr, "recfs-bench: --threads: 1..%d\n", BENCH_THREADS_MAX);
				return 2;
			}
			break;
		case 'd':
			o->duration_s = strtod(optarg, &end);
			if (*end || !(o->duration_s >= 0.1 && o->duration_s <= 3600)) {
				fprintf(stderr, "recfs-bench: --duration: 0.1..3600 seconds\n");
				return 2;
			}
			have_duration = true;
			break;
		case 'k':
			errno = 0;
			o->keys = strtoull(optarg, &end, 10);
			if (errno || *end || o->keys < 1000 || o->keys > 100000000) {
				fprintf(stderr, "recfs-bench: --keys: 1000..100000000\n");
				return 2;
			}
			have_keys = true;
			break;
		case 'j':
			o->json_path = optarg;
			break;
		case 's':
			o->skip_mount = true;
			break;
		case 'o':
			o->only = optarg;
			break;
		case 'r':
			o->recfsd_path = optarg;
			break;
		case 'K':
			o->keep = true;
			break;
		case 'D':
			o->device_dir = optarg;
			break;
		case 'l':
			for (size_t i = 0; i < ARRAY_SIZE(bench_table); i++)
				printf("%-20s %-7s %s\n", bench_table[i].name, bench_table[i].group,
				    bench_table[i].target ? bench_table[i].target : "-");
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "recfs-bench: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (o->quick) {
		if (!have_duration)
			o->duration_s = 0.5;
		if (!have_keys)
			o->keys = 50000;
	}
	return -1;
}

static void
cleanup_group(struct bench_ctx *ctx, const char *group)
{
	for (size_t g = 0; g < ARRAY_SIZE(group_table); g++)
		if (group == NULL || strcmp(group_table[g].name, group) == 0)
			group_table[g].cleanup(ctx);
}

int
main(int argc, char **argv)
{
	static struct bench_ctx ctx;  /* rows table: keep it off the stack */
	struct sigaction sa = { .sa_handler = on_signal };
	const char *group = NULL;
	char self[PATH_MAX], started[32];
	double load[2] = { 0, 0 }, avg[1];
	time_t now = time(NULL);
	struct tm tm;
	ssize_t n;
	int rc;

	rc = parse_opts(argc, argv, &ctx.opt);
	if (rc >= 0)
		return rc;
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		snprintf(ctx.opt.self_dir, sizeof(ctx.opt.self_dir), "%s", dirname(self));
	}
	/* No SA_RESTART: a sleep or wait returns early and sees the flag. */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	gmtime_r(&now, &tm);
	strftime(started, sizeof(started), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (getloadavg(avg, 1) == 1)
		load[0] = avg[0];

	snprintf(ctx.tmp, sizeof(ctx.tmp), "%s/recfs-bench.XXXXXX",
	    getenv("TMPDIR") && getenv("TMPDIR")[0] ? getenv("TMPDIR") : "/tmp");
	/* Short, so every path joined under it fits (bench_path checks). */
	if (strlen(ctx.tmp) > 256) {
		fprintf(stderr, "recfs-bench: TMPDIR too long\n");
		return 1;
	}
	if (mkdtemp(ctx.tmp) == NULL) {
		fprintf(stderr, "recfs-bench: mkdtemp %s: %s\n", ctx.tmp, strerror(errno));
		return 1;
	}
	bench_progress("temp dir %s", ctx.tmp);

	for (size_t i = 0; i < ARRAY_SIZE(bench_table) && !bench_interrupted; i++) {
		const struct bench_def *def = &bench_table[i];

		if (!selected(&ctx.opt, def->name))
			continue;
		if (ctx.opt.skip_mount && (strcmp(def->group, "mount") == 0 ||
		    strcmp(def->group, "cluster") == 0 || strcmp(def->group, "migrate") == 0))
			continue;
		/* Release the previous group first: an idle 2 GiB node or two
		 * FUSE daemons must not share the CPUs with the next group. */
		if (group != NULL && strcmp(group, def->group) != 0)
			cleanup_group(&ctx, group);
		group = def->group;
		ctx.bench = def->name;
		ctx.section = def->title;
		bench_progress("running %s", def->name);
		def->run(&ctx, def);
	}
	if (bench_interrupted)
		bench_progress("interrupted: unmounting, stopping daemons, removing %s", ctx.tmp);
	cleanup_group(&ctx, NULL);

	if (getloadavg(avg, 1) == 1)
		load[1] = avg[0];
	if (ctx.opt.keep) {
		bench_progress("kept %s", ctx.tmp);
		rc = 0;
	} else {
		rc = bench_remove_tree(ctx.tmp);
		if (rc != 0)
			fprintf(stderr, "recfs-bench: could not remove %s: %s\n", ctx.tmp,
			    strerror(-rc));
	}

	print_table(&ctx, stdout, load);
	if (ctx.opt.json_path != NULL && strcmp(ctx.opt.json_path, "-") != 0) {
		FILE *f = fopen(ctx.opt.json_path, "w");

		if (f == NULL) {
			fprintf(stderr, "recfs-bench: %s: %s\n", ctx.opt.json_path, strerror(errno));
			return 1;
		}
		print_json(&ctx, f, load, started);
		if (fclose(f) != 0) {
			fprintf(stderr, "recfs-bench: %s: %s\n", ctx.opt.json_path, strerror(errno));
			return 1;
		}
	} else {
		fputc('\n', stdout);
		print_json(&ctx, stdout, load, started);
	}
	fflush(stdout);
	if (bench_interrupted)
		return 130;
	return ctx.errors != 0 || rc != 0 ? 1 : 0;
}
