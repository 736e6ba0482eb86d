/*
 * ops.c - the fuse_lowlevel_ops callbacks: the mounted tree of recfsd(8)
 * (THE TREE) over the transaction layer.
 *
 *   /                 namespaces and .info (static)
 *   /<ns>/            sets (directories) and null-set records (files)
 *   /<ns>/<set>/      records
 *   /.info/...        statistics (info.c)
 *
 * Every callback runs on a libfuse worker thread and answers exactly once.
 * Errors from the engine (and our own -errno codes) reach the kernel
 * through reply_err(), the one place that calls fuse_reply_err, via
 * recfs_errno(); data replies are sent where the data is (handle.c, dir.c,
 * xattr.c).  Nothing here touches an inode after replying: the kernel may
 * forget it the moment it has the answer.
 *
 * Why the low-level API: nodes keyed by digest instead of path strings
 * under a global lock, open-unlinked files without .fuse_hidden renames,
 * and streamed readdirplus.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "base/log.h"
#include "dir.h"
#include "handle.h"
#include "info.h"
#include "inode.h"
#include "ops.h"
#include "stats.h"
#include "xattr.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

#define STATFS_BLOCK 4096

/*
 * The one errno reply point: rc is 0, -errno or an engine code.
 * Negative answers a lookup or getxattr is expected to give (ENOENT,
 * ENODATA) are counted apart from errors.
 */
static void
reply_err(fuse_req_t req, int rc)
{
	int e = rc == 0 ? 0 : recfs_errno(rc);

	if (e == ENOENT || e == ENODATA) {
		stats_inc(STAT_fuse_not_found);
	} else if (e != 0) {
		stats_inc(STAT_fuse_errors);
		log_debug("fuse", "request answered %s", recfs_strerror(rc));
	}
	fuse_reply_err(req, e);
}

static struct handle *
handle_of(const struct fuse_file_info *fi)
{
	return (struct handle *)(uintptr_t)fi->fh;
}

static bool
is_dot(const char *name, size_t len)
{
	return (len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.');
}

/*
 * The key of record `name` in directory dir, for operations that create or
 * remove records there; buf (RECORD_KEY_MAX + 1 bytes) holds the key of an
 * entry of a directory inside a set.  Refusals follow recfsd(8), ERRORS:
 * at the root EPERM, in /.info EACCES.
 */
static int
record_key_in(const struct inode *dir, const char *name, size_t len, struct txn_key *k,
    char *buf)
{
	uint64_t id = 0;

	switch (dir->kind) {
	case INODE_NAMESPACE:
		k->set = "";
		k->set_len = 0;
		break;
	case INODE_TDIR:
		id = dir->dir_id;
		/* fall through */
	case INODE_SET:
		if (inode_unlinked(dir))
			return -ENOENT;
		k->set = dir->name;
		k->set_len = dir->set_len;
		break;
	case INODE_ROOT:
		return -EPERM;
	default:
		return inode_is_info(dir) ? -EACCES : -ENOTDIR;
	}
	if (len > RECORD_KEY_MAX)
		return -ENAMETOOLONG;
	if (is_dot(name, len))
		return -EINVAL;
	return txn_tree_key(k->set, k->set_len, id, name, len, buf, k);
}

/*
 * An entry was created, removed or renamed in dir: a directory record gets
 * a new mtime (and ctime), as a set does in the engine.  One more record
 * write; a failure only leaves the times behind (logged at debug).
 */
static void
tdir_touch(struct inode *dir)
{
	struct txn_write w = { .flags = TXN_UPDATE_ONLY, .set_mtime = true };
	struct txn_key k;
	int rc;

	if (dir->kind != INODE_TDIR)
		return;
	w.mtime_ns = recfsd_now_ns();
	pthread_mutex_lock(&dir->lock);
	inode_key(dir, &k);
	rc = inode_unlinked(dir) ? -ENOENT : txn_write(dir->ns, &k, &w, NULL);
	pthread_mutex_unlock(&dir->lock);
	if (rc != 0)
		log_debug("fuse", "directory times not updated: %s", recfs_strerror(rc));
}

/* Reply with an entry we counted a lookup for; undo it if the kernel never got it. */
static void
reply_entry_counted(fuse_req_t req, struct inode *ino, const struct fuse_entry_param *e)
{
	if (fuse_reply_entry(req, e) == -ENOENT)
		inode_forget(ino, 1);
}

/* Entry for a record we have attributes for: count the lookup, reply.
 * id: a directory's id when the caller knows it (0: read from its record). */
static int
reply_record_id(fuse_req_t req, struct namespace *ns, const struct txn_key *k,
    struct record_attr *a, uint64_t id)
{
	struct fuse_entry_param e;
	struct inode *ino;
	int rc;

	/* A directory inside a set: its id is in its record (one read). */
	if (id == 0 && a->has_meta && (a->mode & RECORD_MODE_TYPE_MASK) == RECORD_MODE_DIR) {
		rc = txn_dir_open(ns, k, &id, a);
		if (rc != 0)
			return rc;
	}
	ino = inode_get_tree(ns, a, k->set, k->set_len, k->key, k->key_len, id);
	if (ino == NULL)
		return -ENOMEM;
	pthread_mutex_lock(&ino->lock);
	if (ino->kind == INODE_RECORD)
		handle_attr_adjust_locked(ino, a);
	inode_entry(ino, a, &e);
	pthread_mutex_unlock(&ino->lock);
	reply_entry_counted(req, ino, &e);
	return 0;
}

static int
reply_record(fuse_req_t req, struct namespace *ns, const struct txn_key *k,
    struct record_attr *a)
{
	return reply_record_id(req, ns, k, a, 0);
}

static int
reply_set(fuse_req_t req, struct namespace *ns, const char *name, size_t len)
{
	struct fuse_entry_param e;
	struct record_attr a;
	struct digest d;
	struct inode *ino;
	int rc = txn_set_stat(ns, name, len, &a);

	if (rc != 0)
		return rc;
	inode_set_digest(ns, name, len, &d);
	ino = inode_get(ns, INODE_SET, &d, name, len, "", 0);
	if (ino == NULL)
		return -ENOMEM;
	inode_entry(ino, &a, &e);
	reply_entry_counted(req, ino, &e);
	return 0;
}

/* /.info/sets/<ns>/<set>: a statistics file per existing set. */
static int
lookup_set_info(fuse_req_t req, struct namespace *ns, const char *name, size_t len)
{
	struct fuse_entry_param e;
	struct record_attr a = { 0 };
	struct digest d;
	struct inode *ino;

	if (len > RECORD_SET_MAX || txn_set_exists(ns, name, len) != 0)
		return -ENOENT;
	inode_set_info_digest(ns, name, len, &d);
	ino = inode_get(ns, INODE_INFO_FILE, &d, name, len, "", 0);
	if (ino == NULL)
		return -ENOMEM;
	a.size = info_size(ino, fuse_req_ctx(req)->pid);
	inode_entry(ino, &a, &e);
	reply_entry_counted(req, ino, &e);
	return 0;
}

/* ---- init ------------------------------------------------------------------- */

static void
ops_init(void *userdata, struct fuse_conn_info *conn)
{
	/*
	 * No writeback cache (the kernel would own size,
	 * mtime and O_APPEND, breaking put-on-close); keep AUTO_INVAL_DATA so
	 * a new mtime drops stale pages.  Locks stay with the kernel (no
	 * getlk/setlk/flock here).  time_gran 1: mtimes are stored in ns, so
	 * the kernel must not round what utimensat(2) gives us.
	 */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA)
		conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	conn->want &= ~(FUSE_CAP_EXPORT_SUPPORT | FUSE_CAP_POSIX_ACL);
	conn->time_gran = 1;
	/* Large writes and reads: a large file's chunk takes one or two
	 * requests, not 256 (libfuse caps these at what the kernel allows). */
	conn->max_write = 1u << 20;
	/* The kernel keeps the least of this and its device's read_ahead_kb,
	 * which main sets to fuse.read-ahead (readahead.c). */
	conn->max_readahead = recfsd.cfg->read_ahead > 0 ? (unsigned)recfsd.cfg->read_ahead : 1u << 20;
	log_info("fuse", "session started: protocol %u.%u, max_write %u, max_readahead %u",
	    conn->proto_major, conn->proto_minor, conn->max_write, conn->max_readahead);
}

/* ---- names ------------------------------------------------------------------ */

static void
ops_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct inode *dir = inode_of(parent), *child;
	size_t len = strlen(name);
	struct fuse_entry_param e;
	struct record_attr a = { 0 };
	char kbuf[RECORD_KEY_MAX + 1];
	struct txn_key k;
	int rc;

	STATS_OP(lookup, inode_is_info(dir));
	if (len > NAME_MAX) {
		rc = -ENAMETOOLONG;
		goto out;
	}
	switch (dir->kind) {
	case INODE_INFO_SETS_NS:
		rc = lookup_set_info(req, dir->ns, name, len);
		goto out;
	case INODE_ROOT:
	case INODE_INFO_ROOT:
	case INODE_INFO_NSDIR:
	case INODE_INFO_SETS:
	case INODE_INFO_DIR:
		child = inode_static_child(dir, name, len);
		if (child == NULL) {
			rc = -ENOENT;
			goto out;
		}
		if (inode_is_info(child))
			STATS_OP_SKIP();  /* /.info itself */
		if (child->kind == INODE_INFO_FILE)
			a.size = info_size(child, fuse_req_ctx(req)->pid);
		inode_entry(child, &a, &e);
		fuse_reply_entry(req, &e);
		return;
	case INODE_NAMESPACE:
		/* A name here is a set or a null-set record, never both. */
		if (len <= RECORD_SET_MAX && txn_set_exists(dir->ns, name, len) == 0) {
			rc = reply_set(req, dir->ns, name, len);
			goto out;
		}
		break;
	case INODE_SET:
	case INODE_TDIR:
		if (inode_unlinked(dir)) {
			rc = -ENOENT;
			goto out;
		}
		break;
	default:
		rc = -ENOTDIR;
		goto out;
	}
	rc = record_key_in(dir, name, len, &k, kbuf);
	if (rc == -EINVAL)
		rc = -ENOENT;
	if (rc == 0)
		rc = txn_stat(dir->ns, &k, &a);
	if (rc == 0)
		rc = reply_record(req, dir->ns, &k, &a);
out:
	if (rc != 0)
		reply_err(req, rc);
}

static void
ops_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	stats_inc(STAT_fuse_forget);
	inode_forget(inode_of(ino), nlookup);
	fuse_reply_none(req);
}

static void
ops_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	stats_add(STAT_fuse_forget, count);
	for (size_t i = 0; i < count; i++)
		inode_forget(inode_of(forgets[i].ino), forgets[i].nlookup);
	fuse_reply_none(req);
}

/* ---- attributes ------------------------------------------------------------- */

/* A directory record's attributes: -ENOENT once it is gone (or is no
 * longer a directory: another node replaced it). */
static int
tdir_attr(struct inode *ino, struct record_attr *a)
{
	struct txn_key k;
	int rc;

	pthread_mutex_lock(&ino->lock);
	inode_key(ino, &k);
	rc = inode_unlinked(ino) ? -ENOENT : txn_stat(ino->ns, &k, a);
	pthread_mutex_unlock(&ino->lock);
	if (rc == 0 && (a->mode & RECORD_MODE_TYPE_MASK) != RECORD_MODE_DIR)
		rc = -ENOENT;
	return rc;
}

static void
ops_getattr(fuse_req_t req, fuse_ino_t id, struct fuse_file_info *fi)
{
	struct inode *ino = inode_of(id);
	struct record_attr a = { 0 };
	struct stat st;
	int rc = 0;

	STATS_OP(getattr, inode_is_info(ino));
	switch (ino->kind) {
	case INODE_RECORD:
		pthread_mutex_lock(&ino->lock);
		rc = handle_attr_locked(ino, &a);
		if (rc == 0)
			inode_stat(ino, &a, &st);
		pthread_mutex_unlock(&ino->lock);
		break;
	case INODE_INFO_FILE:
		if (ino->info == INFO_SET && (inode_unlinked(ino) ||
		    txn_set_exists(ino->ns, ino->name, ino->set_len) != 0)) {
			rc = -ENOENT;  /* its set was removed */
			break;
		}
		a.size = info_size(ino, fuse_req_ctx(req)->pid);
		inode_stat(ino, &a, &st);
		break;
	case INODE_SET:
		rc = inode_unlinked(ino) ? -ENOENT : txn_set_stat(ino->ns, ino->name, ino->set_len, &a);
		if (rc == 0)
			inode_stat(ino, &a, &st);
		break;
	case INODE_TDIR:
		rc = tdir_attr(ino, &a);
		if (rc == 0)
			inode_stat(ino, &a, &st);
		break;
	default:
		inode_stat(ino, NULL, &st);
		break;
	}
	if (rc != 0)
		reply_err(req, rc);
	else
		fuse_reply_attr(req, &st, ino->kind == INODE_INFO_FILE ? 0 : recfsd.attr_timeout);
}

/* What setattr can change on a directory (FUSE_SET_ATTR_CTIME is only a
 * side effect of the others). */
#define SETATTR_CHANGES (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID | \
	FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME | \
	FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW)

/*
 * What chmod, chown and utimens ask (FUSE_SET_ATTR_*), as the fields of a
 * write: the same for records, set directories and directories inside sets.
 * An explicit atime (utimensat) is stored; reads never update it (noatime).
 */
static void
setattr_fill(const struct stat *attr, int to_set, struct txn_write *w)
{
	if (to_set & FUSE_SET_ATTR_MODE) {
		w->set_mode = true;
		w->mode = attr->st_mode & 07777;
	}
	if (to_set & FUSE_SET_ATTR_UID) {
		w->set_uid = true;
		w->uid = attr->st_uid;
	}
	if (to_set & FUSE_SET_ATTR_GID) {
		w->set_gid = true;
		w->gid = attr->st_gid;
	}
	if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
		w->set_mtime = true;
		w->mtime_ns = recfsd_now_ns();
	} else if (to_set & FUSE_SET_ATTR_MTIME) {
		w->set_mtime = true;
		w->mtime_ns = (int64_t)attr->st_mtim.tv_sec * 1000000000LL + attr->st_mtim.tv_nsec;
	}
	if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
		w->set_atime = true;
		w->atime_ns = recfsd_now_ns();
	} else if (to_set & FUSE_SET_ATTR_ATIME) {
		w->set_atime = true;
		w->atime_ns = (int64_t)attr->st_atim.tv_sec * 1000000000LL + attr->st_atim.tv_nsec;
	}
}

/* chmod, chown and utimens of a set directory: stored with the set. */
static int
set_setattr(struct inode *ino, const struct stat *attr, int to_set, struct stat *st)
{
	struct txn_write w = { 0 };
	struct record_attr a;
	int rc;

	if (inode_unlinked(ino))
		return -ENOENT;
	if (to_set & FUSE_SET_ATTR_SIZE)
		return -EISDIR;
	setattr_fill(attr, to_set, &w);
	rc = txn_set_stat(ino->ns, ino->name, ino->set_len, &a);
	if (rc == 0 && (w.set_mode || w.set_uid || w.set_gid || w.set_mtime || w.set_atime)) {
		/* A set with no stored metadata shows the daemon's defaults:
		 * store those for what this call does not change. */
		if (!a.has_meta && !w.set_mode) {
			w.set_mode = true;
			w.mode = recfsd.dir_mode;
		}
		if (!a.has_meta && !w.set_uid) {
			w.set_uid = true;
			w.uid = recfsd.uid;
		}
		if (!a.has_meta && !w.set_gid) {
			w.set_gid = true;
			w.gid = recfsd.gid;
		}
		rc = txn_set_update(ino->ns, ino->name, ino->set_len, &w, &a);
	}
	if (rc == 0)
		inode_stat(ino, &a, st);
	return rc;
}

/* chmod, chown and utimens of a directory record. */
static int
tdir_setattr(struct inode *ino, const struct stat *attr, int to_set, struct stat *st)
{
	struct txn_write w = { .flags = TXN_UPDATE_ONLY };
	struct record_attr a;
	struct txn_key k;
	int rc;

	if (to_set & FUSE_SET_ATTR_SIZE)
		return -EISDIR;
	setattr_fill(attr, to_set, &w);
	if (!(w.set_mode || w.set_uid || w.set_gid || w.set_mtime || w.set_atime)) {
		rc = tdir_attr(ino, &a);
	} else {
		pthread_mutex_lock(&ino->lock);
		inode_key(ino, &k);
		/* A rewrite keeps the content (the id); ctime moves. */
		rc = inode_unlinked(ino) ? -ENOENT : txn_write(ino->ns, &k, &w, &a);
		pthread_mutex_unlock(&ino->lock);
	}
	if (rc == 0)
		inode_stat(ino, &a, st);
	return rc;
}

static void
ops_setattr(fuse_req_t req, fuse_ino_t id, struct stat *attr, int to_set,
    struct fuse_file_info *fi)
{
	struct inode *ino = inode_of(id);
	struct txn_write w = { 0 };
	struct record_attr a;
	struct stat st;
	int rc;

	STATS_OP(setattr, inode_is_info(inode_of(id)));
	if (inode_is_info(ino)) {
		/* truncate(2) before a write to a dynamic parameter's file is
		 * harmless: the value changes when the new one is written. */
		if (info_writable(ino) && (to_set & ~(FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_MTIME |
		    FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_CTIME)) == 0 &&
		    (!(to_set & FUSE_SET_ATTR_SIZE) || attr->st_size == 0)) {
			struct record_attr ia = { .size = info_size(ino, 0) };

			inode_stat(ino, &ia, &st);
			fuse_reply_attr(req, &st, 0);
			return;
		}
		rc = -EACCES;
		goto out;
	}
	if (ino->kind == INODE_SET) {
		rc = set_setattr(ino, attr, to_set, &st);
		if (rc != 0)
			goto out;
		fuse_reply_attr(req, &st, recfsd.attr_timeout);
		return;
	}
	if (ino->kind == INODE_TDIR) {
		rc = tdir_setattr(ino, attr, to_set, &st);
		if (rc != 0)
			goto out;
		fuse_reply_attr(req, &st, recfsd.attr_timeout);
		return;
	}
	if (ino->kind != INODE_RECORD) {
		/* The root and the namespace directories come from the
		 * configuration: there is nothing to store a mode, an owner or a
		 * time in, and accepting them would be a silent no-op. */
		if (to_set & SETATTR_CHANGES) {
			rc = -EPERM;
			goto out;
		}
		inode_stat(ino, NULL, &st);
		fuse_reply_attr(req, &st, recfsd.attr_timeout);
		return;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		w.set_size = true;
		w.size = (uint64_t)attr->st_size;
	}
	setattr_fill(attr, to_set, &w);
	/* ctime is the engine's last-update time. */
	pthread_mutex_lock(&ino->lock);
	if (!(w.set_mode || w.set_uid || w.set_gid || w.set_mtime || w.set_atime || w.set_size)) {
		rc = handle_attr_locked(ino, &a);
		pthread_mutex_unlock(&ino->lock);
	} else {
		pthread_mutex_unlock(&ino->lock);
		rc = handle_setattr(ino, fi != NULL ? handle_of(fi) : NULL, &w, &a);
	}
	if (rc != 0)
		goto out;
	pthread_mutex_lock(&ino->lock);
	inode_stat(ino, &a, &st);
	pthread_mutex_unlock(&ino->lock);
	fuse_reply_attr(req, &st, recfsd.attr_timeout);
	return;
out:
	reply_err(req, rc);
}

/* ---- creating and removing ---------------------------------------------------- */

/* Create an empty record owned by the caller; *fresh = it was created now. */
static int
record_create(fuse_req_t req, struct inode *dir, const struct txn_key *k, mode_t mode,
    bool exclusive, struct record_attr *a, bool *fresh)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct txn_write w = {
		.flags = TXN_CREATE_ONLY,
		.set_file = true,
		.file_len = 0,
		.set_mode = true, .mode = mode & 07777,
		.set_uid = true, .uid = ctx->uid,
		.set_gid = true, .gid = ctx->gid,
		.set_mtime = true, .mtime_ns = recfsd_now_ns(),
	};
	int rc = txn_write(dir->ns, k, &w, a);

	*fresh = rc == 0;
	if (rc == -EEXIST && !exclusive) {
		/* O_CREAT without O_EXCL on a name created meanwhile: open it. */
		rc = txn_stat(dir->ns, k, a);
		if (rc == -ENOENT)
			rc = -EEXIST;  /* the name is a set */
	}
	return rc;
}

static void
ops_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
    struct fuse_file_info *fi)
{
	struct inode *dir = inode_of(parent), *ino;
	struct fuse_entry_param e;
	struct record_attr a;
	struct handle *h;
	char kbuf[RECORD_KEY_MAX + 1];
	struct txn_key k;
	bool fresh;
	int rc;

	STATS_OP(create, inode_is_info(inode_of(parent)));
	rc = record_key_in(dir, name, strlen(name), &k, kbuf);
	if (rc == 0)
		rc = record_create(req, dir, &k, mode, (fi->flags & O_EXCL) != 0, &a, &fresh);
	if (rc != 0)
		goto out;
	if (fresh)
		tdir_touch(dir);
	ino = inode_get(dir->ns, INODE_RECORD, &a.digest, k.set, k.set_len, k.key, k.key_len);
	if (ino == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	rc = handle_open(ino, fi->flags, fresh, false, &h);
	if (rc != 0) {
		inode_forget(ino, 1);
		goto out;
	}
	pthread_mutex_lock(&ino->lock);
	handle_attr_adjust_locked(ino, &a);
	inode_entry(ino, &a, &e);
	pthread_mutex_unlock(&ino->lock);
	fi->fh = (uintptr_t)h;
	fi->keep_cache = h->keep_cache;
	fi->direct_io = h->direct_io;
	if (fuse_reply_create(req, &e, fi) != 0) {
		/* Not delivered (interrupted, or the session ending): the
		 * kernel will neither release nor forget it. */
		handle_release(h);
		inode_forget(ino, 1);
	}
	return;
out:
	reply_err(req, rc);
}

static void
ops_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct inode *dir = inode_of(parent);
	struct record_attr a;
	char kbuf[RECORD_KEY_MAX + 1];
	struct txn_key k;
	bool fresh;
	int rc;

	STATS_OP(mknod, inode_is_info(inode_of(parent)));
	if (!S_ISREG(mode)) {
		rc = -EPERM;  /* device nodes, FIFOs and sockets: refused (recfsd(8)) */
		goto out;
	}
	rc = record_key_in(dir, name, strlen(name), &k, kbuf);
	if (rc == 0)
		rc = record_create(req, dir, &k, mode, true, &a, &fresh);
	if (rc == 0)
		tdir_touch(dir);
	if (rc == 0)
		rc = reply_record(req, dir->ns, &k, &a);
out:
	if (rc != 0)
		reply_err(req, rc);
}

/* mkdir inside a set or a directory of one: a directory record. */
static int
tree_mkdir(fuse_req_t req, struct inode *dir, const char *name, size_t len, mode_t mode)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	char kbuf[RECORD_KEY_MAX + 1];
	struct record_attr a;
	struct txn_key k;
	uint64_t id;
	int rc = record_key_in(dir, name, len, &k, kbuf);

	if (rc == 0)
		rc = txn_dir_create(dir->ns, &k, &(struct txn_write){
		    .set_mode = true, .mode = mode & 07777,
		    .set_uid = true, .uid = ctx->uid,
		    .set_gid = true, .gid = ctx->gid,
		    .set_mtime = true, .mtime_ns = recfsd_now_ns() }, &id, &a);
	if (rc == 0)
		tdir_touch(dir);
	if (rc == 0)
		rc = reply_record_id(req, dir->ns, &k, &a, id);
	return rc;
}

static void
ops_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct inode *dir = inode_of(parent);
	size_t len = strlen(name);
	int rc;

	STATS_OP(mkdir, inode_is_info(inode_of(parent)));
	/* Sets directly in a namespace; directory records inside sets. */
	if (dir->kind == INODE_SET || dir->kind == INODE_TDIR)
		rc = tree_mkdir(req, dir, name, len, mode);
	else if (dir->kind != INODE_NAMESPACE)
		rc = inode_is_info(dir) ? -EACCES : -EPERM;
	else if (len > RECORD_SET_MAX)
		rc = -ENAMETOOLONG;
	else if (is_dot(name, len))
		rc = -EINVAL;
	else
		rc = txn_set_create(dir->ns, name, len, &(struct txn_write){
		    .set_mode = true, .mode = mode & 07777,
		    .set_uid = true, .uid = fuse_req_ctx(req)->uid,
		    .set_gid = true, .gid = fuse_req_ctx(req)->gid,
		    .set_mtime = true, .mtime_ns = recfsd_now_ns() });
	if (rc == 0 && dir->kind == INODE_NAMESPACE)
		rc = reply_set(req, dir->ns, name, len);
	if (rc != 0)
		reply_err(req, rc);
}

static void
ops_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct inode *dir = inode_of(parent), *ino;
	char kbuf[RECORD_KEY_MAX + 1];
	struct txn_key k;
	struct digest d;
	int rc;

	STATS_OP(unlink, inode_is_info(inode_of(parent)));
	rc = record_key_in(dir, name, strlen(name), &k, kbuf);
	if (rc != 0)
		goto out;
	digest_compute(&d, k.set, k.set_len, k.key, k.key_len);
	ino = inode_find_hold(dir->ns, &d);
	if (ino != NULL) {
		/* Open handles keep their data: load it before it goes. */
		pthread_mutex_lock(&ino->lock);
		rc = handle_orphan_prepare_locked(ino);
	}
	if (rc == 0)
		rc = txn_delete(dir->ns, &k);
	if (ino != NULL) {
		if (rc == 0)
			handle_orphan_commit_locked(ino);
		else
			handle_orphan_abort_locked(ino);
		pthread_mutex_unlock(&ino->lock);
		inode_put(ino);
	}
	if (rc == 0)
		tdir_touch(dir);
out:
	reply_err(req, rc);
}

/* rmdir of a directory record: empty on every node, then deleted. */
static int
tree_rmdir(struct inode *dir, const char *name, size_t len)
{
	char kbuf[RECORD_KEY_MAX + 1];
	struct inode *ino;
	struct txn_key k;
	struct digest d;
	int rc = record_key_in(dir, name, len, &k, kbuf);

	if (rc == -EINVAL && is_dot(name, len))
		return len == 1 ? -EINVAL : -ENOTEMPTY;
	if (rc == 0)
		rc = txn_dir_remove(dir->ns, &k);
	if (rc != 0)
		return rc;
	digest_compute(&d, k.set, k.set_len, k.key, k.key_len);
	ino = inode_find_hold(dir->ns, &d);
	if (ino != NULL) {
		pthread_mutex_lock(&ino->lock);
		inode_unlink_locked(ino);
		pthread_mutex_unlock(&ino->lock);
		inode_put(ino);
	}
	return 0;
}

static void
ops_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct inode *dir = inode_of(parent), *ino;
	size_t len = strlen(name);
	struct digest d;
	int rc;

	STATS_OP(rmdir, inode_is_info(inode_of(parent)));
	if (dir->kind == INODE_SET || dir->kind == INODE_TDIR) {
		rc = tree_rmdir(dir, name, len);
		if (rc == 0)
			tdir_touch(dir);
		goto out;
	}
	if (dir->kind != INODE_NAMESPACE) {
		/* Namespaces and /.info are fixed. */
		rc = -EPERM;
		goto out;
	}
	if (len > RECORD_SET_MAX) {
		rc = -ENOENT;
		goto out;
	}
	rc = txn_set_remove(dir->ns, name, len);
	if (rc == -ENOENT) {
		struct txn_key k = { .set = "", .key = name, .key_len = len };
		struct record_attr a;

		if (txn_stat(dir->ns, &k, &a) == 0)
			rc = -ENOTDIR;  /* a null-set record of that name */
	}
	if (rc != 0)
		goto out;
	inode_set_digest(dir->ns, name, len, &d);
	ino = inode_find_hold(dir->ns, &d);
	if (ino != NULL) {
		pthread_mutex_lock(&ino->lock);
		inode_unlink_locked(ino);
		pthread_mutex_unlock(&ino->lock);
		inode_put(ino);
	}
out:
	reply_err(req, rc);
}

/* Lock two inodes (either may be NULL) in address order. */
static void
lock_pair(struct inode *a, struct inode *b)
{
	if (a != NULL && b != NULL && b < a) {
		struct inode *t = a;

		a = b;
		b = t;
	}
	if (a != NULL)
		pthread_mutex_lock(&a->lock);
	if (b != NULL && b != a)
		pthread_mutex_lock(&b->lock);
}

static void
unlock_pair(struct inode *a, struct inode *b)
{
	if (a != NULL)
		pthread_mutex_unlock(&a->lock);
	if (b != NULL && b != a)
		pthread_mutex_unlock(&b->lock);
}

static void
ops_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
    const char *newname, unsigned int flags)
{
	struct inode *from_dir = inode_of(parent), *to_dir = inode_of(newparent);
	struct inode *src = NULL, *dst = NULL;
	size_t len = strlen(name);
	char fbuf[RECORD_KEY_MAX + 1], tbuf[RECORD_KEY_MAX + 1];
	struct txn_key from, to;
	struct digest fd, td;
	int rc;

	STATS_OP(rename, inode_is_info(from_dir) || inode_is_info(to_dir));
	if (flags & ~RENAME_NOREPLACE) {
		rc = -EINVAL;  /* RENAME_EXCHANGE, RENAME_WHITEOUT: no atomic swap of records */
		goto out;
	}
	if (inode_is_info(from_dir) || inode_is_info(to_dir)) {
		rc = -EACCES;
		goto out;
	}
	if (from_dir->kind == INODE_ROOT || to_dir->kind == INODE_ROOT) {
		rc = -EPERM;  /* namespaces are configured, not renamed */
		goto out;
	}
	/* A set directory, or across namespaces: mv copies instead. */
	if (from_dir->ns != to_dir->ns ||
	    (from_dir->kind == INODE_NAMESPACE && len <= RECORD_SET_MAX &&
	    txn_set_exists(from_dir->ns, name, len) == 0)) {
		rc = -EXDEV;
		goto out;
	}
	rc = record_key_in(from_dir, name, len, &from, fbuf);
	if (rc == 0)
		rc = record_key_in(to_dir, newname, strlen(newname), &to, tbuf);
	if (rc != 0)
		goto out;
	digest_compute(&fd, from.set, from.set_len, from.key, from.key_len);
	digest_compute(&td, to.set, to.set_len, to.key, to.key_len);
	if (digest_compare(&fd, &td) == 0)
		goto out;  /* same name: nothing to do */
	src = inode_find_hold(from_dir->ns, &fd);
	dst = inode_find_hold(from_dir->ns, &td);
	lock_pair(src, dst);
	/* The replaced record's open handles keep its data. */
	if (dst != NULL && !(flags & RENAME_NOREPLACE))
		rc = handle_orphan_prepare_locked(dst);
	/* Inside sets a directory or link may move: the tree's type rules. */
	if (rc == 0 && from_dir->kind != INODE_NAMESPACE)
		rc = txn_tree_rename(from_dir->ns, &from, &to,
		    flags & RENAME_NOREPLACE ? TXN_RENAME_NOREPLACE : 0);
	else if (rc == 0)
		rc = txn_rename(from_dir->ns, &from, &to,
		    flags & RENAME_NOREPLACE ? TXN_RENAME_NOREPLACE : 0);
	if (rc != 0 && dst != NULL)
		handle_orphan_abort_locked(dst);
	if (rc == 0) {
		if (dst != NULL)
			handle_orphan_commit_locked(dst);
		/* The moved inode's buffer now belongs to the new name.  The
		 * kernel's cached attributes of a just-renamed inode may predate
		 * its last store: for a while its readers bypass the page cache,
		 * as after a write (handle.c writers_active_locked). */
		if (src != NULL)
			src->writers_gone_ns = recfsd_now_ns();
		if (src != NULL && inode_rename_locked(src, &td, to.set, to.set_len, to.key,
		    to.key_len) != 0) {
			/* Cannot follow it: never let it write to the old name. */
			log_error("fuse", "{%s} rename: out of memory; open handles detached",
			    namespace_name(from_dir->ns));
			handle_orphan_commit_locked(src);
		}
	}
	unlock_pair(src, dst);
	if (src != NULL)
		inode_put(src);
	if (dst != NULL)
		inode_put(dst);
	if (rc == 0) {
		tdir_touch(from_dir);
		if (to_dir != from_dir)
			tdir_touch(to_dir);
	}
out:
	reply_err(req, rc);
}

static void
ops_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	stats_inc(STAT_fuse_other);
	reply_err(req, -EPERM);  /* a record has exactly one name */
}

static void
ops_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	struct inode *dir = inode_of(parent);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	char kbuf[RECORD_KEY_MAX + 1];
	struct record_attr a;
	struct txn_key k;
	int rc;

	stats_inc(STAT_fuse_other);
	/* Links live inside sets (link records); a namespace holds sets and files. */
	if (dir->kind != INODE_SET && dir->kind != INODE_TDIR) {
		rc = inode_is_info(dir) ? -EACCES : -EPERM;
		goto out;
	}
	rc = record_key_in(dir, name, strlen(name), &k, kbuf);
	if (rc == 0)
		rc = txn_link_create(dir->ns, &k, link, strlen(link), &(struct txn_write){
		    .set_uid = true, .uid = ctx->uid,
		    .set_gid = true, .gid = ctx->gid,
		    .set_mtime = true, .mtime_ns = recfsd_now_ns() }, &a);
	if (rc == 0)
		tdir_touch(dir);
	if (rc == 0)
		rc = reply_record(req, dir->ns, &k, &a);
out:
	if (rc != 0)
		reply_err(req, rc);
}

static void
ops_readlink(fuse_req_t req, fuse_ino_t id)
{
	struct inode *ino = inode_of(id);
	char buf[TXN_LINK_MAX + 1];
	struct txn_key k;
	size_t len = 0;
	int rc = -EINVAL;

	stats_inc(STAT_fuse_other);
	if (ino->kind == INODE_RECORD) {
		pthread_mutex_lock(&ino->lock);
		inode_key(ino, &k);
		rc = inode_unlinked(ino) ? -ENOENT : txn_link_read(ino->ns, &k, buf, TXN_LINK_MAX, &len);
		pthread_mutex_unlock(&ino->lock);
	}
	if (rc != 0) {
		reply_err(req, rc);
		return;
	}
	buf[len] = '\0';
	fuse_reply_readlink(req, buf);
}

/* ---- files -------------------------------------------------------------------- */

static void
ops_open(fuse_req_t req, fuse_ino_t id, struct fuse_file_info *fi)
{
	struct inode *ino = inode_of(id);
	struct handle *h = NULL;
	int rc;

	STATS_OP(open, inode_is_info(ino));
	if (ino->kind == INODE_INFO_FILE) {
		/* Only a dynamic parameter's file takes writes (and O_TRUNC:
		 * "echo 40 > file"); statistics are read-only. */
		if (((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) &&
		    !info_writable(ino)) {
			rc = -EACCES;
			goto out;
		}
		/* direct_io: the size is only known once built, so read(2)
		 * returns what we send. */
		rc = handle_open_info(ino, fi->flags, fuse_req_ctx(req)->pid, &h);
	} else if (ino->kind == INODE_RECORD) {
		/* A damaged record: only an open that replaces the whole
		 * content (O_TRUNC) may go on (handle.h). */
		rc = handle_open(ino, fi->flags, false, !(fi->flags & O_TRUNC), &h);
	} else {
		rc = -EISDIR;
	}
	if (rc != 0)
		goto out;
	fi->keep_cache = h->keep_cache;
	fi->direct_io = h->direct_io;
	/* A read-only handle never has anything to store at close. */
	fi->noflush = (fi->flags & O_ACCMODE) == O_RDONLY;
	fi->fh = (uintptr_t)h;
	if (fuse_reply_open(req, fi) != 0)
		handle_release(h);  /* not delivered (interrupted, session ending): no release */
	return;
out:
	reply_err(req, rc);
}

static void
ops_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	int rc;

	STATS_OP(read, inode_is_info(inode_of(ino)));
	rc = handle_read(req, handle_of(fi), size, off);
	if (rc != 0)
		reply_err(req, rc);
}

static void
ops_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
    struct fuse_file_info *fi)
{
	long n;

	STATS_OP(write, inode_is_info(inode_of(ino)));
	/* Not root: set-ID bits go, as the kernel clears them for cached
	 * writes (its direct-I/O path does not; fi->writepage: the kernel
	 * writing back mmap pages, no user). */
	n = handle_write(handle_of(fi), buf, size, off, !fi->writepage && fuse_req_ctx(req)->uid != 0);
	if (n < 0)
		reply_err(req, (int)n);
	else
		fuse_reply_write(req, (size_t)n);
}

static void
ops_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	STATS_OP(flush, inode_is_info(inode_of(ino)));
	/* close(2) returns this: the one place a put error reaches most programs. */
	reply_err(req, handle_flush(handle_of(fi), false));
}

static void
ops_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	STATS_OP(fsync, inode_is_info(inode_of(ino)));
	reply_err(req, handle_flush(handle_of(fi), true));
}

static void
ops_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	STATS_OP(release, inode_is_info(inode_of(ino)));
	handle_release(handle_of(fi));
	reply_err(req, 0);
}

static void
ops_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
    struct fuse_file_info *fi)
{
	stats_inc(STAT_fuse_other);
	reply_err(req, handle_fallocate(handle_of(fi), mode, offset, length));
}

/* ---- directories ---------------------------------------------------------------- */

static void
ops_opendir(fuse_req_t req, fuse_ino_t id, struct fuse_file_info *fi)
{
	struct inode *ino = inode_of(id);
	struct dir_handle *d;
	int rc;

	STATS_OP(opendir, inode_is_info(ino));
	if (!inode_is_dir(ino)) {
		rc = -ENOTDIR;
		goto out;
	}
	rc = dir_open(ino, &d);
	if (rc != 0)
		goto out;
	/* The root and /.info only change with the configuration. */
	if (inode_is_static_dir(ino)) {
		fi->cache_readdir = 1;
		fi->keep_cache = 1;
	}
	fi->fh = (uintptr_t)d;
	if (fuse_reply_open(req, fi) != 0)
		dir_release(d);   /* not delivered (interrupted, session ending): no release */
	return;
out:
	reply_err(req, rc);
}

static void
ops_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	int rc;

	STATS_OP(readdir, inode_is_info(inode_of(ino)));
	rc = dir_read(req, (struct dir_handle *)(uintptr_t)fi->fh, size, off, false);
	if (rc != 0)
		reply_err(req, rc);
}

static void
ops_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
    struct fuse_file_info *fi)
{
	int rc;

	STATS_OP(readdirplus, inode_is_info(inode_of(ino)));
	rc = dir_read(req, (struct dir_handle *)(uintptr_t)fi->fh, size, off, true);
	if (rc != 0)
		reply_err(req, rc);
}

static void
ops_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	STATS_OP(releasedir, inode_is_info(inode_of(ino)));
	dir_release((struct dir_handle *)(uintptr_t)fi->fh);
	reply_err(req, 0);
}

static void
ops_fsyncdir(fuse_req_t req, fuse_ino_t id, int datasync, struct fuse_file_info *fi)
{
	struct inode *ino = inode_of(id);
	unsigned n = node_namespace_count(recfsd.node);
	int rc = 0;

	/* fsync of a directory makes its entries durable: every create,
	 * rename, unlink and set change made so far in that namespace (the
	 * root and /.info: every namespace).  The usual "write tmp, fsync,
	 * rename, fsync dir" pattern relies on it. */
	for (unsigned i = 0; i < n; i++) {
		struct namespace *ns = node_namespace(recfsd.node, i);

		if (ino->ns != NULL && ino->ns != ns)
			continue;
		int r = txn_namespace_sync(ns);
		if (r != 0)
			rc = r;
	}
	reply_err(req, rc);
}

/* ---- statfs ------------------------------------------------------------------- */

static void
ops_statfs(fuse_req_t req, fuse_ino_t id)
{
	struct inode *ino = inode_of(id);
	struct txn_space sum = { 0 }, sp;
	struct statvfs st = { 0 };
	unsigned n = node_namespace_count(recfsd.node);

	STATS_OP(statfs, inode_is_info(ino));
	/* A namespace's own storage; the root (and /.info) show the sum. */
	for (unsigned i = 0; i < n; i++) {
		struct namespace *ns = node_namespace(recfsd.node, i);

		if (ino->ns != NULL && ino->ns != ns)
			continue;
		txn_namespace_space(ns, &sp);
		sum.total_bytes += sp.total_bytes;
		sum.used_bytes += sp.used_bytes;
		sum.avail_bytes += sp.avail_bytes;
		sum.objects += sp.objects;
		sum.max_objects += sp.max_objects;
	}
	st.f_bsize = STATFS_BLOCK;
	st.f_frsize = STATFS_BLOCK;
	/* Never all zeros: df hides such filesystems and some programs refuse them. */
	st.f_blocks = sum.total_bytes / STATFS_BLOCK ? sum.total_bytes / STATFS_BLOCK : 1;
	st.f_bfree = sum.avail_bytes / STATFS_BLOCK;
	if (st.f_bfree > st.f_blocks)
		st.f_bfree = st.f_blocks;
	st.f_bavail = st.f_bfree;
	st.f_files = sum.max_objects > sum.objects ? sum.max_objects : sum.objects + 1;
	st.f_ffree = st.f_files - sum.objects;
	st.f_favail = st.f_ffree;
	st.f_namemax = NAME_MAX;
	fuse_reply_statfs(req, &st);
}

/* ---- xattrs --------------------------------------------------------------------- */

static void
ops_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size,
    int flags)
{
	STATS_OP(setxattr, inode_is_info(inode_of(ino)));
	reply_err(req, xattr_set(inode_of(ino), name, value, size, flags));
}

static void
ops_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	int rc;

	STATS_OP(getxattr, inode_is_info(inode_of(ino)));
	rc = xattr_get(req, inode_of(ino), name, size);
	if (rc != 0)
		reply_err(req, rc);
}

static void
ops_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	int rc;

	STATS_OP(listxattr, inode_is_info(inode_of(ino)));
	rc = xattr_list(req, inode_of(ino), size);
	if (rc != 0)
		reply_err(req, rc);
}

static void
ops_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	STATS_OP(removexattr, inode_is_info(inode_of(ino)));
	reply_err(req, xattr_remove(inode_of(ino), name));
}

const struct fuse_lowlevel_ops ops_table = {
	.init = ops_init,
	.lookup = ops_lookup,
	.forget = ops_forget,
	.forget_multi = ops_forget_multi,
	.getattr = ops_getattr,
	.setattr = ops_setattr,
	.mknod = ops_mknod,
	.mkdir = ops_mkdir,
	.unlink = ops_unlink,
	.rmdir = ops_rmdir,
	.symlink = ops_symlink,
	.readlink = ops_readlink,
	.rename = ops_rename,
	.link = ops_link,
	.create = ops_create,
	.open = ops_open,
	.read = ops_read,
	.write = ops_write,
	.flush = ops_flush,
	.fsync = ops_fsync,
	.release = ops_release,
	.fallocate = ops_fallocate,
	.opendir = ops_opendir,
	.readdir = ops_readdir,
	.readdirplus = ops_readdirplus,
	.releasedir = ops_releasedir,
	.fsyncdir = ops_fsyncdir,
	.statfs = ops_statfs,
	.setxattr = ops_setxattr,
	.getxattr = ops_getxattr,
	.listxattr = ops_listxattr,
	.removexattr = ops_removexattr,
};
