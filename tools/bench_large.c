/*
 * bench_large.c - one large file written and read sequentially through a
 * recfsd mount (device engine) against fio on the same file system, in the
 * same run (targets in docs/benchmarks.md: >= 0.5x fio sequential write,
 * >= 0.7x fio sequential read), and the daemon's memory meanwhile.
 *
 * recfsd gets a device-engine config in a storage directory (--device-dir,
 * or the temp dir; not tmpfs: fio and the engine use O_DIRECT) with
 * post-write-cache 0, so the read comes from storage as fio's does.  The
 * file (1 GiB, 256 MiB with --quick) is written with 1 MiB write(2)s of a
 * pattern naming each MiB, closed (the close commits it), its pages dropped
 * from the kernel's cache (posix_fadvise DONTNEED), then read back with
 * 1 MiB read(2)s, each MiB's pattern checked.  fio writes the same size
 * (bs 1M, psync, direct, end_fsync) into a file next to recfsd's storage
 * file, then reads it (bs 1M, psync, direct): one application thread
 * against one fio job, the same request size.  Each fio figure is the mean
 * of a run just before and one just after recfsd's pass (the write's
 * after-run is the read's before-run order: fio write, recfsd write, fio
 * write, fio read, recfsd read, fio read).
 *
 * Rows: large.write, large.fio_write, large.write_ratio (judged),
 * large.read, large.fio_read, large.read_ratio (judged), large.rss (the
 * daemon's peak RSS, VmHWM, informational; its RSS before the write in the
 * note), and the counted work of the read, which other load on the
 * machine hardly moves (informational): large.read_cpu (the daemon's CPU
 * time per MiB read, /proc/PID/stat) and large.read_requests (FUSE read
 * requests per MiB, fuse_read of .info/statistics; the read-ahead window
 * in the note).
 *
 * Teardown, also on errors and SIGINT: unmount, reap the daemon by pid,
 * remove the storage and fio files and the storage dir.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <linux/magic.h>
#include <unistd.h>

#include "bench.h"

#define LG_NS "test"
#define LG_SET "large"
#define LG_FILE "big"
#define LG_BYTES (1ull << 30)
#define LG_BYTES_QUICK (256ull << 20)
#define LG_IO (1u << 20)
#define LG_TIMEOUT_S 600

#define TARGET_LARGE_WRITE "target write >= 0.5x fio sequential write"
#define TARGET_LARGE_READ "target read >= 0.7x fio sequential read"

struct bench_large_state {
	char recfsd[PATH_MAX];
	char dir[PATH_MAX];            /* storage dir */
	bool dir_made;
	char file[PATH_MAX];           /* recfsd's storage file */
	char fio_file[PATH_MAX];
	char fio[PATH_MAX];            /* "" = not found */
	struct bench_daemon d;
};

static uint64_t
lg_bytes(const struct bench_ctx *ctx)
{
	return ctx->opt.quick ? LG_BYTES_QUICK : LG_BYTES;
}

/* The daemon's VmRSS or VmHWM in bytes, 0 if unreadable. */
static uint64_t
lg_proc_kib(pid_t pid, const char *field)
{
	char path[64], line[256];
	size_t n = strlen(field);
	uint64_t v = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, field, n) == 0 && line[n] == ':') {
			v = strtoull(line + n + 1, NULL, 10) << 10;
			break;
		}
	fclose(f);
	return v;
}

/* MiB number i's pattern: its index in every 8 bytes. */
static void
lg_fill(char *buf, uint64_t i)
{
	for (size_t o = 0; o < LG_IO; o += sizeof(i))
		memcpy(buf + o, &i, sizeof(i));
}

static int
lg_prepare(struct bench_ctx *ctx, struct bench_large_state *st, char *err)
{
	char yaml[4 * PATH_MAX], work[PATH_MAX], base[PATH_MAX];
	struct statfs sfs;
	int rc;

	if (ctx->opt.recfsd_path != NULL)
		rc = bench_path(st->recfsd, sizeof(st->recfsd), "%s", ctx->opt.recfsd_path);
	else
		rc = bench_path(st->recfsd, sizeof(st->recfsd), "%s/recfsd", ctx->opt.self_dir);
	if (rc != 0 || access(st->recfsd, X_OK) != 0)
		return bench_fail(err, -ENOENT, "%s: %s (see --recfsd)", st->recfsd,
		    rc != 0 ? "path too long" : strerror(errno));
	if (ctx->opt.device_dir != NULL) {
		rc = bench_path(st->dir, sizeof(st->dir), "%s/recfs-bench-large.XXXXXX", ctx->opt.device_dir);
		if (rc == 0 && mkdtemp(st->dir) == NULL)
			rc = -errno;
	} else {
		rc = bench_path(st->dir, sizeof(st->dir), "%s/large-storage", ctx->tmp);
		if (rc == 0 && mkdir(st->dir, 0700) != 0)
			rc = -errno;
	}
	if (rc != 0)
		return bench_fail(err, rc, "storage dir %s: %s", st->dir, strerror(-rc));
	st->dir_made = true;
	if (statfs(st->dir, &sfs) != 0)
		return bench_fail(err, -errno, "statfs %s: %s", st->dir, strerror(errno));
	if (sfs.f_type == TMPFS_MAGIC || sfs.f_type == RAMFS_MAGIC) {
		bench_fail(err, 1, "storage dir %s is on tmpfs: no O_DIRECT, no storage rate "
		    "(use --device-dir)", st->dir);
		return 1;
	}
	bench_find_in_path("fio", st->fio, sizeof(st->fio));
	if (bench_path(base, sizeof(base), "%s/large-node", ctx->tmp) != 0 ||
	    bench_daemon_paths(&st->d, base, "single", LG_NS "/" LG_SET) != 0 ||
	    bench_path(st->file, sizeof(st->file), "%s/large.dat", st->dir) != 0 ||
	    bench_path(st->fio_file, sizeof(st->fio_file), "%s/fio-large.dat", st->dir) != 0 ||
	    bench_path(work, sizeof(work), "%s/work", base) != 0)
		return bench_fail(err, -ENAMETOOLONG, "temp dir path too long");
	if ((mkdir(base, 0700) != 0 && errno != EEXIST) || (mkdir(work, 0700) != 0 && errno != EEXIST) ||
	    (mkdir(st->d.mnt, 0755) != 0 && errno != EEXIST))
		return bench_fail(err, -errno, "mkdir %s: %s", base, strerror(errno));
	/* Room for 2.5x the file: the default chunk (1020K) fills a write
	 * block, the rest is headroom (and lets a build with 512K chunks,
	 * which took a block each, run the same benchmark). */
	rc = bench_path(yaml, sizeof(yaml),
	    "# generated by recfs-bench (large)\n"
	    "service:\n"
	    "  work-directory: %s\n"
	    "  ticker-interval: 0\n"
	    "logging:\n"
	    "  file: %s\n"
	    "  level: info\n"
	    "namespaces:\n"
	    "  - name: " LG_NS "\n"
	    "    replication-factor: 1\n"
	    "    storage-engine:\n"
	    "      type: device\n"
	    "      files: [ %s ]\n"
	    "      filesize: %lluM\n"
	    "      write-block-size: 1M\n"
	    "      post-write-cache: 0\n",
	    work, st->d.log, st->file, (unsigned long long)(lg_bytes(ctx) * 5 / 2 >> 20));
	if (rc != 0)
		return bench_fail(err, rc, "temp dir path too long");
	rc = bench_write_file(st->d.conf, yaml, 0644);
	return rc == 0 ? 0 : bench_fail(err, rc, "%s: %s", st->d.conf, strerror(-rc));
}

/* Write (or read and check) the file through the mount; the seconds into
 * *secs.  0 or -errno with err. */
static int
lg_pass(struct bench_ctx *ctx, struct bench_large_state *st, bool write, double *secs, char *err)
{
	uint64_t size = lg_bytes(ctx), t0;
	char *buf = NULL, *want = NULL;
	int fd, rc = 0;

	if (posix_memalign((void **)&buf, 4096, LG_IO) != 0 ||
	    posix_memalign((void **)&want, 4096, LG_IO) != 0) {
		free(buf);
		return bench_fail(err, -ENOMEM, "no memory for buffers");
	}
	t0 = bench_now_ns();
	fd = openat(st->d.dirfd, LG_FILE, write ? O_WRONLY | O_CREAT | O_TRUNC : O_RDONLY, 0644);
	if (fd < 0) {
		rc = bench_fail(err, -errno, "open %s/%s: %s", st->d.files, LG_FILE, strerror(errno));
		goto out;
	}
	for (uint64_t i = 0; i < size / LG_IO && rc == 0; i++) {
		ssize_t n;

		if (bench_interrupted) {
			rc = -EINTR;
			break;
		}
		lg_fill(write ? buf : want, i);
		n = write ? pwrite(fd, buf, LG_IO, (off_t)(i * LG_IO)) : pread(fd, buf, LG_IO, (off_t)(i * LG_IO));
		if (n != (ssize_t)LG_IO)
			rc = bench_fail(err, n < 0 ? -errno : -EIO, "%s MiB %llu: %s", write ? "write" : "read",
			    (unsigned long long)i, n < 0 ? strerror(errno) : "short");
		else if (!write && memcmp(buf, want, LG_IO) != 0)
			rc = bench_fail(err, -EIO, "MiB %llu read back differs", (unsigned long long)i);
	}
	if (close(fd) != 0 && rc == 0)
		rc = bench_fail(err, -errno, "close (the commit): %s", strerror(errno));
	*secs = (double)(bench_now_ns() - t0) / 1e9;
	if (rc == 0 && write) {
		/* The read must come from recfsd, not from the kernel's cache. */
		fd = openat(st->d.dirfd, LG_FILE, O_RDONLY);
		if (fd >= 0) {
			(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
			close(fd);
		}
	}
out:
	free(buf);
	free(want);
	return rc;
}

static int
lg_fio(struct bench_ctx *ctx, struct bench_large_state *st, bool write, double *bps, char *err)
{
	char file[PATH_MAX + 16], size[48], why[200];
	const char *const wopts[] = { file, "--rw=write", "--bs=1M", "--ioengine=psync", "--direct=1",
	    "--end_fsync=1", size, NULL };
	const char *const ropts[] = { file, "--rw=read", "--bs=1M", "--ioengine=psync", "--direct=1",
	    "--readonly", size, NULL };
	struct bench_fio_out fo;
	int rc;

	if (bench_path(file, sizeof(file), "--filename=%s", st->fio_file) != 0)
		return bench_fail(err, -ENAMETOOLONG, "path too long");
	snprintf(size, sizeof(size), "--size=%llu", (unsigned long long)lg_bytes(ctx));
	rc = bench_fio_run(ctx, st->fio, write ? "large-write" : "large-read", write ? "write" : "read",
	    write ? wopts : ropts, LG_TIMEOUT_S, &fo, why, sizeof(why));
	if (rc != 0)
		return bench_fail(err, rc, "fio: %s", why);
	*bps = fo.bw_bytes;
	return 0;
}

static struct bench_row *
lg_rate_row(struct bench_ctx *ctx, const char *id, const char *label, double bps, double secs)
{
	struct bench_row *row = bench_row_add(ctx, id, label);

	if (row == NULL)
		return NULL;
	row->unit = "MB/s";
	row->value = row->mb_per_s = bps / 1e6;
	row->seconds = secs;
	row->threads = 1;
	return row;
}

static void
lg_ratio_row(struct bench_ctx *ctx, const char *id, const char *label, double mine, double fio,
    const char *target, double bound)
{
	struct bench_row *row = bench_row_add(ctx, id, label);

	if (row == NULL)
		return;
	if (fio <= 0) {
		row->verdict = VERDICT_SKIP;
		snprintf(row->note, sizeof(row->note), "fio not found in PATH");
		return;
	}
	row->unit = "x";
	row->value = mine / fio;
	row->mb_per_s = -1;
	bench_row_judge(ctx, row, target, bound, true);
}

int
bench_large(struct bench_ctx *ctx, const struct bench_def *def)
{
	struct bench_large_state *st = ctx->large;
	char err[BENCH_ERR_MAX] = "";
	double ws = 0, rs = 0, fw = 0, fr = 0, fw2[2] = { 0, 0 }, fr2[2] = { 0, 0 }, cpu0, cpu1;
	uint64_t size = lg_bytes(ctx), rss0, hwm, req0 = 0, req1 = 0, ra = 0;
	struct bench_row *row;
	int rc;

	(void)def;
	if (st == NULL) {
		st = calloc(1, sizeof(*st));
		if (st == NULL)
			return -ENOMEM;
		st->d.dirfd = -1;
		ctx->large = st;
	}
	rc = lg_prepare(ctx, st, err);
	if (rc == 1) {
		if ((row = bench_row_add(ctx, "", "large file through the mount")) != NULL) {
			row->verdict = VERDICT_SKIP;
			snprintf(row->note, sizeof(row->note), "%s", err);
		}
		return 0;
	}
	if (rc != 0)
		goto error;
	if ((rc = bench_daemon_start(st->recfsd, &st->d, err)) != 0 ||
	    (rc = bench_daemon_open_dir(&st->d, err)) != 0)
		goto error;
	/* Each fio figure is the mean of a run just before and just after
	 * recfsd's pass: a burst of other load lands on both sides. */
	rss0 = lg_proc_kib(st->d.pid, "VmRSS");
	if (st->fio[0] && (rc = lg_fio(ctx, st, true, &fw2[0], err)) != 0)
		goto error;
	bench_progress("large: writing %llu MiB through the mount", (unsigned long long)(size >> 20));
	if ((rc = lg_pass(ctx, st, true, &ws, err)) != 0)
		goto error;
	if (st->fio[0] && ((rc = lg_fio(ctx, st, true, &fw2[1], err)) != 0 ||
	    (rc = lg_fio(ctx, st, false, &fr2[0], err)) != 0))
		goto error;
	bench_progress("large: reading it back");
	cpu0 = bench_process_cpu_s(st->d.pid);
	if ((rc = bench_info_u64(st->d.mnt, "statistics", "fuse_read", &req0)) != 0)
		goto error;
	if ((rc = lg_pass(ctx, st, false, &rs, err)) != 0)
		goto error;
	cpu1 = bench_process_cpu_s(st->d.pid);
	if ((rc = bench_info_u64(st->d.mnt, "statistics", "fuse_read", &req1)) != 0)
		goto error;
	/* A recfsd before fuse.read-ahead has no such statistic: "?" */
	if (bench_info_u64(st->d.mnt, "statistics", "fuse_read_ahead_bytes", &ra) != 0)
		ra = 0;
	hwm = lg_proc_kib(st->d.pid, "VmHWM");
	if (st->fio[0]) {
		if ((rc = lg_fio(ctx, st, false, &fr2[1], err)) != 0)
			goto error;
		unlink(st->fio_file);
		fw = (fw2[0] + fw2[1]) / 2;
		fr = (fr2[0] + fr2[1]) / 2;
	}
	lg_rate_row(ctx, "write", "1 MiB writes of one file, then close", ws > 0 ? (double)size / ws : 0, ws);
	if (st->fio[0] && (row = lg_rate_row(ctx, "fio_write", "fio sequential write bs 1M, direct", fw, 0)) != NULL)
		snprintf(row->note, sizeof(row->note), "mean of a run before and after: %.0f, %.0f MB/s",
		    fw2[0] / 1e6, fw2[1] / 1e6);
	lg_ratio_row(ctx, "write_ratio", "large file write / fio write", ws > 0 ? (double)size / ws : 0, fw,
	    TARGET_LARGE_WRITE, 0.5);
	lg_rate_row(ctx, "read", "1 MiB reads of that file, checked", rs > 0 ? (double)size / rs : 0, rs);
	if (st->fio[0] && (row = lg_rate_row(ctx, "fio_read", "fio sequential read bs 1M, direct", fr, 0)) != NULL)
		snprintf(row->note, sizeof(row->note), "mean of a run before and after: %.0f, %.0f MB/s",
		    fr2[0] / 1e6, fr2[1] / 1e6);
	lg_ratio_row(ctx, "read_ratio", "large file read / fio read", rs > 0 ? (double)size / rs : 0, fr,
	    TARGET_LARGE_READ, 0.7);
	if ((row = bench_row_add(ctx, "read_cpu", "recfsd CPU per MiB read")) != NULL) {
		row->unit = "ms/MiB";
		row->value = cpu0 >= 0 && cpu1 >= cpu0 ? (cpu1 - cpu0) * 1e3 / (double)(size >> 20) : 0;
		row->mb_per_s = -1;
		snprintf(row->note, sizeof(row->note), "user + system time of the daemon, all threads");
	}
	if ((row = bench_row_add(ctx, "read_requests", "FUSE read requests per MiB read")) != NULL) {
		row->unit = "req/MiB";
		row->value = (double)(req1 - req0) / (double)(size >> 20);
		row->mb_per_s = -1;
		if (ra > 0)
			snprintf(row->note, sizeof(row->note), "read-ahead window %llu KiB (fuse_read_ahead_bytes)",
			    (unsigned long long)(ra >> 10));
		else
			snprintf(row->note, sizeof(row->note), "read-ahead window ? (no fuse_read_ahead_bytes)");
	}
	if ((row = bench_row_add(ctx, "rss", "recfsd peak RSS (VmHWM)")) != NULL) {
		row->unit = "MB";
		row->value = (double)hwm / 1e6;
		row->mb_per_s = -1;
		snprintf(row->note, sizeof(row->note), "%.0f MB before the write: +%.0f MB", (double)rss0 / 1e6,
		    hwm > rss0 ? (double)(hwm - rss0) / 1e6 : 0);
	}
	bench_note(ctx, "large: one %llu MiB file on the device engine (post-write-cache 0) in %s; fio on "
	    "a file in the same dir", (unsigned long long)(size >> 20), st->dir);
	bench_large_cleanup(ctx);
	return 0;
error:
	if (rc == -EINTR || bench_interrupted)
		return -EINTR;
	if (err[0] == '\0')
		bench_fail(err, rc, "%s", strerror(-rc));
	bench_row_error(ctx, "", "large file through the mount", "%s", err);
	{
		char tail[160];

		bench_file_tail(st->d.log, tail, sizeof(tail), 2);
		if (tail[0])
			bench_progress("recfsd log: %s", tail);
	}
	return rc;
}

void
bench_large_cleanup(struct bench_ctx *ctx)
{
	struct bench_large_state *st = ctx->large;

	if (st == NULL)
		return;
	if (st->d.dirfd >= 0) {
		close(st->d.dirfd);
		st->d.dirfd = -1;
	}
	bench_daemon_stop(&st->d);
	if (st->file[0])
		unlink(st->file);
	if (st->fio_file[0])
		unlink(st->fio_file);
	if (st->dir_made && rmdir(st->dir) != 0)
		fprintf(stderr, "recfs-bench: rmdir %s: %s\n", st->dir, strerror(errno));
	free(st);
	ctx->large = NULL;
}
