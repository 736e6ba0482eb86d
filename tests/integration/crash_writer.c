/*
 * crash_writer - a seeded record workload that logs every acknowledgement,
 * and the checker that judges what storage kept after the daemon died
 * (t_crash.sh, t_durable.sh, t_defrag.sh; docs/operations.md, Durability).
 *
 * Usage:
 *   crash_writer write [-m MODE] [-f FSYNC_PCT] [-k KEYS] [-n OPS] [-d SECONDS] [-z MIN:MAX]
 *       [-b FIRST_VERSION] DIR SEED LOG
 *   crash_writer verify [-a] [-t KILL_NS -w WINDOW_MS] [-i STATE] [-o STATE] DIR LOG
 *
 * write: one thread works on the records DIR/k0000 .. DIR/k<KEYS-1> until
 * OPS operations are done, SECONDS have passed, or an operation fails.
 * Each operation is one of
 *   F  open(O_CREAT|O_TRUNC), write() in random chunks, fsync(), close()
 *   W  the same without fsync()
 *   D  unlink()
 * and MODE chooses the mix: "mixed" (F, W and D; FSYNC_PCT of the writes
 * are F, default 30), "plain" (W and D: for
 * commit-to-device) or "overwrite" (every key written once in order, then
 * W of random keys: for defrag).  Version v of key k is the content written
 * by operation number v (versions are unique): a header line naming k, v
 * and the length, then bytes from a PRNG seeded with (k, v), so any read
 * can tell which version it got and whether it is whole.
 *
 * LOG (a local file, not on the mount) gets "B seq op key version" before
 * an operation starts and "A seq op key version time_ns" (CLOCK_REALTIME)
 * once it returned success, or "E seq op key version errno" if it failed;
 * after an E the writer stops.  Lines are written with write(2) before the
 * next operation starts: the writer outlives the daemon it tests, so the
 * page cache holds them; one fsync at the end covers a later reader.
 * Exit: 0 when OPS or SECONDS ran out, 2 when an operation failed (the
 * expected end when the daemon is killed), 1 on a usage or log error.
 *
 * verify: reads every record of DIR and lists DIR, and checks against LOG:
 *   - every record present is exactly one whole version that was written
 *     (never torn, never a mix, never a stranger), or empty only where a
 *     create may have been the last thing stored;
 *   - each key holds a state it may hold: the state the log says it had
 *     at the durable point, or one that a later (or the interrupted)
 *     operation on it produced.  The durable point is the last operation
 *     acknowledged with fsync (one device: fsync makes every earlier write
 *     durable), or with -t/-w the last one acknowledged WINDOW_MS before
 *     KILL_NS (the flush-max-ms promise), or with -a the last acknowledged
 *     operation of all (commit-to-device; or no crash at all);
 *   - so a delete followed by a durable point never comes back, and a
 *     durable write is never lost or rolled back;
 *   - every read succeeds (no EIO) and the listing shows exactly the
 *     records present.
 * -o STATE writes "key state" lines (present keys) for comparing runs; -i
 * STATE starts from such a file instead of nothing (a second run of the
 * writer, with -b past the first run's versions, on what a restart found).
 * Exit 0 if every check held, 1 otherwise; problems go to stderr.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_KEYS 100000
#define MAX_CONTENT (100 * 1024)
#define HEADER_MAX 48        /* "k<key> v<version> n<length>\n" fits */

/* A key's state: absent, stored empty (a create), or a version (> 0). */
#define ST_ABSENT (-1)
#define ST_EMPTY 0
#define ST_BAD (-2)          /* present, but unreadable or not a whole version */

enum mode { MODE_MIXED, MODE_PLAIN, MODE_OVERWRITE };

/* ---- content ----------------------------------------------------------------- */

static uint64_t
splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static unsigned size_min = 64, size_max = 64 * 1024;
static bool size_uniform;     /* overwrite mode; else skewed to small */

/* The length of version v of key k in [size_min, size_max]: uniform, or
 * uniform below a uniform bound (mean about a quarter of the range), so
 * most records are small and some fill half a write block. */
static size_t
content_len(unsigned k, uint64_t v)
{
	uint64_t s = ((uint64_t)k << 40) ^ v ^ 0x5eed;
	uint64_t range = (uint64_t)size_max - size_min + 1;

	if (!size_uniform)
		range = 1 + splitmix(&s) % range;
	return size_min + (size_t)(splitmix(&s) % range);
}

/* Fill buf with version v of key k; returns its length. */
static size_t
content_make(unsigned k, uint64_t v, char *buf)
{
	size_t len = content_len(k, v);
	int h = snprintf(buf, HEADER_MAX, "k%04u v%" PRIu64 " n%zu\n", k, v, len);
	uint64_t s = ((uint64_t)k << 32) ^ (v * 0x100000001B3ULL);

	for (size_t i = (size_t)h; i < len; i += 8) {
		uint64_t r = splitmix(&s);
		size_t n = len - i < 8 ? len - i : 8;

		memcpy(buf + i, &r, n);
	}
	return len;
}

/* ---- the log ---------------------------------------------------------------------- */

static int log_fd = -1;

static void log_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void
log_line(const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n <= 0 || (size_t)n >= sizeof(line) || write(log_fd, line, (size_t)n) != n) {
		perror("crash_writer: log write");
		exit(1);
	}
}

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ---- write --------------------------------------------------------------------- */

/* Store version v of key k as name in dirfd; returns 0 or an errno. */
static int
do_write(int dirfd, const char *name, unsigned k, uint64_t v, bool durable, uint64_t *rng, char *buf)
{
	size_t len = content_make(k, v, buf), off = 0;
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0644), err = 0;

	if (fd < 0)
		return errno;
	while (off < len) {
		size_t chunk = 1 + splitmix(rng) % 16384;
		ssize_t n;

		if (chunk > len - off)
			chunk = len - off;
		n = write(fd, buf + off, chunk);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = errno;
			break;
		}
		off += (size_t)n;
	}
	if (err == 0 && durable && fsync(fd) != 0)
		err = errno;
	if (close(fd) != 0 && err == 0)
		err = errno;
	return err;
}

static int
cmd_write(int argc, char **argv)
{
	enum mode mode = MODE_MIXED;
	unsigned keys = 64;
	long max_ops = 1000000, seconds = 30;
	unsigned fsync_pct = 30;
	uint64_t base = 1;
	int opt;

	while ((opt = getopt(argc, argv, "m:k:n:d:z:f:b:")) != -1) {
		switch (opt) {
		case 'm':
			if (strcmp(optarg, "mixed") == 0)
				mode = MODE_MIXED;
			else if (strcmp(optarg, "plain") == 0)
				mode = MODE_PLAIN;
			else if (strcmp(optarg, "overwrite") == 0)
				mode = MODE_OVERWRITE;
			else
				goto usage;
			break;
		case 'k':
			keys = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'n':
			max_ops = strtol(optarg, NULL, 10);
			break;
		case 'd':
			seconds = strtol(optarg, NULL, 10);
			break;
		case 'z':
			if (sscanf(optarg, "%u:%u", &size_min, &size_max) != 2)
				goto usage;
			break;
		case 'f':
			fsync_pct = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'b':
			base = strtoull(optarg, NULL, 10);
			break;
		default:
			goto usage;
		}
	}
	if (argc - optind != 3 || keys == 0 || keys > MAX_KEYS || size_min < 64 ||
	    size_max < size_min || size_max > MAX_CONTENT || fsync_pct > 85 || base == 0)
		goto usage;
	const char *dir = argv[optind];
	uint64_t seed = strtoull(argv[optind + 1], NULL, 10);
	log_fd = open(argv[optind + 2], O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
	if (log_fd < 0) {
		perror(argv[optind + 2]);
		return 1;
	}

	static char buf[MAX_CONTENT];
	char name[32];
	signed char *exists = calloc(keys, 1);
	/* Every operation goes through a descriptor of the directory: once
	 * the test detaches the dead mount (umount -l), a path would lead to
	 * the empty mount point (ENOENT), the descriptor still to the dead
	 * connection (ENOTCONN), which is the end the test expects. */
	int dirfd = open(dir, O_RDONLY | O_DIRECTORY);
	uint64_t rng = (seed ^ (base << 20)) * 0x2545F4914F6CDD1DULL + 1;
	uint64_t deadline = now_ns() + (uint64_t)seconds * 1000000000ULL;
	long n[3] = { 0, 0, 0 };
	int err = 0;
	uint64_t seq;

	if (exists == NULL || dirfd < 0) {
		perror(dir);
		return 1;
	}
	size_uniform = mode == MODE_OVERWRITE;
	/* Continuing on records a previous run left: delete only what exists. */
	for (unsigned k = 0; k < keys; k++) {
		struct stat sb;

		snprintf(name, sizeof(name), "k%04u", k);
		exists[k] = fstatat(dirfd, name, &sb, 0) == 0;
	}
	log_line("H keys %u mode %d seed %" PRIu64 " sizes %u:%u\n", keys, (int)mode, seed, size_min,
	    size_max);
	for (seq = base; seq - base < (uint64_t)max_ops && now_ns() < deadline; seq++) {
		unsigned k;
		char op;
		uint64_t r;

		if (mode == MODE_OVERWRITE && seq - base < keys) {
			k = (unsigned)(seq - base);
			op = 'W';
		} else {
			k = (unsigned)(splitmix(&rng) % keys);
			r = splitmix(&rng) % 100;
			if (mode == MODE_OVERWRITE)
				op = 'W';
			else if (exists[k] && r < 15)
				op = 'D';
			else if (mode == MODE_MIXED && r >= 100 - fsync_pct)
				op = 'F';
			else
				op = 'W';
		}
		snprintf(name, sizeof(name), "k%04u", k);
		log_line("B %" PRIu64 " %c k%04u %" PRIu64 "\n", seq, op, k, seq);
		if (op == 'D')
			err = unlinkat(dirfd, name, 0) == 0 ? 0 : errno;
		else
			err = do_write(dirfd, name, k, seq, op == 'F', &rng, buf);
		if (err != 0) {
			log_line("E %" PRIu64 " %c k%04u %" PRIu64 " %d\n", seq, op, k, seq, err);
			fprintf(stderr, "crash_writer: op %" PRIu64 " %c k%04u: %s\n", seq, op, k,
			    strerror(err));
			break;
		}
		log_line("A %" PRIu64 " %c k%04u %" PRIu64 " %" PRIu64 "\n", seq, op, k, seq, now_ns());
		exists[k] = op != 'D';
		n[op == 'F' ? 0 : op == 'W' ? 1 : 2]++;
	}
	fsync(log_fd);
	close(log_fd);
	printf("acked %ld (F %ld, W %ld, D %ld)%s%s\n", n[0] + n[1] + n[2], n[0], n[1], n[2],
	    err ? ", stopped by: " : "", err ? strerror(err) : "");
	free(exists);
	close(dirfd);
	return err ? 2 : 0;
usage:
	fprintf(stderr, "usage: crash_writer write [-m mixed|plain|overwrite] [-f FSYNC_PCT] [-k KEYS] "
	    "[-n OPS] [-d SECONDS] [-z MIN:MAX] [-b FIRST_VERSION] DIR SEED LOG\n");
	return 1;
}

/* ---- verify -------------------------------------------------------------------- */

struct op {
	uint64_t seq, t_ns;
	unsigned key;
	char op;
	bool acked;
};

/* Up to a few allowed states per key, grown as needed. */
struct allowed {
	int64_t *st;
	unsigned n, cap;
	int64_t cur;         /* the writer's view, replaying the log */
	int64_t durable;     /* the state at the durable point */
	int last_acked;      /* index of the last acknowledged op on the key, or -1 */
};

static int verify_bad;

static void problem(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void
problem(const char *fmt, ...)
{
	va_list ap;

	fputs("crash_writer verify: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	verify_bad++;
}

static void
allow(struct allowed *a, int64_t st)
{
	for (unsigned i = 0; i < a->n; i++)
		if (a->st[i] == st)
			return;
	if (a->n == a->cap) {
		a->cap = a->cap ? a->cap * 2 : 4;
		a->st = realloc(a->st, a->cap * sizeof(*a->st));
		if (a->st == NULL) {
			perror("realloc");
			exit(1);
		}
	}
	a->st[a->n++] = st;
}

static const char *
state_text(int64_t st, char *buf, size_t len)
{
	if (st == ST_ABSENT)
		snprintf(buf, len, "absent");
	else if (st == ST_EMPTY)
		snprintf(buf, len, "empty");
	else
		snprintf(buf, len, "v%" PRId64, st);
	return buf;
}

/* Read the record of key k: its state; a record that cannot be read or is
 * not a whole version is reported and gives ST_BAD with *ok false. */
static int64_t
read_state(const char *dir, unsigned k, bool *ok)
{
	static char got[MAX_CONTENT + 2], want[MAX_CONTENT];
	char path[4096];
	size_t len = 0;
	int fd;

	*ok = true;
	snprintf(path, sizeof(path), "%s/k%04u", dir, k);
	fd = open(path, O_RDONLY);
	if (fd < 0) {
		if (errno == ENOENT)
			return ST_ABSENT;
		problem("k%04u: open: %s", k, strerror(errno));
		*ok = false;
		return ST_BAD;
	}
	for (;;) {
		ssize_t n = read(fd, got + len, sizeof(got) - len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			problem("k%04u: read at %zu: %s", k, len, strerror(errno));
			close(fd);
			*ok = false;
			return ST_BAD;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == sizeof(got))
			break;
	}
	close(fd);
	if (len == 0)
		return ST_EMPTY;

	unsigned hk;
	uint64_t hv;
	size_t hlen;
	if (sscanf(got, "k%u v%" SCNu64 " n%zu\n", &hk, &hv, &hlen) != 3 ||
	    hv == 0) {
		problem("k%04u: %zu bytes that start with no version header (torn or foreign)", k, len);
		*ok = false;
		return ST_BAD;
	}
	if (hk != k) {
		problem("k%04u: holds the content of another key, k%04u version %" PRIu64, k, hk, hv);
		*ok = false;
		return ST_BAD;
	}
	size_t wlen = content_make(k, hv, want);
	if (len != wlen || hlen != wlen) {
		problem("k%04u: version %" PRIu64 " is %zu bytes long, read %zu (torn)", k, hv, wlen, len);
		*ok = false;
		return ST_BAD;
	}
	if (memcmp(got, want, len) != 0) {
		size_t i = 0;

		while (i < len && got[i] == want[i])
			i++;
		problem("k%04u: version %" PRIu64 " differs from what was written at byte %zu of %zu "
		    "(torn or mixed)", k, hv, i, len);
		*ok = false;
		return ST_BAD;
	}
	return (int64_t)hv;
}

/* Start from the states an earlier verify wrote (-o): what a restart found
 * on storage, durable by definition; keys not listed are absent. */
static int
read_states(const char *path, struct allowed *al, unsigned keys)
{
	FILE *f = fopen(path, "r");
	char line[128], st[32];
	unsigned k;

	if (f == NULL) {
		perror(path);
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "k%u %31s", &k, st) != 2 || k >= keys ||
		    (strcmp(st, "empty") != 0 && st[0] != 'v')) {
			fprintf(stderr, "crash_writer verify: bad state line in %s: %s", path, line);
			fclose(f);
			return -1;
		}
		al[k].cur = strcmp(st, "empty") == 0 ? ST_EMPTY : (int64_t)strtoull(st + 1, NULL, 10);
	}
	fclose(f);
	return 0;
}

static int
cmd_verify(int argc, char **argv)
{
	bool all = false;
	uint64_t kill_ns = 0, window_ms = 0;
	const char *state_out = NULL, *initial = NULL;
	int opt;

	while ((opt = getopt(argc, argv, "at:w:o:i:")) != -1) {
		switch (opt) {
		case 'a':
			all = true;
			break;
		case 't':
			kill_ns = strtoull(optarg, NULL, 10);
			break;
		case 'w':
			window_ms = strtoull(optarg, NULL, 10);
			break;
		case 'o':
			state_out = optarg;
			break;
		case 'i':
			initial = optarg;
			break;
		default:
			goto usage;
		}
	}
	if (argc - optind != 2)
		goto usage;
	const char *dir = argv[optind];
	FILE *lf = fopen(argv[optind + 1], "r");
	if (lf == NULL) {
		perror(argv[optind + 1]);
		return 1;
	}

	/* Parse the log. */
	char line[512];
	unsigned keys = 0;
	struct op *ops = NULL;
	size_t n_ops = 0, cap = 0;
	int mode = -1;
	while (fgets(line, sizeof(line), lf) != NULL) {
		char kind, op;
		uint64_t seq, ver, x = 0;
		unsigned k;

		if (line[0] == 'H') {
			if (sscanf(line, "H keys %u mode %d seed %*u sizes %u:%u", &keys, &mode, &size_min,
			    &size_max) != 4) {
				fprintf(stderr, "crash_writer verify: bad log header: %s", line);
				return 1;
			}
			size_uniform = mode == MODE_OVERWRITE;
			continue;
		}
		int f = sscanf(line, "%c %" SCNu64 " %c k%u %" SCNu64 " %" SCNu64, &kind, &seq, &op, &k,
		    &ver, &x);
		if (f < 5 || k >= keys || ver != seq) {
			fprintf(stderr, "crash_writer verify: bad log line: %s", line);
			return 1;
		}
		if (kind == 'B') {
			if (n_ops == cap) {
				cap = cap ? cap * 2 : 1024;
				ops = realloc(ops, cap * sizeof(*ops));
				if (ops == NULL)
					return 1;
			}
			ops[n_ops++] = (struct op){ .seq = seq, .key = k, .op = op };
		} else if (kind == 'A' && n_ops > 0 && ops[n_ops - 1].seq == seq) {
			ops[n_ops - 1].acked = true;
			ops[n_ops - 1].t_ns = x;
		} else if (kind != 'E') {
			fprintf(stderr, "crash_writer verify: log out of order: %s", line);
			return 1;
		}
	}
	fclose(lf);
	if (keys == 0) {
		fprintf(stderr, "crash_writer verify: no header in the log\n");
		return 1;
	}
	for (size_t i = 0; i + 1 < n_ops; i++) {
		if (!ops[i].acked) {
			fprintf(stderr, "crash_writer verify: op %" PRIu64 " not acknowledged but not last\n",
			    ops[i].seq);
			return 1;
		}
	}

	/* The durable point: ops [0, durable] are on storage for sure. */
	long durable = -1, by_fsync = -1, by_time = -1, n_acked = 0;
	for (size_t i = 0; i < n_ops; i++) {
		if (!ops[i].acked)
			continue;
		n_acked++;
		if (all)
			durable = (long)i;
		if (ops[i].op == 'F')
			by_fsync = (long)i;
		if (kill_ns && ops[i].t_ns + window_ms * 1000000ULL <= kill_ns)
			by_time = (long)i;
	}
	if (by_fsync > durable)
		durable = by_fsync;
	if (by_time > durable)
		durable = by_time;

	struct allowed *al = calloc(keys, sizeof(*al));
	if (al == NULL)
		return 1;
	for (unsigned k = 0; k < keys; k++) {
		al[k].cur = ST_ABSENT;
		al[k].last_acked = -1;
	}
	if (initial != NULL && read_states(initial, al, keys) != 0)
		return 1;
	for (unsigned k = 0; k < keys; k++)
		al[k].durable = al[k].cur;
	for (size_t i = 0; i < n_ops; i++) {
		struct allowed *a = &al[ops[i].key];
		bool after = (long)i > durable;

		/* A create stores the record empty before close stores its content. */
		if (after && ops[i].op != 'D' && a->cur == ST_ABSENT)
			allow(a, ST_EMPTY);
		a->cur = ops[i].op == 'D' ? ST_ABSENT : (int64_t)ops[i].seq;
		if (after)
			allow(a, a->cur);
		if ((long)i == durable) {
			for (unsigned k = 0; k < keys; k++)
				al[k].durable = al[k].cur;
		}
		if (ops[i].acked)
			a->last_acked = (int)i;
	}
	for (unsigned k = 0; k < keys; k++)
		allow(&al[k], al[k].durable);

	/* Judge what is stored. */
	FILE *so = NULL;
	if (state_out != NULL && (so = fopen(state_out, "w")) == NULL) {
		perror(state_out);
		return 1;
	}
	unsigned present = 0, latest = 0, lost = 0;
	double lost_max_s = -1;     /* the oldest acknowledgement not found, before the kill */
	signed char *seen = calloc(keys, 1);
	int64_t *found = calloc(keys, sizeof(*found));
	if (seen == NULL || found == NULL)
		return 1;
	for (unsigned k = 0; k < keys; k++) {
		struct allowed *a = &al[k];
		bool ok, fits = false;
		int64_t st = read_state(dir, k, &ok);
		char b1[32], b2[32];

		found[k] = st;
		if (st != ST_ABSENT && st != ST_BAD) {
			present++;
			if (so != NULL)
				fprintf(so, "k%04u %s\n", k, state_text(st, b1, sizeof(b1)));
		}
		if (st == ST_BAD)
			continue;
		if (st == a->cur) {
			latest++;
		} else if (a->last_acked >= 0) {
			lost++;
			/* The oldest acknowledged state of the key not found. */
			for (int i = a->last_acked; kill_ns && i >= 0; i--) {
				const struct op *o = &ops[i];
				int64_t ost = o->op == 'D' ? ST_ABSENT : (int64_t)o->seq;

				if (o->key != k || !o->acked)
					continue;
				if (ost == st)
					break;
				double age = ((double)kill_ns - (double)o->t_ns) / 1e9;
				if (age > lost_max_s)
					lost_max_s = age;
			}
		}
		if (!ok)
			continue;
		for (unsigned i = 0; i < a->n; i++)
			fits |= a->st[i] == st;
		if (fits)
			continue;
		/* Say what kind of wrong it is, with the op that should have won. */
		const char *what = "a state it never had after the durable point";
		if (st == ST_ABSENT)
			what = "durable record lost";
		else if (a->durable == ST_ABSENT && st > 0)
			what = "deleted (or never durably written) record came back";
		else if (st > 0 && st < a->durable)
			what = "rolled back to an older version";
		char lastop[160] = "none";
		if (a->last_acked >= 0) {
			const struct op *o = &ops[a->last_acked];
			int n = snprintf(lastop, sizeof(lastop), "op %" PRIu64 " %c", o->seq, o->op);
			if (kill_ns)
				snprintf(lastop + n, sizeof(lastop) - (size_t)n, ", acked %.3f s before the kill",
				    ((double)kill_ns - (double)o->t_ns) / 1e9);
		}
		problem("k%04u: %s: found %s, durable state %s (%u allowed), last acked: %s", k, what,
		    state_text(st, b1, sizeof(b1)), state_text(a->durable, b2, sizeof(b2)), a->n, lastop);
	}
	if (so != NULL)
		fclose(so);

	/* The listing shows exactly the records present. */
	DIR *d = opendir(dir);
	if (d == NULL) {
		problem("opendir %s: %s", dir, strerror(errno));
	} else {
		struct dirent *de;
		errno = 0;
		while ((de = readdir(d)) != NULL) {
			unsigned k;
			char extra;

			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			if (sscanf(de->d_name, "k%u%c", &k, &extra) != 1 || k >= keys) {
				problem("listing shows a stranger: '%s'", de->d_name);
				continue;
			}
			if (seen[k]++)
				problem("listing shows k%04u twice", k);
			if (found[k] == ST_ABSENT)
				problem("listing shows k%04u, which does not open (ENOENT)", k);
		}
		if (errno != 0)
			problem("readdir %s: %s", dir, strerror(errno));
		closedir(d);
		for (unsigned k = 0; k < keys; k++)
			if (found[k] != ST_ABSENT && !seen[k])
				problem("k%04u opens but is not listed", k);
	}

	char lost_text[64] = "";
	if (lost_max_s >= 0)
		snprintf(lost_text, sizeof(lost_text), " (oldest lost acknowledgement %.3f s before the kill)",
		    lost_max_s);
	printf("ops %zu acked %ld, durable point op %ld (fsync %ld, time %ld, all %s); in flight: %s; "
	    "keys %u, present %u, at the latest acked state %u, older (allowed or not) %u%s; problems %d\n",
	    n_ops, n_acked, durable >= 0 ? (long)ops[durable].seq : 0L,
	    by_fsync >= 0 ? (long)ops[by_fsync].seq : 0L, by_time >= 0 ? (long)ops[by_time].seq : 0L,
	    all ? "yes" : "no", n_ops && !ops[n_ops - 1].acked ? "yes" : "none", keys, present, latest,
	    lost, lost_text, verify_bad);
	for (unsigned k = 0; k < keys; k++)
		free(al[k].st);
	free(al);
	free(ops);
	free(seen);
	free(found);
	return verify_bad ? 1 : 0;
usage:
	fprintf(stderr, "usage: crash_writer verify [-a] [-t KILL_NS -w WINDOW_MS] [-i STATE] [-o STATE] "
	    "DIR LOG\n");
	return 1;
}

int
main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "write") == 0)
		return cmd_write(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "verify") == 0)
		return cmd_verify(argc - 1, argv + 1);
	fprintf(stderr, "usage: crash_writer write|verify ...\n");
	return 1;
}
