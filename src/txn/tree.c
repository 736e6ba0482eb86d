/*
 * tree.c - directories and symbolic links inside sets (see txn.h, "the
 * tree", and docs/architecture.md, "The tree").
 *
 * Everything here is built from the public record transactions (stat,
 * read, write, delete, rename, list), so it is routed, proxied, replicated
 * and migrated like any other record, on one node and in a cluster alike.
 *
 * A directory's entries are keyed by its id, not its path: a lookup of one
 * path component is one record lookup, and renaming a directory rewrites
 * its own record only (the id travels in its content).  Listing a
 * directory uses the directory index of each node (index.h), so it costs
 * the directory's entries, not its set's.
 *
 * What is not atomic (there are no transactions over several records):
 * an entry created in a directory while another client removes it (rmdir
 * checks emptiness, then deletes) is left without a parent; a rename of a
 * directory into its own subtree made from two mounts at once is not
 * refused (within one mount the kernel refuses it, EINVAL).  Both leave
 * records that no path reaches; they stay counted in the set.
 *
 * Rejected: keys by full path (a rename of a directory would rewrite its
 * whole subtree); the entries' names kept in the directory record (every
 * create would rewrite one ever-growing record, a hot spot in a cluster).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "../base/bytes.h"
#include "txn_i.h"

/* 16 lowercase hex digits of a non-zero id, or false. */
static bool
parse_id(const char *s, size_t len, uint64_t *id)
{
	return len == 16 && hex_get(s, 16, id) && *id != 0;
}

bool
tree_key_valid(const char *key, size_t len)
{
	uint64_t id;

	return len > TXN_DIR_KEY_PREFIX && key[0] == '/' && key[1] == 'd' &&
	    key[TXN_DIR_KEY_PREFIX - 1] == '/' && parse_id(key + 2, 16, &id) &&
	    record_key_check(key + TXN_DIR_KEY_PREFIX, len - TXN_DIR_KEY_PREFIX) == 0;
}

int
txn_tree_key(const char *set, size_t set_len, uint64_t dir, const char *name, size_t len,
    char *buf, struct txn_key *k)
{
	int rc = record_key_check(name, len);

	if (rc != 0)
		return rc;
	k->set = set;
	k->set_len = set_len;
	if (dir == 0) {
		k->key = name;
		k->key_len = len;
		return 0;
	}
	if (set_len == 0)
		return -EINVAL;
	if (len > TXN_DIR_NAME_MAX)
		return -ENAMETOOLONG;
	snprintf(buf, TXN_DIR_KEY_PREFIX + 1, "/d%016llx/", (unsigned long long)dir);
	memcpy(buf + TXN_DIR_KEY_PREFIX, name, len);
	buf[TXN_DIR_KEY_PREFIX + len] = '\0';
	k->key = buf;
	k->key_len = TXN_DIR_KEY_PREFIX + len;
	return 0;
}

static bool
is_type(const struct record_attr *a, uint32_t type)
{
	return a->has_meta && (a->mode & RECORD_MODE_TYPE_MASK) == type;
}

/* A new record of a type: only the metadata of w, the content given. */
static int
typed_create(struct namespace *ns, const struct txn_key *k, uint32_t type, const void *content,
    size_t len, const struct txn_write *w, struct record_attr *out)
{
	struct txn_write t = {
		.flags = TXN_CREATE_ONLY,
		.set_file = true, .file_data = content, .file_len = len,
		.set_mode = true, .mode = type | (w->set_mode ? w->mode & RECORD_MODE_PERM_MASK : 0755),
		.set_uid = w->set_uid, .uid = w->uid,
		.set_gid = w->set_gid, .gid = w->gid,
		.set_mtime = w->set_mtime, .mtime_ns = w->mtime_ns,
	};

	return txn_write(ns, k, &t, out);
}

int
txn_dir_create(struct namespace *ns, const struct txn_key *k, const struct txn_write *w,
    uint64_t *id, struct record_attr *out)
{
	char hex[17];
	uint64_t v = 0;
	int rc;

	if (k->set_len == 0)
		return -EPERM;  /* the namespace's directories are its sets */
	while (v == 0) {
		if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
			return -errno ? -errno : -EIO;
	}
	snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)v);
	rc = typed_create(ns, k, RECORD_MODE_DIR, hex, 16, w, out);
	if (rc == 0)
		*id = v;
	return rc;
}

int
txn_dir_open(struct namespace *ns, const struct txn_key *k, uint64_t *id, struct record_attr *out)
{
	struct txn_record r;
	int rc = txn_read(ns, k, &r);

	if (rc != 0)
		return rc;
	if (!is_type(&r.attr, RECORD_MODE_DIR)) {
		rc = -ENOTDIR;
	} else if (r.file_bin == NULL || r.file_bin->type != BIN_BLOB ||
	    !parse_id((const char *)r.file_bin->v.bytes.data, r.file_bin->v.bytes.len, id)) {
		rc = -EIO;
	} else if (out != NULL) {
		*out = r.attr;
	}
	txn_record_release(&r);
	return rc;
}

int
txn_dir_list(struct namespace *ns, const char *set, size_t set_len, uint64_t dir,
    struct txn_cursor *cur, struct txn_entry *out, size_t max)
{
	char prefix[TXN_DIR_KEY_PREFIX + 1];
	int n, k;

	if (dir == 0)
		return txn_list_in(ns, set, set_len, 0, cur, out, max);
	snprintf(prefix, sizeof(prefix), "/d%016llx/", (unsigned long long)dir);
	/* An empty page reads as the end: go on while a page had only
	 * entries left out (each page moves the cursor). */
	do {
		n = txn_list_in(ns, set, set_len, dir, cur, out, max);
		k = 0;
		/* The transport carries whole keys; callers want names.  An
		 * entry that is not this directory's (a peer's bad answer) is
		 * left out. */
		for (int i = 0; i < n; i++) {
			struct txn_entry *e = &out[i];

			if (!tree_key_valid(e->key, e->key_len) ||
			    memcmp(e->key, prefix, TXN_DIR_KEY_PREFIX) != 0)
				continue;
			e->key_len = (uint16_t)(e->key_len - TXN_DIR_KEY_PREFIX);
			memmove(e->key, e->key + TXN_DIR_KEY_PREFIX, e->key_len + 1u);
			if (k != i)
				out[k] = *e;
			k++;
		}
	} while (n > 0 && k == 0 && !cur->done);
	return n < 0 ? n : k;
}

/* 0 if directory dir of set has no entry on any node, else -ENOTEMPTY. */
static int
dir_empty(struct namespace *ns, const char *set, size_t set_len, uint64_t dir)
{
	struct txn_cursor cur;
	struct txn_entry e;
	int n;

	txn_cursor_init(&cur);
	n = txn_list_in(ns, set, set_len, dir, &cur, &e, 1);
	if (n == -ENOENT)
		return 0;  /* the set is gone: so are its directories' entries */
	return n < 0 ? n : n > 0 ? -ENOTEMPTY : 0;
}

int
txn_dir_remove(struct namespace *ns, const struct txn_key *k)
{
	uint64_t id;
	int rc = txn_dir_open(ns, k, &id, NULL);

	if (rc == 0)
		rc = dir_empty(ns, k->set, k->set_len, id);
	if (rc == 0)
		rc = txn_delete(ns, k);
	return rc;
}

int
txn_tree_rename(struct namespace *ns, const struct txn_key *from, const struct txn_key *to,
    unsigned flags)
{
	struct record_attr fa, ta;
	int rc = txn_stat(ns, from, &fa);

	if (rc != 0)
		return rc;
	if (is_type(&fa, RECORD_MODE_DIR) &&
	    (from->set_len != to->set_len || memcmp(from->set, to->set, from->set_len) != 0))
		return -EXDEV;  /* its entries are keyed in its set */
	rc = txn_stat(ns, to, &ta);
	if (rc == 0 && !(flags & TXN_RENAME_NOREPLACE)) {
		if (is_type(&fa, RECORD_MODE_DIR) && !is_type(&ta, RECORD_MODE_DIR))
			return -ENOTDIR;
		if (!is_type(&fa, RECORD_MODE_DIR) && is_type(&ta, RECORD_MODE_DIR))
			return -EISDIR;
		if (is_type(&ta, RECORD_MODE_DIR)) {
			uint64_t id;

			rc = txn_dir_open(ns, to, &id, NULL);
			if (rc == 0)
				rc = dir_empty(ns, to->set, to->set_len, id);
			if (rc != 0)
				return rc;
		}
	} else if (rc != 0 && rc != -ENOENT) {
		return rc;
	}
	return txn_rename(ns, from, to, flags);
}

int
txn_link_create(struct namespace *ns, const struct txn_key *k, const char *target, size_t len,
    const struct txn_write *w, struct record_attr *out)
{
	struct txn_write t = *w;

	if (len == 0)
		return -ENOENT;  /* symlink(2) with an empty target */
	if (len > TXN_LINK_MAX)
		return -ENAMETOOLONG;
	if (memchr(target, '\0', len) != NULL)
		return -EINVAL;
	t.set_mode = true;
	t.mode = 0777;  /* a link's permission bits are never used */
	return typed_create(ns, k, RECORD_MODE_LINK, target, len, &t, out);
}

int
txn_link_read(struct namespace *ns, const struct txn_key *k, char *buf, size_t cap, size_t *len)
{
	struct txn_record r;
	int rc = txn_read(ns, k, &r);

	if (rc != 0)
		return rc;
	if (!is_type(&r.attr, RECORD_MODE_LINK)) {
		rc = -EINVAL;
	} else if (r.file_bin == NULL || r.file_bin->v.bytes.len > cap) {
		rc = -EIO;
	} else {
		memcpy(buf, r.file_bin->v.bytes.data, r.file_bin->v.bytes.len);
		*len = r.file_bin->v.bytes.len;
	}
	txn_record_release(&r);
	return rc;
}
