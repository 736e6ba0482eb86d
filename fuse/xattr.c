/*
 * xattr.c - bins and record metadata as extended attributes (see xattr.h).
 *
 * Design: the metadata names end in more than 15 characters after "user."
 * or contain a '.', so they can never be bin names.  listxattr lists the
 * bins only; the metadata is read by name (getfattr -n user.recfs.ttl), as
 * Ceph's virtual xattrs are.  So cp -a, rsync -aX and tar --xattrs copy the
 * bins and nothing else: a copy out of the mount carries no stale
 * generation or digest, and a second rsync -aX finds nothing to change (when
 * they were listed, rsync wrote each one on every run, and every write was
 * a new generation of the record).  Writing a read-only name is still
 * accepted and ignored (no record write), for a tree copied out by an older
 * recfs whose files carry them.  Names outside user.* are answered from
 * memory.  Bin names starting with '/' are the transaction layer's own (a
 * large file's chunk map, docs/storage-format.md): never listed, read or
 * removed as xattrs, and writing one is EPERM.
 *
 * A size probe (getxattr or listxattr with size 0, which getfattr, cp -a
 * and rsync -X send before asking for the value) keeps what it read on the
 * inode for the same process's next call of the same name: getfattr costs
 * one record read, not two (each a network round trip when another node
 * masters the record).  The kept value is taken once, by that process,
 * within fuse.attr-timeout (none when it is 0), and dropped by any xattr
 * change made through this node; another node's change within that window
 * is seen at the next probe, as attributes the kernel caches are seen when
 * they time out.  user.recfs.* names are never kept (generation and
 * last_update move with every write).
 *
 * Rejected: listing the metadata (the rsync cost above; getfattr -d showing
 * it is not worth a rewrite of every record per backup run); EPERM on
 * writes to read-only names (rsync -aX exits 23).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "base/clock.h"
#include "handle.h"
#include "xattr.h"

#define XATTR_USER "user."
#define XATTR_USER_LEN 5
#define XATTR_META "recfs."
#define XATTR_META_LEN 6

static bool
is_user(const char *name)
{
	return strncmp(name, XATTR_USER, XATTR_USER_LEN) == 0;
}

static bool
is_meta(const char *bin)
{
	return strncmp(bin, XATTR_META, XATTR_META_LEN) == 0;
}

static bool
is_file_bin(const struct inode *ino, const char *bin, size_t len)
{
	const char *fb = namespace_config(ino->ns)->file_bin;

	return strlen(fb) == len && memcmp(fb, bin, len) == 0;
}

/* Reply with a value, honouring size probing (size 0 asks for the length). */
static int
reply_value(fuse_req_t req, const void *value, size_t len, size_t size)
{
	if (size == 0) {
		fuse_reply_xattr(req, len);
		return 0;
	}
	if (size < len)
		return -ERANGE;
	fuse_reply_buf(req, value, len);
	return 0;
}

/* Longest metadata text: user.recfs.replicas, 32 ids of 16 hex digits and commas. */
#define META_TEXT_MAX (TXN_REPLICAS_MAX * 17)

/* user.recfs.master and user.recfs.replicas: node ids as .info/cluster shows them. */
static int
placement_text(struct namespace *ns, const char *name, uint32_t pid, char *buf, size_t size)
{
	struct txn_partition p;
	size_t off = 0;
	int rc = txn_partition_get(ns, pid, &p);

	if (rc != 0)
		return rc == -ENOENT ? -ENODATA : rc;
	if (strcmp(name, "master") == 0) {
		snprintf(buf, size, "%016" PRIx64, p.master);
		return 0;
	}
	buf[0] = '\0';
	for (unsigned i = 0; i < p.n_replicas && off < size; i++)
		off += (size_t)snprintf(buf + off, size - off, "%s%016" PRIx64, i ? "," : "", p.replicas[i]);
	return 0;
}

/* Text of user.recfs.<name>; -ENODATA if no such metadata name. */
static int
meta_text(struct namespace *ns, const char *name, const struct record_attr *a, char *buf, size_t size)
{
	if (strcmp(name, "master") == 0 || strcmp(name, "replicas") == 0) {
		return placement_text(ns, name, a->partition, buf, size);
	} else if (strcmp(name, "generation") == 0) {
		snprintf(buf, size, "%u", (unsigned)a->generation);
	} else if (strcmp(name, "ttl") == 0) {
		uint32_t now = clock_epoch_s();

		if (a->void_time == 0)
			snprintf(buf, size, "-1");
		else
			snprintf(buf, size, "%" PRIu32, a->void_time > now ? a->void_time - now : 0);
	} else if (strcmp(name, "void_time") == 0) {
		/* Unix seconds (0 = never), so date -d @N reads it. */
		snprintf(buf, size, "%" PRIu64, a->void_time ? (uint64_t)(a->void_time + RECFS_EPOCH) : (uint64_t)0);
	} else if (strcmp(name, "last_update") == 0) {
		/* Unix milliseconds. */
		snprintf(buf, size, "%" PRIu64, (uint64_t)(a->last_update_ms + RECFS_EPOCH * 1000));
	} else if (strcmp(name, "digest") == 0) {
		char hex[2 * DIGEST_SIZE + 1];

		digest_to_hex(&a->digest, hex);
		snprintf(buf, size, "%s", hex);
	} else if (strcmp(name, "partition") == 0) {
		snprintf(buf, size, "%" PRIu32, a->partition);
	} else {
		return -ENODATA;
	}
	return 0;
}

/* What a size probe read (inode->xprobe): one allocation. */
struct xattr_probe {
	pid_t pid;
	int64_t until_ns;             /* wall clock (recfsd_now_ns) */
	size_t name_len;              /* 0: a listxattr */
	size_t len;
	char *value;                  /* inside this allocation, after name */
	char name[];
};

/* Keep a probe's answer for pid's next call of name.  Inode lock held. */
static void
probe_keep_locked(struct inode *ino, pid_t pid, const char *name, size_t name_len,
    const void *value, size_t len)
{
	struct xattr_probe *p;

	free(ino->xprobe);
	ino->xprobe = NULL;
	if (recfsd.attr_timeout <= 0 || ino->unlinked)
		return;
	p = malloc(sizeof(*p) + name_len + len + 1);
	if (p == NULL)
		return;  /* the next call reads the record again */
	p->pid = pid;
	p->until_ns = recfsd_now_ns() + (int64_t)(recfsd.attr_timeout * 1e9);
	p->name_len = name_len;
	p->len = len;
	memcpy(p->name, name, name_len);
	p->value = p->name + name_len;
	if (len > 0)
		memcpy(p->value, value, len);
	ino->xprobe = p;
}

/* The kept answer for pid's call of name, taken (the caller frees it), or NULL. */
static struct xattr_probe *
probe_take(struct inode *ino, pid_t pid, const char *name, size_t name_len)
{
	struct xattr_probe *p;

	bool gone;

	pthread_mutex_lock(&ino->lock);
	p = ino->xprobe;
	gone = ino->unlinked;
	if (p != NULL && (p->pid != pid || p->name_len != name_len ||
	    memcmp(p->name, name, name_len) != 0))
		p = NULL;  /* another caller's: left for it */
	else
		ino->xprobe = NULL;
	pthread_mutex_unlock(&ino->lock);
	if (p != NULL && (gone || recfsd_now_ns() > p->until_ns)) {
		free(p);
		p = NULL;
	}
	return p;
}

static void
probe_keep(struct inode *ino, pid_t pid, const char *name, size_t name_len,
    const void *value, size_t len)
{
	pthread_mutex_lock(&ino->lock);
	probe_keep_locked(ino, pid, name, name_len, value, len);
	pthread_mutex_unlock(&ino->lock);
}

/* Read the whole record (bins) under the inode lock. */
static int
record_read(struct inode *ino, struct txn_record *r)
{
	struct txn_key k;
	int rc;

	pthread_mutex_lock(&ino->lock);
	if (ino->unlinked) {
		rc = -ESTALE;  /* replaced: the kernel looks the name up again */
	} else {
		inode_key(ino, &k);
		rc = txn_read(ino->ns, &k, r);
	}
	pthread_mutex_unlock(&ino->lock);
	return rc;
}

/* Records and directories inside sets carry bins (sets and the rest: none). */
static bool
has_bins(const struct inode *ino)
{
	return ino->kind == INODE_RECORD || ino->kind == INODE_TDIR;
}

int
xattr_get(fuse_req_t req, struct inode *ino, const char *name, size_t size)
{
	const char *bin = name + XATTR_USER_LEN;
	size_t len;
	char text[META_TEXT_MAX + 1];
	pid_t pid = fuse_req_ctx(req)->pid;
	struct xattr_probe *p;
	struct txn_record r;
	const struct bin *b;
	int rc;

	/* security.capability comes before every write(2): no engine work. */
	if (!is_user(name) || !has_bins(ino))
		return -ENODATA;
	if (is_meta(bin)) {
		struct record_attr a;
		struct txn_key k;

		pthread_mutex_lock(&ino->lock);
		if (ino->kind == INODE_RECORD) {
			rc = handle_attr_locked(ino, &a);
		} else {
			inode_key(ino, &k);
			rc = ino->unlinked ? -ESTALE : txn_stat(ino->ns, &k, &a);
		}
		pthread_mutex_unlock(&ino->lock);
		if (rc == 0)
			rc = meta_text(ino->ns, bin + XATTR_META_LEN, &a, text, sizeof(text));
		return rc != 0 ? rc : reply_value(req, text, strlen(text), size);
	}
	len = strlen(bin);
	if (len > RECORD_BIN_NAME_MAX)
		return -ERANGE;
	if (len == 0 || is_file_bin(ino, bin, len) || bin[0] == '/')
		return -ENODATA;  /* '/': an internal bin (a large file's chunk map) */
	if (size > 0 && (p = probe_take(ino, pid, bin, len)) != NULL) {
		rc = reply_value(req, p->value, p->len, size);
		free(p);
		return rc;
	}
	rc = record_read(ino, &r);
	if (rc != 0)
		return rc == -ENOENT ? -ENODATA : rc;
	b = record_bin_find(&r.rec, bin, len);
	if (b == NULL) {
		rc = -ENODATA;
	} else {
		const void *v = b->v.bytes.data;
		size_t vlen = b->v.bytes.len;

		if (b->type == BIN_INTEGER) {
			snprintf(text, sizeof(text), "%" PRId64, b->v.integer);
			v = text;
			vlen = strlen(text);
		} else if (b->type == BIN_DOUBLE) {
			snprintf(text, sizeof(text), "%.17g", b->v.dbl);
			v = text;
			vlen = strlen(text);
		}
		if (size == 0)
			probe_keep(ino, pid, bin, len, v, vlen);
		rc = reply_value(req, v, vlen, size);
	}
	txn_record_release(&r);
	return rc;
}

static int
list_add(char **p, size_t *len, size_t *cap, const char *a, const char *b, size_t b_len)
{
	size_t n = strlen(a) + b_len + 1;

	if (*len + n > *cap) {
		size_t c = *cap ? *cap * 2 : 512;
		char *q;

		while (c < *len + n)
			c *= 2;
		q = realloc(*p, c);
		if (q == NULL)
			return -ENOMEM;
		*p = q;
		*cap = c;
	}
	memcpy(*p + *len, a, strlen(a));
	memcpy(*p + *len + strlen(a), b, b_len);
	(*p)[*len + n - 1] = '\0';
	*len += n;
	return 0;
}

int
xattr_list(fuse_req_t req, struct inode *ino, size_t size)
{
	pid_t pid = fuse_req_ctx(req)->pid;
	struct xattr_probe *p;
	struct txn_record r;
	char *list = NULL;
	size_t len = 0, cap = 0;
	bool have_record = false;
	int rc = 0;

	if (!has_bins(ino))
		return reply_value(req, NULL, 0, size);
	if (size > 0 && (p = probe_take(ino, pid, "", 0)) != NULL) {
		rc = reply_value(req, p->value, p->len, size);
		free(p);
		return rc;
	}
	rc = record_read(ino, &r);
	if (rc == -ESTALE) {
		/* Unlinked: an open handle keeps it (metadata only), or look again. */
		pthread_mutex_lock(&ino->lock);
		if (ino->orphan != NULL)
			rc = 0;
		pthread_mutex_unlock(&ino->lock);
	}
	if (rc == 0 && !inode_unlinked(ino))
		have_record = true;
	else if (rc != 0 && rc != -ENOENT)
		return rc;
	rc = 0;
	for (int i = 0; have_record && rc == 0 && i < r.rec.n_bins; i++) {
		const struct bin *b = &r.rec.bins[i];

		/* Internal bins ('/': a large file's chunk map) are no xattrs. */
		if (b != r.file_bin && b->name[0] != '/')
			rc = list_add(&list, &len, &cap, XATTR_USER, b->name, b->name_len);
	}
	/* The user.recfs.* metadata is not listed (see the top of this file). */
	if (rc == 0 && size == 0 && have_record)
		probe_keep(ino, pid, "", 0, list, len);
	if (rc == 0)
		rc = reply_value(req, list, len, size);
	if (have_record)
		txn_record_release(&r);
	free(list);
	return rc;
}

/* user.recfs.ttl: "N" (N > 0 seconds), "0" (namespace default), "-1" (never). */
static int
ttl_parse(const char *value, size_t size, int32_t *ttl)
{
	char buf[24], *end;
	long long v;

	while (size > 0 && (value[size - 1] == '\n' || value[size - 1] == '\0'))
		size--;
	if (size == 0 || size >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, value, size);
	buf[size] = '\0';
	errno = 0;
	v = strtoll(buf, &end, 10);
	if (errno != 0 || *end != '\0' || v < -1 || v > INT32_MAX)
		return -EINVAL;
	*ttl = v == -1 ? RECORD_TTL_NEVER : v == 0 ? RECORD_TTL_DEFAULT : (int32_t)v;
	return 0;
}

/* One write of w to the record of ino (inode lock held across it). */
static int
record_update(struct inode *ino, struct txn_write *w)
{
	struct txn_key k;
	struct record_attr a;
	int rc;

	w->flags |= TXN_UPDATE_ONLY;
	pthread_mutex_lock(&ino->lock);
	free(ino->xprobe);  /* bins change: nothing kept stays */
	ino->xprobe = NULL;
	if (ino->unlinked) {
		rc = -ESTALE;  /* replaced: the kernel looks the name up again */
	} else {
		inode_key(ino, &k);
		rc = txn_write(ino->ns, &k, w, &a);
	}
	pthread_mutex_unlock(&ino->lock);
	return rc;
}

int
xattr_set(struct inode *ino, const char *name, const char *value, size_t size, int flags)
{
	const char *bin = name + XATTR_USER_LEN;
	struct txn_write w = { 0 };
	struct txn_bin_op op = { 0 };
	size_t len;
	int rc;

	if (!is_user(name))
		return -EOPNOTSUPP;
	if (ino->kind == INODE_INFO_FILE || inode_is_info(ino))
		return -EACCES;
	if (!has_bins(ino))
		return -EOPNOTSUPP;  /* sets and the fixed directories have no bins */
	if (is_meta(bin)) {
		if (strcmp(bin + XATTR_META_LEN, "ttl") != 0)
			return 0;  /* read-only: accepted and ignored (cp -a, rsync -X) */
		rc = ttl_parse(value, size, &w.ttl);
		if (rc != 0)
			return rc;
		w.set_ttl = true;
		return record_update(ino, &w);
	}
	len = strlen(bin);
	if (len > RECORD_BIN_NAME_MAX)
		return -ERANGE;
	if (len == 0 || is_file_bin(ino, bin, len))
		return -EINVAL;  /* the file bin is the content, not an attribute */
	if (bin[0] == '/')
		return -EPERM;   /* internal bins (docs/storage-format.md) */
	op.name = bin;
	op.name_len = len;
	op.flags = (flags & XATTR_CREATE ? TXN_BIN_CREATE : 0) |
	    (flags & XATTR_REPLACE ? TXN_BIN_REPLACE : 0);
	op.type = BIN_BLOB;
	op.data = value;
	op.len = (uint32_t)size;
	w.bins = &op;
	w.n_bins = 1;
	return record_update(ino, &w);
}

int
xattr_remove(struct inode *ino, const char *name)
{
	const char *bin = name + XATTR_USER_LEN;
	struct txn_write w = { 0 };
	struct txn_bin_op op = { 0 };
	size_t len;

	if (!is_user(name))
		return -EOPNOTSUPP;
	if (inode_is_info(ino))
		return -EACCES;
	if (!has_bins(ino))
		return -ENODATA;
	if (is_meta(bin))
		return 0;  /* metadata cannot go; rsync -X removing it must not fail */
	len = strlen(bin);
	if (len > RECORD_BIN_NAME_MAX)
		return -ERANGE;
	if (len == 0 || is_file_bin(ino, bin, len) || bin[0] == '/')
		return -ENODATA;
	op.name = bin;
	op.name_len = len;
	op.flags = TXN_BIN_REMOVE;
	w.bins = &op;
	w.n_bins = 1;
	return record_update(ino, &w);
}
