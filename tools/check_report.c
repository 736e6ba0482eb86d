/*
 * check_report.c - recfs-check's summary, as text for people and as JSON
 * for scripts (see check.h; recfs-check(1) describes every figure).
 *
 * Both forms expand one table of counters (COUNT_FIELDS), so a figure
 * added there appears in both with the same meaning; the JSON names are
 * the table's names, the text labels its titles.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "check.h"

/* Where partition p's version slot lies in file f (by its format version). */
static uint64_t
pslot_offset(const struct check_file *f, uint32_t p)
{
	uint32_t hv = f->hdr.version;

	return device_pmeta_area_offset(hv) + (uint64_t)p * (device_pmeta_area_size(hv) / DEVICE_PMETA_SLOTS);
}

#ifndef RECFS_VERSION
#define RECFS_VERSION "unknown"
#endif

/* name (JSON), title (text), field of struct check_counts */
#define COUNT_FIELDS(X) \
	X("wblocks_scanned", "wblocks scanned", wblocks) \
	X("records", "records", records) \
	X("live", "live", live) \
	X("superseded", "superseded", superseded) \
	X("tombstones", "tombstones", tombstones) \
	X("tombstones_reclaimable", "  no older copy", tombstones_reclaimable) \
	X("expired", "expired", expired) \
	X("set_markers", "set markers", set_markers) \
	X("corrupt", "corrupt", corrupt) \
	X("damaged", "  newest copy damaged", damaged) \
	X("torn_writes", "  torn write (unclean)", torn) \
	X("order_conflicts", "order conflicts", order_conflicts) \
	X("dropped_partition_copies", "of dropped partitions", dropped) \
	X("bytes_live", "bytes live", bytes_live) \
	X("bytes_in_use", "bytes in use", bytes_in_use)

static const char *const fill_names[CHECK_FILL_BUCKETS] = {
	"0%", "1-10%", "11-20%", "21-30%", "31-40%", "41-50%",
	"51-60%", "61-70%", "71-80%", "81-90%", "91-100%",
};

void
check_print_escaped(FILE *out, const void *s, size_t len)
{
	const unsigned char *p = s;

	/* Keys come from file names: anything but a space-free printable
	 * ASCII run is escaped, so one record is one whitespace-split line. */
	for (size_t i = 0; i < len; i++) {
		if (p[i] > ' ' && p[i] < 0x7f && p[i] != '\\')
			fputc(p[i], out);
		else if (p[i] == '\\')
			fputs("\\\\", out);
		else
			fprintf(out, "\\x%02x", p[i]);
	}
}

static const char *
state_name(enum check_file_state s)
{
	switch (s) {
	case CHECK_FILE_VALID: return "valid";
	case CHECK_FILE_EMPTY: return "empty";
	case CHECK_FILE_INVALID: return "invalid";
	}
	return "?";
}

static void
format_time_ms(char *buf, size_t size, uint64_t epoch_ms)
{
	time_t t = (time_t)(epoch_ms / 1000 + RECFS_EPOCH);
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(buf, size, "%" PRIu64 " ms after 2010-01-01", epoch_ms);
}

/* ---- text ------------------------------------------------------------------ */

static void
text_counts(FILE *out, const struct check_counts *c)
{
#define X(name, title, field) fprintf(out, "  %-22s %14" PRIu64 "\n", title, c->field);
	COUNT_FIELDS(X)
#undef X
	fprintf(out, "  %-22s", "fill (live bytes)");
	for (int i = 0; i < CHECK_FILL_BUCKETS; i++)
		fprintf(out, " %s:%" PRIu64, fill_names[i], c->fill[i]);
	fputc('\n', out);
}

static void
text_file(FILE *out, const struct check_file *f)
{
	char when[64];

	fprintf(out, "\n%s\n", f->path);
	switch (f->state) {
	case CHECK_FILE_EMPTY:
		fprintf(out, "  empty: never formatted (all-zero header page); holds no records\n");
		return;
	case CHECK_FILE_INVALID:
		fprintf(out, "  INVALID HEADER: %s\n", f->why);
		return;
	case CHECK_FILE_VALID:
		break;
	}
	format_time_ms(when, sizeof(when), f->hdr.created_ms);
	fprintf(out, "  %-22s device %u of %u, signature %016" PRIx64 ", created %s, opened %" PRIu64
	    " time%s, %s\n", "header", f->hdr.device_index + 1, f->hdr.n_devices, f->hdr.signature,
	    when, f->hdr.opens, f->hdr.opens == 1 ? "" : "s",
	    (f->hdr.flags & DEVICE_F_CLEAN) ? "shut down cleanly" : "NOT shut down cleanly (or in use)");
	fprintf(out, "  %-22s %" PRIu64 " bytes, %u wblocks of %u (data from wblock %u), high water %u%s\n",
	    "size", f->size, f->n_wblocks, f->hdr.write_block_size, f->first, f->hdr.high_water,
	    (f->hdr.flags & DEVICE_F_STALE) ? " (erased: old records past it are zeroed as it rises)" : "");
	if (f->short_file)
		fprintf(out, "  DAMAGED: %s\n", f->why);
	fprintf(out, "  %-22s %u of %u partitions with a version, %u slot%s failing the CRC",
	    "partition versions", f->pver_set, DEVICE_PMETA_SLOTS, f->pver_bad,
	    f->pver_bad == 1 ? "" : "s");
	if (f->pdrop_set > 0)
		fprintf(out, ", %u dropped", f->pdrop_set);
	if (f->pregained_set > 0)
		fprintf(out, ", %u regained after a drop", f->pregained_set);
	fputc('\n', out);
	for (uint32_t i = 0; i < f->pver_bad && i < CHECK_PVER_LIST; i++)
		fprintf(out, "  DAMAGED: partition %u: version slot at offset %" PRIu64 " fails its CRC "
		    "(recfsd counts the partition as holding no data)\n", f->pver_bad_pid[i],
		    pslot_offset(f, f->pver_bad_pid[i]));
	if (f->pver_bad > CHECK_PVER_LIST)
		fprintf(out, "  DAMAGED: ... and %u more version slots\n", f->pver_bad - CHECK_PVER_LIST);
	text_counts(out, &f->counts);
}

void
check_report_text(FILE *out, const struct check_run *run)
{
	fprintf(out, "recfs-check %s: ", RECFS_VERSION);
	if (run->ns_name != NULL)
		fprintf(out, "namespace %s, %u device%s in the set, write-block-size %u, %u file%s given\n",
		    run->ns_name, run->n_devices, run->n_devices == 1 ? "" : "s", run->wbs, run->n_files,
		    run->n_files == 1 ? "" : "s");
	else
		fprintf(out, "%u file%s given, none with a valid header\n", run->n_files,
		    run->n_files == 1 ? "" : "s");
	for (unsigned i = 0; i < run->n_files; i++)
		text_file(out, &run->files[i]);
	if (run->n_valid > 1) {
		fprintf(out, "\ntotal (%" PRIu64 " distinct records)\n", run->digests);
		text_counts(out, &run->total);
	}
	fprintf(out, "\nlarge files: chunks: %" PRIu64 ", orphaned chunks: %" PRIu64 "\n", run->chunks,
	    run->orphaned_chunks);
	if (run->n_warnings > 0)
		fputc('\n', out);
	for (unsigned i = 0; i < run->n_warnings; i++)
		fprintf(out, "warning: %s\n", run->warnings[i]);
	fprintf(out, "\nresult: ");
	if (run->exit_status == CHECK_EXIT_CLEAN)
		fprintf(out, "clean\n");
	else {
		const char *sep = "";

		if (run->total.corrupt > 0) {
			fprintf(out, "CORRUPTION FOUND: %" PRIu64 " damaged record%s or wblock%s", run->total.corrupt,
			    run->total.corrupt == 1 ? "" : "s", run->total.corrupt == 1 ? "" : "s");
			sep = "; ";
		}
		if (run->n_invalid > 0) {
			fprintf(out, "%sINVALID HEADER in %u file%s", sep, run->n_invalid,
			    run->n_invalid == 1 ? "" : "s");
			sep = "; ";
		}
		if (run->pver_bad > 0) {
			fprintf(out, "%sDAMAGED PARTITION VERSIONS: %u slot%s failing the CRC", sep, run->pver_bad,
			    run->pver_bad == 1 ? "" : "s");
			sep = "; ";
		}
		for (unsigned i = 0; i < run->n_files; i++)
			if (run->files[i].short_file) {
				fprintf(out, "%s%s is truncated", sep, run->files[i].path);
				sep = "; ";
			}
		fputc('\n', out);
	}
}

/* ---- JSON ------------------------------------------------------------------ */

static void
json_string(FILE *out, const char *s, size_t len)
{
	fputc('"', out);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		/* Bytes >= 0x80 as \u00XX: paths need not be UTF-8, JSON must be. */
		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

static void
json_cstring(FILE *out, const char *s)
{
	if (s == NULL)
		fputs("null", out);
	else
		json_string(out, s, strlen(s));
}

static void
json_counts(FILE *out, const struct check_counts *c, const char *indent)
{
#define X(name, title, field) fprintf(out, "%s\"%s\": %" PRIu64 ",\n", indent, name, c->field);
	COUNT_FIELDS(X)
#undef X
	fprintf(out, "%s\"fill_histogram\": {", indent);
	for (int i = 0; i < CHECK_FILL_BUCKETS; i++)
		fprintf(out, "%s\"%s\": %" PRIu64, i ? ", " : "", fill_names[i], c->fill[i]);
	fputc('}', out);
}

static void
json_file(FILE *out, const struct check_file *f)
{
	fprintf(out, "    {\n      \"path\": ");
	json_cstring(out, f->path);
	fprintf(out, ",\n      \"state\": \"%s\",\n      \"error\": ", state_name(f->state));
	if (f->state == CHECK_FILE_INVALID || f->short_file)
		json_cstring(out, f->why);
	else
		fputs("null", out);
	if (f->state != CHECK_FILE_VALID) {
		fprintf(out, "\n    }");
		return;
	}
	fprintf(out, ",\n      \"device_index\": %u,\n      \"n_devices\": %u,\n"
	    "      \"signature\": \"%016" PRIx64 "\",\n      \"clean_shutdown\": %s,\n"
	    "      \"opens\": %" PRIu64 ",\n      \"created_ms\": %" PRIu64 ",\n"
	    "      \"size\": %" PRIu64 ",\n      \"write_block_size\": %u,\n"
	    "      \"first_wblock\": %u,\n      \"high_water\": %u,\n      \"scan_end\": %u,\n",
	    f->hdr.device_index, f->hdr.n_devices, f->hdr.signature,
	    (f->hdr.flags & DEVICE_F_CLEAN) ? "true" : "false", f->hdr.opens, f->hdr.created_ms,
	    f->size, f->hdr.write_block_size, f->first, f->hdr.high_water, f->scan_end);
	fprintf(out, "      \"partitions_with_version\": %u,\n      \"partitions_dropped\": %u,\n"
	    "      \"partitions_regained\": %u,\n"
	    "      \"pversion_slots_damaged\": %u,\n      \"pversion_slots_damaged_list\": [",
	    f->pver_set, f->pdrop_set, f->pregained_set, f->pver_bad);
	for (uint32_t i = 0; i < f->pver_bad && i < CHECK_PVER_LIST; i++)
		fprintf(out, "%s{\"partition\": %u, \"offset\": %" PRIu64 "}", i ? ", " : "",
		    f->pver_bad_pid[i], pslot_offset(f, f->pver_bad_pid[i]));
	fprintf(out, "],\n");
	json_counts(out, &f->counts, "      ");
	fprintf(out, "\n    }");
}

void
check_report_json(FILE *out, const struct check_run *run)
{
	char hex[2 * DIGEST_SIZE + 1];

	fprintf(out, "{\n  \"version\": \"%s\",\n  \"namespace\": ", RECFS_VERSION);
	json_cstring(out, run->ns_name);
	fprintf(out, ",\n  \"n_devices\": %u,\n  \"write_block_size\": %u,\n  \"files\": [\n",
	    run->n_devices, run->wbs);
	for (unsigned i = 0; i < run->n_files; i++) {
		json_file(out, &run->files[i]);
		fputs(i + 1 < run->n_files ? ",\n" : "\n", out);
	}
	fprintf(out, "  ],\n  \"pversions_differ\": %u,\n", run->pver_differ);
	fprintf(out, "  \"chunks\": %" PRIu64 ",\n  \"orphaned_chunks\": %" PRIu64 ",\n",
	    run->chunks, run->orphaned_chunks);
	fprintf(out, "  \"total\": {\n    \"distinct_records\": %" PRIu64 ",\n", run->digests);
	json_counts(out, &run->total, "    ");
	fprintf(out, "\n  },\n  \"corrupt_records\": [");
	for (unsigned i = 0; i < run->n_corrupt_list; i++) {
		const struct check_corrupt *c = &run->corrupt_list[i];

		fprintf(out, "%s\n    {\"file\": ", i ? "," : "");
		json_cstring(out, run->files[c->file].path);
		fprintf(out, ", \"offset\": %" PRIu64 ", \"digest\": ", c->offset);
		if (c->has_digest) {
			digest_to_hex(&c->digest, hex);
			fprintf(out, "\"%s\"", hex);
		} else {
			fputs("null", out);
		}
		fputs(", \"reason\": ", out);
		json_cstring(out, c->why);
		fputc('}', out);
	}
	fprintf(out, "%s],\n  \"corrupt_records_listed_all\": %s,\n  \"warnings\": [",
	    run->n_corrupt_list ? "\n  " : "",
	    run->total.corrupt <= run->n_corrupt_list ? "true" : "false");
	for (unsigned i = 0; i < run->n_warnings; i++) {
		fputs(i ? ", " : "", out);
		json_cstring(out, run->warnings[i]);
	}
	fprintf(out, "],\n  \"result\": \"%s\",\n  \"exit_status\": %d\n}\n",
	    run->exit_status == CHECK_EXIT_CLEAN ? "clean" : "corrupt", run->exit_status);
}
