/*
 * dir.c - streaming directory listings (see dir.h).
 *
 * Design: the engine's txn_list is a resumable cursor over a set in
 * (partition, digest) order, so records that exist throughout a listing
 * come out exactly once whatever happens around them.  The handle turns
 * that into what the kernel wants, numbered offsets: it fetches a batch of
 * DIR_BATCH records, hands them out with offsets next_seq + 1, and for each
 * entry sent remembers the cursor that resumes right after it, in a ring of
 * DIR_WINDOW positions.  The kernel asks again from an older offset when
 * the reader's buffer filled before ours did (getdents with a small
 * buffer); the ring answers that without a rescan.  Offset 0 rewinds.
 *
 * An offset older than the ring (a seekdir far back) restarts the records
 * from the beginning: entries may repeat then, but none is skipped.
 *
 * Locking: d->lock protects the whole handle; the kernel serialises
 * readdir on a file anyway, but nothing here relies on that.
 *
 * Rejected: a snapshot of the whole listing at opendir (unbounded memory
 * for ten million records); offsets that encode the digest (64 bits cannot
 * hold partition + 160-bit digest).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dir.h"
#include "handle.h"
#include "info.h"
#include "stats.h"

#define DIR_BATCH 64        /* records fetched from the engine at a time */
#define DIR_WINDOW 512      /* resumable offsets kept (> one reply of small dirents) */

/* One fixed entry: ".", "..", a static child, or a set of a namespace. */
enum dir_fixed_kind { FIXED_DOT, FIXED_DOTDOT, FIXED_STATIC, FIXED_SET };

struct dir_fixed {
	uint8_t kind;               /* enum dir_fixed_kind */
	uint8_t name_len;           /* sets */
	uint32_t name_off;          /* sets: name in d->names */
	struct inode *ino;          /* static child */
};

/* Where the engine resumes to produce entry number seq. */
struct dir_pos {
	uint64_t seq;               /* 0: empty slot */
	struct txn_cursor cur;
};

struct dir_handle {
	pthread_mutex_t lock;
	struct inode *dir;          /* held */
	bool records;               /* lists records after the fixed entries */
	/* protected by lock: */
	struct dir_fixed *fixed;
	size_t n_fixed;
	char *names;                /* set names, back to back */
	size_t names_len, names_cap;
	struct txn_cursor cur;      /* engine position after the batch */
	struct txn_entry *batch;    /* DIR_BATCH, allocated on first use */
	size_t batch_n, batch_i;    /* batch[batch_i..batch_n) not yet sent */
	uint64_t next_seq;          /* number of the next entry to send */
	struct dir_pos *window;     /* DIR_WINDOW, by seq % DIR_WINDOW */
	struct dir_handle *prev, *next;   /* open_dirs, under open_lock */
};

/* Every open directory handle: a session ended by a signal never releases
 * the ones its kernel still had open (dir_release_all). */
static pthread_mutex_t open_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dir_handle *open_dirs;

/* ---- fixed entries -------------------------------------------------------- */

static int
fixed_push(struct dir_handle *d, size_t *cap, enum dir_fixed_kind kind, struct inode *ino,
    const char *name, size_t len)
{
	if (d->n_fixed == *cap) {
		size_t n = *cap ? *cap * 2 : 16;
		struct dir_fixed *f = realloc(d->fixed, n * sizeof(*f));

		if (f == NULL)
			return -ENOMEM;
		d->fixed = f;
		*cap = n;
	}
	d->fixed[d->n_fixed].kind = (uint8_t)kind;
	d->fixed[d->n_fixed].ino = ino;
	d->fixed[d->n_fixed].name_off = (uint32_t)d->names_len;
	d->fixed[d->n_fixed].name_len = (uint8_t)len;
	if (kind == FIXED_SET) {
		if (d->names_len + len > d->names_cap) {
			size_t n = d->names_cap ? d->names_cap * 2 : 1024;
			char *p;

			while (n < d->names_len + len)
				n *= 2;
			p = realloc(d->names, n);
			if (p == NULL)
				return -ENOMEM;
			d->names = p;
			d->names_cap = n;
		}
		memcpy(d->names + d->names_len, name, len);
		d->names_len += len;
	}
	d->n_fixed++;
	return 0;
}

struct set_collect {
	struct dir_handle *d;
	size_t cap;
	int rc;
};

static int
collect_set(void *arg, const struct txn_set_info *info)
{
	struct set_collect *sc = arg;

	sc->rc = fixed_push(sc->d, &sc->cap, FIXED_SET, NULL, info->name, strlen(info->name));
	return sc->rc;
}

/* (Re)build the fixed entries: static children, or a namespace's sets. */
static int
fixed_load(struct dir_handle *d)
{
	struct set_collect sc = { .d = d };
	struct inode *c;

	int rc;

	d->n_fixed = 0;
	d->names_len = 0;
	/* ls -a shows them, and scripts expect them, as on any filesystem. */
	rc = fixed_push(d, &sc.cap, FIXED_DOT, d->dir, NULL, 0);
	if (rc == 0)
		rc = fixed_push(d, &sc.cap, FIXED_DOTDOT, inode_parent_dir(d->dir), NULL, 0);
	if (rc != 0)
		return rc;
	if (d->dir->kind == INODE_NAMESPACE || d->dir->kind == INODE_INFO_SETS_NS) {
		rc = txn_set_foreach(d->dir->ns, collect_set, &sc);
		return rc != 0 ? rc : sc.rc;
	}
	for (size_t i = 0; (c = inode_static_nth(d->dir, i)) != NULL; i++) {
		rc = fixed_push(d, &sc.cap, FIXED_STATIC, c, NULL, 0);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* ---- positions ------------------------------------------------------------ */

static void
records_rewind(struct dir_handle *d)
{
	txn_cursor_init(&d->cur);
	d->batch_n = d->batch_i = 0;
}

/* Where to resume right after entry e: the cursor order is (partition, digest). */
static void
cursor_after(const struct txn_entry *e, struct txn_cursor *c)
{
	txn_cursor_init(c);
	c->partition = e->attr.partition;
	c->last = e->attr.digest;
	c->started = true;
}

/* Make entry number off the next one to send. */
static void
dir_seek(struct dir_handle *d, uint64_t off)
{
	struct dir_pos *p;

	records_rewind(d);
	if (off <= d->n_fixed || d->window == NULL) {
		/* Into the fixed entries, or no record was ever sent. */
	} else if ((p = &d->window[off % DIR_WINDOW])->seq == off) {
		d->cur = p->cur;
	} else if (off > d->next_seq) {
		/* Never handed out: nothing follows it. */
		d->cur.done = true;
	}
	/* else: older than the window: records start over (repeat, never skip). */
	d->next_seq = off;
}

/* ---- entries -------------------------------------------------------------- */

/* A set's statistics file in /.info/sets/<ns>. */
static size_t
add_set_info(fuse_req_t req, struct dir_handle *d, const char *name, size_t len, char *buf,
    size_t room, bool plus, off_t next)
{
	struct record_attr a = { 0 };
	struct fuse_entry_param e;
	struct digest dg;
	struct inode *ino = NULL;
	size_t need;

	inode_set_info_digest(d->dir->ns, name, len, &dg);
	if (plus && txn_set_exists(d->dir->ns, name, len) == 0)
		ino = inode_get(d->dir->ns, INODE_INFO_FILE, &dg, name, len, "", 0);
	if (ino == NULL) {
		memset(&e, 0, sizeof(e));
		e.attr.st_ino = digest_inode(&dg);
		e.attr.st_mode = S_IFREG;
		if (!plus)
			return fuse_add_direntry(req, buf, room, name, &e.attr, next);
		return fuse_add_direntry_plus(req, buf, room, name, &e, next);
	}
	a.size = info_size(ino, 0);
	inode_entry(ino, &a, &e);
	need = fuse_add_direntry_plus(req, buf, room, name, &e, next);
	if (need > room)
		inode_forget(ino, 1);  /* not sent: the kernel will not count it */
	return need;
}

/* Add a fixed entry at buf; returns the space it needs (> room: did not fit). */
static size_t
add_fixed(fuse_req_t req, struct dir_handle *d, const struct dir_fixed *f, char *buf,
    size_t room, bool plus, off_t next)
{
	struct inode *ino = f->ino;
	struct record_attr a = { 0 };
	struct fuse_entry_param e;
	struct digest dg;
	char name[RECORD_SET_MAX + 1];
	size_t need;

	switch (f->kind) {
	case FIXED_DOT:
	case FIXED_DOTDOT:
		snprintf(name, sizeof(name), f->kind == FIXED_DOT ? "." : "..");
		if (ino->kind == INODE_TDIR) {
			/* A directory record: the kernel asks for its attributes itself. */
			memset(&e, 0, sizeof(e));
			e.attr.st_mode = S_IFDIR;
			pthread_mutex_lock(&ino->lock);
			e.attr.st_ino = digest_inode(&ino->digest);  /* 0 would hide it */
			pthread_mutex_unlock(&ino->lock);
			if (!plus)
				return fuse_add_direntry(req, buf, room, name, &e.attr, next);
			return fuse_add_direntry_plus(req, buf, room, name, &e, next);
		}
		/* The kernel never counts a lookup for these: attributes only. */
		if (ino->kind == INODE_SET && plus &&
		    txn_set_stat(ino->ns, ino->name, ino->set_len, &a) == 0)
			inode_entry(ino, &a, &e);
		else
			inode_entry(ino, NULL, &e);
		e.ino = 0;
		if (!plus)
			return fuse_add_direntry(req, buf, room, name, &e.attr, next);
		return fuse_add_direntry_plus(req, buf, room, name, &e, next);
	case FIXED_STATIC:
		snprintf(name, sizeof(name), "%s", inode_static_name(ino));
		if (ino->kind == INODE_INFO_FILE && plus)
			a.size = info_size(ino, 0);
		inode_entry(ino, &a, &e);
		if (!plus)
			return fuse_add_direntry(req, buf, room, name, &e.attr, next);
		return fuse_add_direntry_plus(req, buf, room, name, &e, next);
	default:
		break;
	}
	/* A set of the namespace: its directory, or its statistics file. */
	memcpy(name, d->names + f->name_off, f->name_len);
	name[f->name_len] = '\0';
	if (d->dir->kind == INODE_INFO_SETS_NS)
		return add_set_info(req, d, name, f->name_len, buf, room, plus, next);
	inode_set_digest(d->dir->ns, name, f->name_len, &dg);
	if (!plus) {
		struct stat st = { .st_ino = digest_inode(&dg), .st_mode = S_IFDIR };

		return fuse_add_direntry(req, buf, room, name, &st, next);
	}
	/* The set may have gone since the snapshot: then list it without
	 * attributes rather than hand out a dead inode. */
	ino = NULL;
	if (txn_set_stat(d->dir->ns, name, f->name_len, &a) == 0)
		ino = inode_get(d->dir->ns, INODE_SET, &dg, name, f->name_len, "", 0);
	if (ino == NULL) {
		memset(&e, 0, sizeof(e));
		e.attr.st_ino = digest_inode(&dg);
		e.attr.st_mode = S_IFDIR;
		return fuse_add_direntry_plus(req, buf, room, name, &e, next);
	}
	inode_entry(ino, &a, &e);
	need = fuse_add_direntry_plus(req, buf, room, name, &e, next);
	if (need > room)
		inode_forget(ino, 1);  /* not sent: the kernel will not count it */
	return need;
}

/* The file type a listed record shows (d_type). */
static mode_t
entry_type(const struct record_attr *a)
{
	if (!a->has_meta)
		return S_IFREG;
	switch (a->mode & RECORD_MODE_TYPE_MASK) {
	case RECORD_MODE_DIR:
		return S_IFDIR;
	case RECORD_MODE_LINK:
		return S_IFLNK;
	default:
		return S_IFREG;
	}
}

static size_t
add_record(fuse_req_t req, struct dir_handle *d, const struct txn_entry *te, char *buf,
    size_t room, bool plus, off_t next)
{
	bool in_set = d->dir->kind == INODE_SET || d->dir->kind == INODE_TDIR;
	const char *set = in_set ? d->dir->name : "";
	size_t set_len = in_set ? d->dir->set_len : 0;
	char kbuf[RECORD_KEY_MAX + 1];
	struct fuse_entry_param e;
	struct record_attr a = te->attr;
	struct txn_key k;
	struct inode *ino = NULL;
	size_t need;

	if (!plus) {
		struct stat st = { .st_ino = te->attr.ino, .st_mode = entry_type(&te->attr) };

		return fuse_add_direntry(req, buf, room, te->key, &st, next);
	}
	/* A directory's node needs its id (a record read): the kernel looks
	 * it up when it is used, so it is listed without attributes. */
	if (entry_type(&te->attr) != S_IFDIR &&
	    txn_tree_key(set, set_len, d->dir->kind == INODE_TDIR ? d->dir->dir_id : 0, te->key,
	    te->key_len, kbuf, &k) == 0)
		ino = inode_get_tree(d->dir->ns, &te->attr, k.set, k.set_len, k.key, k.key_len, 0);
	if (ino == NULL) {
		/* A plain entry (ino 0 = no attributes). */
		memset(&e, 0, sizeof(e));
		e.attr.st_ino = te->attr.ino;
		e.attr.st_mode = entry_type(&te->attr);
		return fuse_add_direntry_plus(req, buf, room, te->key, &e, next);
	}
	pthread_mutex_lock(&ino->lock);
	handle_attr_adjust_locked(ino, &a);
	inode_entry(ino, &a, &e);
	pthread_mutex_unlock(&ino->lock);
	need = fuse_add_direntry_plus(req, buf, room, te->key, &e, next);
	if (need > room)
		inode_forget(ino, 1);  /* not sent: undo its lookup count */
	return need;
}

/* Make sure batch[batch_i] is a record to send; false at the end or on error. */
static bool
batch_fill(struct dir_handle *d, int *rc)
{
	bool in_set = d->dir->kind == INODE_SET || d->dir->kind == INODE_TDIR;
	const char *set = in_set ? d->dir->name : "";
	size_t set_len = in_set ? d->dir->set_len : 0;
	int n;

	if (d->batch_i < d->batch_n)
		return true;
	if (d->cur.done)
		return false;
	if (d->batch == NULL) {
		d->batch = malloc(DIR_BATCH * sizeof(*d->batch));
		d->window = calloc(DIR_WINDOW, sizeof(*d->window));
		if (d->batch == NULL || d->window == NULL) {
			*rc = -ENOMEM;
			return false;
		}
	}
	n = txn_dir_list(d->dir->ns, set, set_len, d->dir->kind == INODE_TDIR ? d->dir->dir_id : 0,
	    &d->cur, d->batch, DIR_BATCH);
	if (n < 0) {
		/* A set removed while listed simply ends the listing. */
		if (n != -ENOENT)
			*rc = n;
		return false;
	}
	d->batch_n = (size_t)n;
	d->batch_i = 0;
	return n > 0;
}

int
dir_read(fuse_req_t req, struct dir_handle *d, size_t size, off_t off, bool plus)
{
	char *buf = malloc(size);
	size_t used = 0, sent = 0;
	int rc = 0;

	if (buf == NULL)
		return -ENOMEM;
	pthread_mutex_lock(&d->lock);
	if (off == 0) {
		/* Rewind: a new look at the sets, and records from the start. */
		rc = fixed_load(d);
		if (d->window != NULL)
			memset(d->window, 0, DIR_WINDOW * sizeof(*d->window));
		dir_seek(d, 0);
	} else if ((uint64_t)off != d->next_seq) {
		dir_seek(d, (uint64_t)off);
	}
	while (rc == 0) {
		off_t next = (off_t)(d->next_seq + 1);
		size_t need;

		if (d->next_seq < d->n_fixed) {
			need = add_fixed(req, d, &d->fixed[d->next_seq], buf + used, size - used,
			    plus, next);
			if (need > size - used)
				break;
		} else if (d->records && batch_fill(d, &rc)) {
			const struct txn_entry *te = &d->batch[d->batch_i];
			struct dir_pos *p;

			need = add_record(req, d, te, buf + used, size - used, plus, next);
			if (need > size - used)
				break;
			d->batch_i++;
			p = &d->window[(d->next_seq + 1) % DIR_WINDOW];
			p->seq = d->next_seq + 1;
			cursor_after(te, &p->cur);
		} else {
			break;
		}
		used += need;
		sent++;
		d->next_seq++;
	}
	/* Report errors only when nothing could be listed: the next readdir
	 * asks for that batch again, and fails if it fails again.  So a
	 * listing that waited out a node that does not answer fails, unless
	 * the cluster dropped that node before the reader asked again: then
	 * the remaining masters list it all (docs/cluster.md, "Sets and
	 * listings"). */
	if (rc != 0 && sent > 0)
		rc = 0;
	if (rc == 0) {
		stats_add(STAT_fuse_readdir_entries, sent);
		fuse_reply_buf(req, buf, used);
	}
	pthread_mutex_unlock(&d->lock);
	free(buf);
	return rc;
}

/* ---- open / release ------------------------------------------------------- */

int
dir_open(struct inode *ino, struct dir_handle **out)
{
	struct dir_handle *d;
	int rc;

	if ((ino->kind == INODE_SET || ino->kind == INODE_TDIR) && inode_unlinked(ino))
		return -ENOENT;
	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return -ENOMEM;
	pthread_mutex_init(&d->lock, NULL);
	d->dir = ino;
	d->records = ino->kind == INODE_NAMESPACE || ino->kind == INODE_SET ||
	    ino->kind == INODE_TDIR;
	txn_cursor_init(&d->cur);
	rc = fixed_load(d);
	if (rc != 0) {
		free(d->fixed);
		free(d->names);
		pthread_mutex_destroy(&d->lock);
		free(d);
		return rc;
	}
	inode_hold(ino);
	pthread_mutex_lock(&open_lock);
	d->next = open_dirs;
	if (open_dirs != NULL)
		open_dirs->prev = d;
	open_dirs = d;
	pthread_mutex_unlock(&open_lock);
	*out = d;
	return 0;
}

void
dir_release(struct dir_handle *d)
{
	struct inode *ino = d->dir;

	pthread_mutex_lock(&open_lock);
	if (d->prev != NULL)
		d->prev->next = d->next;
	else
		open_dirs = d->next;
	if (d->next != NULL)
		d->next->prev = d->prev;
	pthread_mutex_unlock(&open_lock);
	/* A readdir may still be unlocking after its reply. */
	pthread_mutex_lock(&d->lock);
	pthread_mutex_unlock(&d->lock);
	pthread_mutex_destroy(&d->lock);
	free(d->fixed);
	free(d->names);
	free(d->batch);
	free(d->window);
	free(d);
	inode_put(ino);
}

void
dir_release_all(void)
{
	for (;;) {
		struct dir_handle *d;

		pthread_mutex_lock(&open_lock);
		d = open_dirs;
		pthread_mutex_unlock(&open_lock);
		if (d == NULL)
			return;
		dir_release(d);
	}
}
