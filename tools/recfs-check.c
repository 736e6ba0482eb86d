/*
 * recfs-check.c - the offline verifier of a namespace's storage files
 * (usage and exit statuses in recfs-check(1), format in
 * docs/storage-format.md).
 *
 * recfs-check FILE_OR_DEVICE... reads each file's header, checks that the
 * files form one set (namespace, signature, device count), then walks
 * every wblock the way cold start does and classifies every record copy:
 *
 *   pass 1  walk every file; count copies and damaged candidates; keep,
 *           per digest, the newest copy (check_table.c);
 *   classify each digest's newest copy (live, tombstone, expired, set
 *           marker; every other copy is superseded) and add its bytes to
 *           its wblock, for the fill histogram;
 *   pass 2  with -v only: walk again and list every copy with its state
 *           (a copy's state is known only once every copy has been seen).
 *
 * The exit status is the verdict: 0 clean, 1 damage (a damaged record or
 * wblock, an invalid or truncated header), 2 the check could not be run as
 * asked (bad options, a file missing or unreadable, files that are not one
 * set).  Nothing is ever written to the files.  A file a live recfsd holds
 * (its store lock, base/file_lock.h) is refused, exit 2 and no verdict:
 * the daemon's newest writes may still be in its RAM and a record being
 * written can look damaged, so "clean" would mean nothing.  --force looks
 * anyway, with a warning in the report.
 *
 * Rejected: opening the namespace with the engine and comparing with its
 * index (the engine formats empty devices and rewrites headers: a verifier
 * must not write) and one pass that keeps every copy's location (memory
 * per copy instead of per record).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/error.h"
#include "config/config.h"
#include "txn/chunk.h"
#include "check.h"

#ifndef RECFS_VERSION
#define RECFS_VERSION "unknown"
#endif

/* Order conflicts printed one per line; the rest are only counted. */
#define CONFLICTS_PRINTED_MAX 20

struct checker {
	struct check_run run;
	struct check_table table;
	bool quiet, verbose, json, all, force;
	uint32_t flush_max_ms;          /* --flush-max-ms: the namespace's setting */
	uint32_t now;                   /* s since RECFS_EPOCH: expiry */
	unsigned conflicts_printed;
	bool printed;                   /* findings printed before the summary */
	int error;                      /* pass 1: -ENOMEM */
	/* Large files (docs/storage-format.md): the chunk pass runs when pass
	 * 1 saw a chunk's copy. */
	uint64_t chunk_copies;
	struct chunk_head { uint64_t id; struct txn_chunk_map map; } *heads; /* by id */
	size_t n_heads, heads_cap;
	struct chunk_ref { uint64_t id; uint32_t index, version; } *chunks;
	size_t n_chunks, chunks_cap;
	/* --heads-from: other nodes' storage (comma-separated files of one
	 * node each), whose heads name chunks of this set too */
	char *heads_from[32];
	unsigned n_heads_from;
};

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: recfs-check [-q | -v] [--json] [--all] [--force] [--flush-max-ms MS]\n"
	    "                   [--heads-from FILE[,FILE...]]... FILE_OR_DEVICE...\n"
	    "\n"
	    "Verify the storage files (or raw devices) of one recfs namespace, offline:\n"
	    "header, every write block up to the high-water mark, every record (end\n"
	    "mark and CRC32C).  Prints each damaged record with its file and byte offset,\n"
	    "then a summary per file: records, live, superseded, tombstones, expired,\n"
	    "set markers, corrupt, bytes live and a fill histogram of the write blocks.\n"
	    "Give every file of the namespace, in any order: which copy of a record is\n"
	    "the newest is decided across all of them, as recfsd's cold start does.\n"
	    "Copies older than their partition's drop time (a partition the node\n"
	    "stopped holding), unless stored under its regain since (their mark),\n"
	    "are skipped, as cold start skips them, and counted apart (\"of dropped\n"
	    "partitions\").\n"
	    "\n"
	    "  -q, --quiet    print the summary only\n"
	    "  -v, --verbose  list every record copy: offset, digest, set, key,\n"
	    "                 generation, size, state\n"
	    "      --json     print the summary as JSON (for scripts)\n"
	    "      --all      scan to the end of each file, not just to its high-water mark\n"
	    "      --force    check files a running recfsd holds (refused otherwise)\n"
	    "      --flush-max-ms MS  the namespace's flush-max-ms (default 1000): after an\n"
	    "                 unclean shutdown, a damaged newest copy written in the file's\n"
	    "                 last MS + 1000 ms is a torn write (recfsd keeps the previous\n"
	    "                 version), not a damaged record\n"
	    "      --heads-from FILE[,FILE...]  another node's storage files (of a cluster):\n"
	    "                 the heads of large files there name chunks here too, so a\n"
	    "                 chunk is orphaned only if no head on any node given names it;\n"
	    "                 only read for that (repeat it for each other node)\n"
	    "  -h, --help     this text\n"
	    "  -V, --version  print the version\n"
	    "\n"
	    "Exit status: 0 clean, 1 corruption found (a damaged record or write block,\n"
	    "an invalid or truncated header), 2 usage error (bad options, a file missing\n"
	    "or unreadable, files that are not one namespace's set, a file in use by a\n"
	    "running recfsd without --force).\n"
	    "See recfs-check(1) and docs/operations.md.\n");
}

static void
usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("recfs-check: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* A set-level note for the report (text and JSON). */
static void
set_warning(struct checker *c, const char *fmt, ...)
{
	char buf[512], **w;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	w = realloc(c->run.warnings, (c->run.n_warnings + 1) * sizeof(*w));
	if (w == NULL)
		return;
	c->run.warnings = w;
	w[c->run.n_warnings] = strdup(buf);
	if (w[c->run.n_warnings] != NULL)
		c->run.n_warnings++;
}

static void
format_ms(char *buf, size_t size, uint64_t epoch_ms)
{
	time_t t = (time_t)(epoch_ms / 1000 + RECFS_EPOCH);
	struct tm tm;
	char s[32];

	if (gmtime_r(&t, &tm) == NULL || strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		snprintf(buf, size, "%" PRIu64 "ms", epoch_ms);
	else
		snprintf(buf, size, "%s.%03uZ", s, (unsigned)(epoch_ms % 1000));
}

/* ---- per-item output ---------------------------------------------------- */

/* Set and key of a candidate whose header checked out, if they fit. */
static void
print_stored_names(const struct check_item *it)
{
	const uint8_t *p = it->raw;

	if (it->header_ok && (it->salvage_parts & RECORD_SALVAGE_NAME)) {
		/* Proven: the digest in the intact header is computed from them. */
		fputs(" set=", stdout);
		check_print_escaped(stdout, it->salvage->set, it->salvage->set_len);
		fputs(" key=", stdout);
		check_print_escaped(stdout, it->salvage->key, it->salvage->key_len);
		printf(" generation=%u (header intact, set and key match its digest)",
		    it->salvage->generation);
		return;
	}
	uint8_t set_len = p[48];
	uint16_t key_len = (uint16_t)(p[50] | p[51] << 8);

	if (it->size < RECORD_FLAT_HEADER_SIZE + (uint32_t)set_len + key_len || set_len > RECORD_SET_MAX)
		return;
	/* Unchecked bytes: the CRC failed, so they may be the damaged ones. */
	fputs(" set=", stdout);
	check_print_escaped(stdout, p + RECORD_FLAT_HEADER_SIZE, set_len);
	fputs(" key=", stdout);
	check_print_escaped(stdout, p + RECORD_FLAT_HEADER_SIZE + set_len, key_len);
	if (it->header_ok)
		printf(" (header intact, generation=%u; set and key damaged: they do not match its "
		    "digest)", it->salvage->generation);
	else
		fputs(" (unverified)", stdout);
}

static void
print_corrupt(const struct check_file *f, const struct check_item *it)
{
	uint32_t wbs = f->hdr.write_block_size;
	char hex[2 * DIGEST_SIZE + 1];

	printf("CORRUPT %s offset %" PRIu64 " (wblock %" PRIu64 " + %" PRIu64 "): %s", f->path,
	    it->offset, it->offset / wbs, it->offset % wbs, it->why);
	if (it->kind == CHECK_ITEM_CORRUPT && it->has_digest) {
		digest_to_hex(&it->digest, hex);
		printf("; digest %s size %u", hex, it->size);
		print_stored_names(it);
	}
	putchar('\n');
}

static void
print_conflict(struct checker *c, const struct check_file *f, const struct check_item *it,
    const struct check_entry *other)
{
	const struct record *r = it->rec;
	char hex[2 * DIGEST_SIZE + 1], t1[40], t2[40];

	if (c->quiet || c->json)
		return;
	if (c->conflicts_printed++ >= CONFLICTS_PRINTED_MAX) {
		if (c->conflicts_printed == CONFLICTS_PRINTED_MAX + 1)
			printf("WARNING further order conflicts are only counted\n");
		return;
	}
	c->printed = true;
	digest_to_hex(&r->digest, hex);
	format_ms(t1, sizeof(t1), r->last_update_ms);
	format_ms(t2, sizeof(t2), other->last_update_ms);
	printf("WARNING order conflict, digest %s key=", hex);
	check_print_escaped(stdout, r->key, r->key_len);
	/* What recfsd keeps, by the function its cold start calls. */
	bool this_newer = record_copy_is_newer(r->generation, r->last_update_ms, other->generation,
	    other->last_update_ms);
	printf(": %s offset %" PRIu64 " (generation %u, updated %s) vs %s offset %" PRIu64
	    " (generation %u, updated %s): recfsd keeps %s: the one at %s offset %" PRIu64 "\n",
	    f->path, it->offset, r->generation, t1, c->run.files[other->file].path, other->offset,
	    other->generation, t2, RECORD_NEWEST_COPY_RULE,
	    this_newer ? f->path : c->run.files[other->file].path,
	    this_newer ? it->offset : other->offset);
}

/* ---- pass 1: count and merge --------------------------------------------- */

static void
remember_corrupt(struct checker *c, uint16_t file, const struct check_item *it)
{
	struct check_run *run = &c->run;
	struct check_corrupt *e;

	if (run->n_corrupt_list >= CHECK_CORRUPT_LIST_MAX)
		return;
	if (run->corrupt_list == NULL) {
		run->corrupt_list = calloc(CHECK_CORRUPT_LIST_MAX, sizeof(*run->corrupt_list));
		if (run->corrupt_list == NULL)
			return;
	}
	e = &run->corrupt_list[run->n_corrupt_list++];
	e->file = file;
	e->offset = it->offset;
	e->has_digest = it->kind == CHECK_ITEM_CORRUPT && it->has_digest;
	if (e->has_digest)
		e->digest = it->digest;
	snprintf(e->why, sizeof(e->why), "%s", it->why);
}

static int
pass1_item(void *arg, struct check_file *f, const struct check_item *it)
{
	struct checker *c = arg;
	uint16_t fi = (uint16_t)(f - c->run.files);
	struct check_entry other;
	bool conflict;
	int rc;

	if (it->kind == CHECK_ITEM_DROPPED) {
		/* Not present for recfsd (cold start skips it), but as written
		 * it still marks how recent the file's writes are. */
		f->counts.dropped++;
		if (it->rec->last_update_ms > f->newest_ms)
			f->newest_ms = it->rec->last_update_ms;
		return 0;
	}
	if (it->kind != CHECK_ITEM_RECORD) {
		f->counts.corrupt++;
		remember_corrupt(c, fi, it);
		if (it->header_ok && it->salvage->last_update_ms > f->newest_ms)
			f->newest_ms = it->salvage->last_update_ms;
		/* With -v the listing of pass 2 shows it in place. */
		if (!c->quiet && !c->verbose && !c->json) {
			print_corrupt(f, it);
			c->printed = true;
		}
		if (!it->header_ok)
			return 0;
		/* Damaged and of a dropped partition: damage on storage all the
		 * same, but skipped by cold start like an intact stale copy. */
		if (it->drop_ms != 0) {
			f->counts.dropped++;
			return 0;
		}
		/* Its header is intact: it takes part in the newest-copy rule, as
		 * in cold start (a damaged newest copy makes a damaged record). */
		rc = check_table_merge(&c->table, it->salvage, true, fi, it->offset, it->size,
		    &conflict, &other);
		if (rc < 0) {
			c->error = rc;
			return rc;
		}
		return 0;
	}
	f->counts.records++;
	if (record_key_is_chunk(it->rec->key, it->rec->key_len))
		c->chunk_copies++;
	if (it->rec->last_update_ms > f->newest_ms)
		f->newest_ms = it->rec->last_update_ms;
	rc = check_table_merge(&c->table, it->rec, false, fi, it->offset, it->size, &conflict, &other);
	if (rc < 0) {
		c->error = rc;
		return rc;
	}
	if (conflict)
		print_conflict(c, f, it, &other);
	return 0;
}

/* ---- classification -------------------------------------------------------- */

/*
 * Does recfsd's cold start take e's damaged newest copy for a write torn by
 * an unclean stop (src/namespace/namespace.c, torn_settle)?  Its file was
 * not shut down cleanly and the copy is among the file's writes of its last
 * flush-max-ms + 1000 ms.  (recfsd also keeps the record damaged when a
 * damaged copy outside that window lies between the torn copy and the
 * previous version; the table keeps one copy per record, so that rare case
 * is reported as torn here.)
 */
static bool
entry_torn(const struct checker *c, const struct check_entry *e)
{
	const struct check_file *f = &c->run.files[e->file];

	return e->damaged && !(f->hdr.flags & DEVICE_F_CLEAN) && f->newest_ms > 0 &&
	    e->last_update_ms + c->run.torn_window_ms >= f->newest_ms;
}

static int
classify(struct checker *c)
{
	struct check_run *run = &c->run;
	uint64_t *newest = calloc(run->n_files, sizeof(*newest));

	if (newest == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < run->n_files; i++) {
		struct check_file *f = &run->files[i];

		if (f->state != CHECK_FILE_VALID)
			continue;
		f->live_bytes = calloc((size_t)(f->scan_end - f->first) + 1, sizeof(*f->live_bytes));
		if (f->live_bytes == NULL) {
			free(newest);
			return -ENOMEM;
		}
	}
	for (uint64_t i = 0; i < c->table.cap; i++) {
		const struct check_entry *e = &c->table.slots[i];
		struct check_file *f;
		struct check_counts *k;

		if (!e->used)
			continue;
		f = &run->files[e->file];
		k = &f->counts;
		/* Damaged copies are counted in corrupt, not in records. */
		if (!e->damaged)
			newest[e->file]++;
		if (e->conflict)
			k->order_conflicts++;
		switch (check_entry_state(e, c->now)) {
		case CHECK_LIVE:
			k->live++;
			k->bytes_live += check_entry_size(e);
			k->bytes_in_use += check_entry_size(e);
			f->live_bytes[e->offset / f->hdr.write_block_size - f->first] += check_entry_size(e);
			break;
		case CHECK_TOMBSTONE:
			k->tombstones++;
			/* Cold start drops a tombstone with no older copy, and its bytes. */
			if (!e->older_live)
				k->tombstones_reclaimable++;
			else
				k->bytes_in_use += check_entry_size(e);
			break;
		case CHECK_EXPIRED:
			k->expired++;
			k->bytes_in_use += check_entry_size(e);
			break;
		case CHECK_SET_MARKER:
			k->set_markers++;
			k->bytes_in_use += check_entry_size(e);
			break;
		case CHECK_DAMAGED:
			if (entry_torn(c, e)) {
				/* Dropped by cold start for the previous version (its
				 * bytes, in the older copy's wblock, are not known here). */
				k->torn++;
				break;
			}
			/* Kept by cold start (its bytes stay in use), reads EIO. */
			k->damaged++;
			k->bytes_in_use += check_entry_size(e);
			break;
		case CHECK_SUPERSEDED:
			break;
		}
	}
	run->digests = c->table.n;
	for (unsigned i = 0; i < run->n_files; i++) {
		struct check_file *f = &run->files[i];
		struct check_counts *k = &f->counts;
		uint32_t wbs = f->hdr.write_block_size;

		if (f->state != CHECK_FILE_VALID)
			continue;
		k->superseded = k->records - newest[i];
		k->wblocks = f->scan_end - f->first;
		for (uint32_t id = f->first; id < f->scan_end; id++) {
			uint64_t bytes = f->live_bytes[id - f->first];
			unsigned b = 0;

			/* Any live byte puts a wblock in 1-10%, never in 0%. */
			if (bytes > 0) {
				uint64_t pct = (bytes * 100 + wbs - 1) / wbs;

				b = pct > 100 ? 10 : (unsigned)((pct + 9) / 10);
			}
			k->fill[b]++;
		}
#define ADD(x) run->total.x += k->x
		ADD(wblocks); ADD(records); ADD(live); ADD(superseded); ADD(tombstones);
		ADD(tombstones_reclaimable); ADD(expired); ADD(set_markers); ADD(corrupt); ADD(damaged);
		ADD(torn); ADD(dropped);
		ADD(order_conflicts); ADD(bytes_live); ADD(bytes_in_use);
#undef ADD
		for (int b = 0; b < CHECK_FILL_BUCKETS; b++)
			run->total.fill[b] += k->fill[b];
	}
	free(newest);
	return 0;
}

/* ---- damaged records: named from any copy that can say the name ------------ */

/* Damaged records named one per line; the rest are only counted. */
#define DAMAGED_PRINTED_MAX 1000

struct damaged_rec {
	const struct check_entry *e;
	bool named;
	uint8_t set_len;
	uint16_t key_len;
	char set[RECORD_SET_MAX];
	char key[RECORD_KEY_MAX];
};

struct damaged_list {
	struct damaged_rec *v;
	size_t n;
};

static void
damaged_name(struct damaged_list *l, const struct record *r)
{
	for (size_t i = 0; i < l->n; i++) {
		struct damaged_rec *d = &l->v[i];

		if (d->named || memcmp(d->e->digest.bytes, r->digest.bytes, DIGEST_SIZE) != 0)
			continue;
		d->named = true;
		d->set_len = r->set_len;
		d->key_len = r->key_len;
		if (r->set_len > 0)
			memcpy(d->set, r->set, r->set_len);
		if (r->key_len > 0)
			memcpy(d->key, r->key, r->key_len);
		return;
	}
}

static int
damaged_name_item(void *arg, struct check_file *f, const struct check_item *it)
{
	(void)f;
	if (it->kind == CHECK_ITEM_RECORD)
		damaged_name(arg, it->rec);
	else if (it->header_ok && (it->salvage_parts & RECORD_SALVAGE_NAME))
		damaged_name(arg, it->salvage);
	return 0;
}

/*
 * Name every record whose newest copy is damaged (what recfsd marks
 * damaged): its set and key from the damaged copy if they match its
 * digest, else from any other copy of the record.  One more walk, only
 * when there are such records.
 */
static int
report_damaged(struct checker *c)
{
	struct damaged_list l = { 0 };
	char hex[2 * DIGEST_SIZE + 1], when[40];
	int rc = 0;

	uint64_t n = c->run.total.damaged + c->run.total.torn;

	if (n == 0)
		return 0;
	l.v = calloc(n < DAMAGED_PRINTED_MAX ? n : DAMAGED_PRINTED_MAX, sizeof(*l.v));
	if (l.v == NULL)
		return -ENOMEM;
	for (uint64_t i = 0; i < c->table.cap && l.n < DAMAGED_PRINTED_MAX; i++) {
		const struct check_entry *e = &c->table.slots[i];

		if (e->used && check_entry_state(e, c->now) == CHECK_DAMAGED)
			l.v[l.n++].e = e;
	}
	for (unsigned i = 0; i < c->run.n_files && rc == 0; i++)
		if (c->run.files[i].state == CHECK_FILE_VALID)
			rc = check_file_walk(&c->run.files[i], damaged_name_item, &l);
	for (size_t i = 0; i < l.n && rc == 0 && !c->quiet && !c->json; i++) {
		const struct damaged_rec *d = &l.v[i];
		const struct check_entry *e = d->e;

		digest_to_hex(&e->digest, hex);
		format_ms(when, sizeof(when), e->last_update_ms);
		if (entry_torn(c, e)) {
			if (d->named) {
				fputs("TORN WRITE set=", stdout);
				check_print_escaped(stdout, d->set, d->set_len);
				fputs(" key=", stdout);
				check_print_escaped(stdout, d->key, d->key_len);
			} else {
				printf("TORN WRITE digest %s", hex);
			}
			printf(": its newest copy (%s offset %" PRIu64 ", generation %u, updated %s) is "
			    "damaged, but the file was not shut down cleanly and this is one of its "
			    "writes of the last %u ms (flush-max-ms %u + 1000): a write torn by the "
			    "stop, never acknowledged as durable; %s\n", c->run.files[e->file].path,
			    e->offset, e->generation, when, c->run.torn_window_ms, c->flush_max_ms,
			    e->older_intact ? "recfsd keeps the previous version" :
			    "no older copy: recfsd drops the record");
		} else if (d->named) {
			fputs("DAMAGED RECORD set=", stdout);
			check_print_escaped(stdout, d->set, d->set_len);
			fputs(" key=", stdout);
			check_print_escaped(stdout, d->key, d->key_len);
			printf(": its newest copy (%s offset %" PRIu64 ", generation %u, updated %s) is "
			    "damaged; recfsd keeps it as the newest copy and marks the record damaged: "
			    "listed, stat works, reads fail with EIO until it is overwritten or unlinked "
			    "(never an older copy)\n", c->run.files[e->file].path, e->offset,
			    e->generation, when);
		} else {
			printf("DAMAGED RECORD digest %s: its newest copy (%s offset %" PRIu64
			    ", generation %u, updated %s) is damaged, its set and key too, and no other "
			    "copy names it: recfsd drops it at start (the record is lost)\n", hex,
			    c->run.files[e->file].path, e->offset, e->generation, when);
		}
		c->printed = true;
	}
	free(l.v);
	return rc;
}

/* ---- pass 2: the listing (-v) ---------------------------------------------- */

static int
pass2_item(void *arg, struct check_file *f, const struct check_item *it)
{
	struct checker *c = arg;
	uint16_t fi = (uint16_t)(f - c->run.files);
	const struct record *r = it->rec;
	const struct check_entry *e;
	enum check_state state = CHECK_SUPERSEDED;
	char hex[2 * DIGEST_SIZE + 1];

	if (it->kind != CHECK_ITEM_RECORD && it->kind != CHECK_ITEM_DROPPED) {
		print_corrupt(f, it);
		return 0;
	}
	e = check_table_find(&c->table, &r->digest);
	if (e != NULL && e->file == fi && e->offset == it->offset)
		state = check_entry_state(e, c->now);
	digest_to_hex(&r->digest, hex);
	printf("%s:%" PRIu64 " %s set=", f->path, it->offset, hex);
	check_print_escaped(stdout, r->set, r->set_len);
	fputs(" key=", stdout);
	check_print_escaped(stdout, r->key, r->key_len);
	printf(" gen=%u size=%u", r->generation, it->size);
	/* Stored under a regain of its partition (docs/storage-format.md). */
	if (r->mark != 0)
		printf(" mark=%u", r->mark);
	if (it->kind == CHECK_ITEM_DROPPED) {
		char when[64];

		format_ms(when, sizeof(when), it->drop_ms);
		printf(" dropped (partition %u dropped here at %s)\n", digest_partition(&r->digest), when);
		return 0;
	}
	printf(" %s", check_state_name(state));
	if (state == CHECK_TOMBSTONE && !e->older_live)
		fputs(" (no older copy: reclaimed at next start)", stdout);
	putchar('\n');
	return 0;
}

/* ---- large files: orphaned chunks ------------------------------------------- */

/*
 * A chunk is orphaned when no live head names it (its file id, index and
 * version in the head's map): what a crash between a commit's steps leaves,
 * and what recfsd reclaims in the background (txn/chunk.h).  Only newest
 * live copies count.  Memory: 16 bytes per live chunk, 4 per named one.
 */
static struct chunk_head *
head_slot(struct checker *c, uint64_t id)
{
	size_t i = (size_t)(id * 0x9e3779b97f4a7c15ull) & (c->heads_cap - 1);

	while (c->heads[i].id != 0 && c->heads[i].id != id)
		i = (i + 1) & (c->heads_cap - 1);
	return &c->heads[i];
}

static int
head_add(struct checker *c, struct txn_chunk_map *m)
{
	struct chunk_head *h;

	if ((c->n_heads + 1) * 2 > c->heads_cap) {
		struct chunk_head *old = c->heads;
		size_t old_cap = c->heads_cap, cap = old_cap ? old_cap * 2 : 64;

		c->heads = calloc(cap, sizeof(*c->heads));
		if (c->heads == NULL) {
			c->heads = old;
			return -ENOMEM;
		}
		c->heads_cap = cap;
		for (size_t i = 0; i < old_cap; i++)
			if (old[i].id != 0)
				*head_slot(c, old[i].id) = old[i];
		free(old);
	}
	h = head_slot(c, m->file_id);
	if (h->id != 0) {
		/* Two heads of one file (a rename's two names, or copies on
		 * several nodes): the later commit names its chunks. */
		if (m->commit > h->map.commit) {
			txn_chunk_map_free(&h->map);
			h->map = *m;
		} else {
			txn_chunk_map_free(m);
		}
		return 0;
	}
	h->id = m->file_id;
	h->map = *m;
	c->n_heads++;
	return 0;
}

static int
chunk_item(void *arg, struct check_file *f, const struct check_item *it)
{
	struct checker *c = arg;
	uint16_t fi = (uint16_t)(f - c->run.files);
	const struct record *r = it->rec;
	const struct check_entry *e;
	const struct bin *b;
	struct chunk_ref ref;

	if (it->kind != CHECK_ITEM_RECORD)
		return 0;
	e = check_table_find(&c->table, &r->digest);
	if (e == NULL || e->file != fi || e->offset != it->offset ||
	    check_entry_state(e, c->now) != CHECK_LIVE)
		return 0;
	if (txn_chunk_key_parse(r->key, r->key_len, &ref.id, &ref.index, &ref.version)) {
		if (c->n_chunks == c->chunks_cap) {
			size_t cap = c->chunks_cap ? c->chunks_cap * 2 : 256;
			struct chunk_ref *p = realloc(c->chunks, cap * sizeof(*p));

			if (p == NULL)
				return -ENOMEM;
			c->chunks = p;
			c->chunks_cap = cap;
		}
		c->chunks[c->n_chunks++] = ref;
		return 0;
	}
	if ((b = txn_chunk_map_bin(r)) != NULL) {
		struct txn_chunk_map m;
		int rc = txn_chunk_map_decode(b->v.bytes.data, b->v.bytes.len, &m);

		if (rc == -ENOMEM)
			return rc;
		if (rc == 0)
			return head_add(c, &m);
	}
	return 0;
}

static int checker_read(struct checker *c, char **paths, unsigned n);
static void checker_fini(struct checker *c);

/* The heads on one other node's storage (--heads-from list): read as
 * this set is (newest copies), then merged into c's heads.  0, or
 * CHECK_EXIT_USAGE (reported). */
static int
heads_from(struct checker *c, const char *list)
{
	struct checker o;
	char *copy = strdup(list), *paths[CONFIG_FILES_MAX], *save = NULL;
	unsigned n = 0;
	int rc = 0;

	memset(&o, 0, sizeof(o));
	o.flush_max_ms = c->flush_max_ms;
	o.run.torn_window_ms = c->run.torn_window_ms;
	o.now = c->now;
	o.all = c->all;
	o.force = c->force;
	o.quiet = o.json = true;   /* nothing of it is printed */
	if (copy == NULL || check_table_init(&o.table) != 0) {
		free(copy);
		usage_error("out of memory");
		return CHECK_EXIT_USAGE;
	}
	for (char *t = strtok_r(copy, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
		if (n == CONFIG_FILES_MAX) {
			usage_error("--heads-from %s: more than %d files", list, CONFIG_FILES_MAX);
			rc = CHECK_EXIT_USAGE;
			break;
		}
		paths[n++] = t;
	}
	if (rc == 0 && n == 0) {
		usage_error("--heads-from needs a file");
		rc = CHECK_EXIT_USAGE;
	}
	if (rc == 0)
		rc = checker_read(&o, paths, n);
	if (rc == 0 && o.run.ns_name != NULL && c->run.ns_name != NULL &&
	    strcmp(o.run.ns_name, c->run.ns_name) != 0) {
		usage_error("--heads-from %s holds namespace %s, not %s", list, o.run.ns_name,
		    c->run.ns_name);
		rc = CHECK_EXIT_USAGE;
	}
	if (rc == 0 && o.chunk_copies == 0)
		o.chunk_copies = 1;   /* heads without chunks there name chunks here */
	for (unsigned i = 0; rc == 0 && i < o.run.n_files; i++)
		if (o.run.files[i].state == CHECK_FILE_VALID &&
		    check_file_walk(&o.run.files[i], chunk_item, &o) != 0) {
			usage_error("--heads-from %s: out of memory", list);
			rc = CHECK_EXIT_USAGE;
		}
	for (size_t i = 0; rc == 0 && i < o.heads_cap; i++) {
		if (o.heads[i].id == 0)
			continue;
		if (head_add(c, &o.heads[i].map) != 0) {
			usage_error("out of memory");
			rc = CHECK_EXIT_USAGE;
		}
		o.heads[i].id = 0;   /* c owns the map now (or freed it) */
	}
	checker_fini(&o);
	free(copy);
	return rc;
}

static int
check_chunks(struct checker *c)
{
	int rc = 0;

	/* read even with no chunk here: a bad --heads-from is always refused */
	for (unsigned i = 0; i < c->n_heads_from; i++)
		if ((rc = heads_from(c, c->heads_from[i])) != 0)
			return rc;
	if (c->chunk_copies == 0)
		return 0;
	for (unsigned i = 0; i < c->run.n_files && rc == 0; i++)
		if (c->run.files[i].state == CHECK_FILE_VALID)
			rc = check_file_walk(&c->run.files[i], chunk_item, c);
	if (rc != 0)
		return rc;
	c->run.chunks = c->n_chunks;
	for (size_t i = 0; i < c->n_chunks; i++) {
		const struct chunk_ref *k = &c->chunks[i];
		const struct chunk_head *h = c->heads_cap ? head_slot(c, k->id) : NULL;

		if (h == NULL || h->id == 0 || k->index >= h->map.n || h->map.versions[k->index] != k->version)
			c->run.orphaned_chunks++;
	}
	if (c->run.orphaned_chunks > 0)
		set_warning(c, "%" PRIu64 " chunk%s of large files no head names (left by a crash during a "
		    "commit): recfsd reclaims them in the background", c->run.orphaned_chunks,
		    c->run.orphaned_chunks == 1 ? "" : "s");
	return 0;
}

/* ---- the set --------------------------------------------------------------- */

/* Do the valid files form one namespace's set?  0 or CHECK_EXIT_USAGE. */
static int
check_set(struct checker *c)
{
	struct check_run *run = &c->run;
	const struct check_file *ref = NULL;
	uint32_t n_given = 0;
	bool *seen;

	for (unsigned i = 0; i < run->n_files; i++) {
		const struct check_file *f = &run->files[i];

		if (f->state != CHECK_FILE_VALID)
			continue;
		if (ref == NULL) {
			ref = f;
			continue;
		}
		const char *what = NULL;
		if (strcmp(f->hdr.ns_name, ref->hdr.ns_name) != 0)
			what = "another namespace";
		else if (f->hdr.signature != ref->hdr.signature)
			what = "another set of devices (signature differs)";
		else if (f->hdr.n_devices != ref->hdr.n_devices)
			what = "a set with another number of devices";
		else if (f->hdr.write_block_size != ref->hdr.write_block_size)
			what = "a set with another write-block-size";
		if (what != NULL) {
			usage_error("%s (namespace %s, device %u of %u) belongs to %s than %s (namespace %s, "
			    "device %u of %u): check one namespace's files at a time", f->path, f->hdr.ns_name,
			    f->hdr.device_index + 1, f->hdr.n_devices, what, ref->path, ref->hdr.ns_name,
			    ref->hdr.device_index + 1, ref->hdr.n_devices);
			return CHECK_EXIT_USAGE;
		}
	}
	if (ref == NULL)
		return 0;
	run->ns_name = ref->hdr.ns_name;
	run->n_devices = ref->hdr.n_devices;
	run->wbs = ref->hdr.write_block_size;
	seen = calloc(ref->hdr.n_devices, sizeof(*seen));
	if (seen == NULL)
		return CHECK_EXIT_USAGE;
	for (unsigned i = 0; i < run->n_files; i++) {
		const struct check_file *f = &run->files[i];

		if (f->state != CHECK_FILE_VALID)
			continue;
		if (seen[f->hdr.device_index]) {
			for (unsigned j = 0; j < i; j++)
				if (run->files[j].state == CHECK_FILE_VALID &&
				    run->files[j].hdr.device_index == f->hdr.device_index)
					usage_error("%s and %s are both device %u of the set (is one a copy of the "
					    "other?): check them separately", run->files[j].path, f->path,
					    f->hdr.device_index + 1);
			free(seen);
			return CHECK_EXIT_USAGE;
		}
		seen[f->hdr.device_index] = true;
		n_given++;
		if (!(f->hdr.flags & DEVICE_F_CLEAN))
			set_warning(c, "%s was not shut down cleanly, or recfsd is using it now: writes still in "
			    "its RAM are not on the file, and the last ones may be torn", f->path);
	}
	if (n_given < ref->hdr.n_devices) {
		char missing[256] = "";
		size_t len = 0;

		for (uint32_t d = 0; d < ref->hdr.n_devices && len + 16 < sizeof(missing); d++)
			if (!seen[d])
				len += (size_t)snprintf(missing + len, sizeof(missing) - len, "%s%u",
				    len ? ", " : "", d + 1);
		set_warning(c, "the set is incomplete: %u of %u devices given (missing device %s); a record "
		    "whose newest copy is on a missing device is classified by the copies given",
		    n_given, ref->hdr.n_devices, missing);
	}
	free(seen);
	/* recfsd trusts a partition's version only where every device of the
	 * set holds the same one (device_pversion.c). */
	for (uint32_t p = 0; p < DEVICE_PMETA_SLOTS; p++)
		for (unsigned i = 0; i < run->n_files; i++) {
			const struct check_file *f = &run->files[i];

			if (f->state != CHECK_FILE_VALID || f == ref || f->pver[p] == ref->pver[p])
				continue;
			if (run->pver_differ++ == 0)
				run->pver_differ_first = p;
			break;
		}
	if (run->pver_differ > 0)
		set_warning(c, "the partition version of %u partition%s (the first: %u) differs between the "
		    "files: recfsd counts %s as holding no data on this node", run->pver_differ,
		    run->pver_differ == 1 ? "" : "s", run->pver_differ_first,
		    run->pver_differ == 1 ? "it" : "them");
	for (unsigned i = 0; i < run->n_files; i++)
		run->pver_bad += run->files[i].pver_bad;
	/* Copies older than their partition's drop time are stale, where
	 * every device agrees on the slot (device_pversion.c: devices that
	 * disagree load the partition's records). */
	if (ref != NULL) {
		run->pdrop = calloc(DEVICE_PMETA_SLOTS, sizeof(*run->pdrop));
		run->pkeep = calloc(DEVICE_PMETA_SLOTS, sizeof(*run->pkeep));
		if (run->pdrop == NULL || run->pkeep == NULL) {
			usage_error("out of memory");
			return CHECK_EXIT_USAGE;
		}
		for (uint32_t p = 0; p < DEVICE_PMETA_SLOTS; p++) {
			bool agree = ref->pdrop[p] != 0;

			for (unsigned i = 0; agree && i < run->n_files; i++) {
				const struct check_file *f = &run->files[i];

				agree = f->state != CHECK_FILE_VALID ||
				    (f->pver[p] == ref->pver[p] && f->pdrop[p] == ref->pdrop[p] &&
				    f->pkeep[p] == ref->pkeep[p]);
			}
			if (agree) {
				run->pdrop[p] = ref->pdrop[p];
				run->pkeep[p] = ref->pkeep[p];
			}
		}
		for (unsigned i = 0; i < run->n_files; i++) {
			run->files[i].set_drop = run->pdrop;
			run->files[i].set_keep = run->pkeep;
		}
	}
	for (unsigned i = 0; i < run->n_files; i++)
		if (run->files[i].state == CHECK_FILE_EMPTY)
			set_warning(c, "%s is empty while other files hold data of namespace %s: recfsd refuses to "
			    "start on such a set (a file was added or replaced)", run->files[i].path,
			    run->ns_name);
	return 0;
}

/* ---- main ------------------------------------------------------------------ */

static const struct option long_options[] = {
	{ "quiet", no_argument, NULL, 'q' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "json", no_argument, NULL, 'j' },
	{ "all", no_argument, NULL, 'a' },
	{ "force", no_argument, NULL, 'f' },
	{ "flush-max-ms", required_argument, NULL, 'M' },
	{ "heads-from", required_argument, NULL, 'H' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

static int
parse_options(struct checker *c, int argc, char **argv)
{
	int opt;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":qvhV", long_options, NULL)) != -1) {
		switch (opt) {
		case 'q': c->quiet = true; break;
		case 'v': c->verbose = true; break;
		case 'j': c->json = true; break;
		case 'a': c->all = true; break;
		case 'f': c->force = true; break;
		case 'M': {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);

			if (*optarg == '\0' || *end != '\0' || v > 60000) {
				usage_error("--flush-max-ms %s: a number of ms, 0 to 60000 (the namespace's "
				    "flush-max-ms)", optarg);
				return CHECK_EXIT_USAGE;
			}
			c->flush_max_ms = (uint32_t)v;
			break;
		}
		case 'H':
			if (c->n_heads_from == sizeof(c->heads_from) / sizeof(c->heads_from[0])) {
				usage_error("--heads-from given more than %zu times",
				    sizeof(c->heads_from) / sizeof(c->heads_from[0]));
				return CHECK_EXIT_USAGE;
			}
			c->heads_from[c->n_heads_from++] = optarg;
			break;
		case ':':
			usage_error("%s needs a value (see --help)", argv[optind - 1]);
			return CHECK_EXIT_USAGE;
		case 'h':
			usage(stdout);
			exit(CHECK_EXIT_CLEAN);
		case 'V':
			printf("recfs-check %s\n", RECFS_VERSION);
			exit(CHECK_EXIT_CLEAN);
		default:
			if (optopt != 0)
				usage_error("unknown option -%c (see --help)", optopt);
			else
				usage_error("unknown option %s (see --help)", argv[optind - 1]);
			return CHECK_EXIT_USAGE;
		}
	}
	if (c->quiet && c->verbose) {
		usage_error("-q and -v contradict each other");
		return CHECK_EXIT_USAGE;
	}
	if (c->json && c->verbose) {
		usage_error("-v lists records as text: use it without --json");
		return CHECK_EXIT_USAGE;
	}
	if (optind >= argc) {
		usage_error("no storage file given");
		usage(stderr);
		return CHECK_EXIT_USAGE;
	}
	if (argc - optind > CONFIG_FILES_MAX) {
		usage_error("%d files given; a namespace has at most %d", argc - optind, CONFIG_FILES_MAX);
		return CHECK_EXIT_USAGE;
	}
	return 0;
}

/* Open every file and read its header: 0 or CHECK_EXIT_USAGE. */
static int
open_files(struct checker *c, char **paths, unsigned n)
{
	struct check_run *run = &c->run;
	struct stat *ids = calloc(n, sizeof(*ids));
	int rc = 0;

	run->files = calloc(n, sizeof(*run->files));
	if (ids == NULL || run->files == NULL) {
		free(ids);
		usage_error("out of memory");
		return CHECK_EXIT_USAGE;
	}
	for (unsigned i = 0; i < n; i++)
		run->files[i].fd = -1;
	run->n_files = n;
	for (unsigned i = 0; i < n && rc == 0; i++) {
		struct check_file *f = &run->files[i];
		int err = check_file_open(f, paths[i]);

		if (err == 0 && fstat(f->fd, &ids[i]) != 0)
			err = -errno;
		if (err != 0) {
			usage_error("%s: %s", paths[i], recfs_strerror(err));
			rc = CHECK_EXIT_USAGE;
			break;
		}
		if (file_lock_query(f->fd, &f->holder) == 0 && f->holder.held) {
			char who[64];

			file_lock_holder_text(&f->holder, who, sizeof(who));
			if (!c->force) {
				usage_error("%s is in use by a running recfsd (%s): stop it and wait for it "
				    "to exit, or give --force to look anyway", paths[i], who);
				rc = CHECK_EXIT_USAGE;
				break;
			}
			set_warning(c, "%s is in use by a running recfsd (%s), checked anyway (--force): "
			    "its newest writes may still be in the daemon's memory, and a record being "
			    "written can show as damaged", paths[i], who);
		}
		for (unsigned j = 0; j < i; j++)
			if (ids[j].st_dev == ids[i].st_dev && ids[j].st_ino == ids[i].st_ino) {
				usage_error("%s and %s are the same file", paths[j], paths[i]);
				rc = CHECK_EXIT_USAGE;
			}
		if (rc != 0)
			break;
		err = check_file_header(f, c->all);
		if (err != 0) {
			usage_error("%s: cannot read the header: %s", paths[i], recfs_strerror(err));
			rc = CHECK_EXIT_USAGE;
			break;
		}
		switch (f->state) {
		case CHECK_FILE_VALID: run->n_valid++; break;
		case CHECK_FILE_EMPTY: run->n_empty++; break;
		case CHECK_FILE_INVALID: run->n_invalid++; break;
		}
	}
	free(ids);
	return rc;
}

/* Open paths as one set and find the newest copy of every record (pass 1,
 * classify): what --heads-from needs of another node's files.  0 or
 * CHECK_EXIT_USAGE (reported). */
static int
checker_read(struct checker *c, char **paths, unsigned n)
{
	int rc = open_files(c, paths, n);

	if (rc == 0)
		rc = check_set(c);
	if (rc != 0)
		return rc;
	for (unsigned i = 0; rc == 0 && i < c->run.n_files; i++)
		if (c->run.files[i].state == CHECK_FILE_VALID)
			rc = check_file_walk(&c->run.files[i], pass1_item, c);
	if (rc == 0)
		rc = classify(c);
	if (rc != 0) {
		usage_error("%s", recfs_strerror(rc));
		rc = CHECK_EXIT_USAGE;
	}
	return rc;
}

static void
checker_fini(struct checker *c)
{
	for (unsigned i = 0; i < c->run.n_files; i++)
		check_file_close(&c->run.files[i]);
	free(c->run.files);
	for (unsigned i = 0; i < c->run.n_warnings; i++)
		free(c->run.warnings[i]);
	free(c->run.warnings);
	free(c->run.corrupt_list);
	free(c->run.pdrop);
	free(c->run.pkeep);
	check_table_fini(&c->table);
	for (size_t i = 0; i < c->heads_cap; i++)
		if (c->heads[i].id != 0)
			txn_chunk_map_free(&c->heads[i].map);
	free(c->heads);
	free(c->chunks);
}

int
main(int argc, char **argv)
{
	struct checker c;
	int rc;

	memset(&c, 0, sizeof(c));
	c.flush_max_ms = 1000;  /* the configuration's default */
	rc = parse_options(&c, argc, argv);
	if (rc != 0)
		return rc;
	c.run.torn_window_ms = c.flush_max_ms + 1000;
	c.now = clock_epoch_s();
	if (check_table_init(&c.table) != 0) {
		usage_error("out of memory");
		return CHECK_EXIT_USAGE;
	}
	rc = open_files(&c, argv + optind, (unsigned)(argc - optind));
	if (rc == 0)
		rc = check_set(&c);
	if (rc != 0)
		goto out;
	for (unsigned i = 0; i < c.run.n_files; i++) {
		struct check_file *f = &c.run.files[i];

		if (f->state == CHECK_FILE_INVALID && !c.json)
			fprintf(stderr, "recfs-check: %s: invalid header: %s\n", f->path, f->why);
		if (f->state != CHECK_FILE_VALID)
			continue;
		if (f->short_file && !c.json)
			fprintf(stderr, "recfs-check: %s: %s\n", f->path, f->why);
		rc = check_file_walk(f, pass1_item, &c);
		if (rc != 0)
			break;
	}
	if (rc == 0)
		rc = classify(&c);
	if (rc == 0)
		rc = report_damaged(&c);
	if (rc == 0)
		rc = check_chunks(&c);
	if (rc == CHECK_EXIT_USAGE)
		goto out;   /* --heads-from: reported */
	if (rc != 0) {
		usage_error("%s", recfs_strerror(rc));
		rc = CHECK_EXIT_USAGE;
		goto out;
	}
	if (c.verbose)
		for (unsigned i = 0; i < c.run.n_files && rc == 0; i++)
			if (c.run.files[i].state == CHECK_FILE_VALID) {
				rc = check_file_walk(&c.run.files[i], pass2_item, &c);
				c.printed = true;
			}
	if (c.run.total.order_conflicts > 0)
		set_warning(&c, "%" PRIu64 " record%s copies whose generation and last-update time disagree "
		    "on which is newer: recfsd keeps %s (see the WARNING lines)",
		    c.run.total.order_conflicts, c.run.total.order_conflicts == 1 ? " has" : "s have",
		    RECORD_NEWEST_COPY_RULE);
	if (c.run.total.damaged > 0)
		set_warning(&c, "%" PRIu64 " record%s a damaged newest copy: recfsd marks %s damaged "
		    "(reads fail with EIO until overwritten or unlinked; see the DAMAGED RECORD lines)",
		    c.run.total.damaged, c.run.total.damaged == 1 ? " has" : "s have",
		    c.run.total.damaged == 1 ? "it" : "them");
	c.run.exit_status = CHECK_EXIT_CLEAN;
	if (c.run.total.corrupt > 0 || c.run.n_invalid > 0 || c.run.pver_bad > 0)
		c.run.exit_status = CHECK_EXIT_CORRUPT;
	for (unsigned i = 0; i < c.run.n_files; i++)
		if (c.run.files[i].short_file)
			c.run.exit_status = CHECK_EXIT_CORRUPT;
	if (c.json) {
		check_report_json(stdout, &c.run);
	} else {
		if (c.printed)
			putchar('\n');
		check_report_text(stdout, &c.run);
	}
	rc = c.run.exit_status;
	if (fflush(stdout) != 0) {
		usage_error("writing the report: %s", strerror(errno));
		rc = CHECK_EXIT_USAGE;
	}
out:
	checker_fini(&c);
	return rc;
}
