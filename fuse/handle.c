/*
 * handle.c - put-on-close handles over whole records (see handle.h).
 *
 * Design: a record is stored as a whole, so a handle works on a whole copy.
 * Writable handles keep a private buffer, stored with one txn_write at
 * close: concurrent writers each store one whole version (last close
 * wins), and a refused write (EFBIG) can drop the handle's changes without
 * touching the stored record.  Read-only handles read a snapshot: the
 * txn_record of one txn_read, refcounted and shared by every reader of the
 * same generation, never copied; a reader keeps its snapshot to the end,
 * so each read(2) returns one whole version whatever writers do meanwhile.
 * The snapshot readers share is kept on the inode while a handle is open,
 * and checked against the record's generation (an index lookup) before a
 * new reader takes it.
 *
 * The kernel's page cache is per inode, so open() only sets keep_cache
 * when the inode's pages are known to hold exactly the record's current
 * generation: inode->pages tracks that (inode.h, enum inode_pages).
 * Write-only handles use direct I/O (see handle_direct_io).
 *
 * Locking: handle buffers, the inode's handle list and its snapshot pointer
 * are protected by the inode lock, which is also held across the engine
 * call that stores a buffer, so a rename (same lock) never sends content
 * to the old name.  Snapshot reference counts are atomic: a reader takes
 * one, drops the lock, replies, and drops it, touching neither the handle
 * nor the inode after the reply (the kernel may release both as soon as it
 * has the data).  Writable handles reply under the inode lock; release
 * takes that lock before it frees anything.
 *
 * Rejected: one buffer per inode shared by every handle (a local
 * filesystem's view of two descriptors, but concurrent O_TRUNC writers
 * interleave into one torn record and readers see half-written data,
 * against SPEC 4 "readers see the last completed close"); the page-cache
 * writeback mode (the kernel would own size and O_APPEND, breaking
 * put-on-close); writing through on every write(2) (each 4 KiB write
 * would rewrite the whole record).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "base/atomic.h"
#include "base/log.h"
#include "handle.h"
#include "info.h"
#include "stats.h"

/* Bytes of a stored record around its content: header, end mark and CRC,
 * POSIX metadata, the file bin's own header (docs/storage-format.md). */
#define RECORD_END_BYTES 8
#define RECORD_META_BYTES 24
#define RECORD_BIN_HEADER(name_len) (1 + (name_len) + 1)

/* One stored version of a record's content, shared by readers. */
struct snapshot {
	uint32_t refs;                /* atomic: a reply in flight holds one without any lock */
	uint16_t generation;
	uint64_t last_update_ms;
	bool have_rec;                /* rec holds a record (else: none was found) */
	bool foreign;                 /* read by name after the inode was unlinked */
	const char *data;             /* the file bin's bytes, inside rec.buf */
	size_t len;
	struct txn_record rec;
};

static uint64_t handle_total;   /* atomic: open handles */

static bool
handle_writable(const struct handle *h)
{
	return (h->flags & O_ACCMODE) != O_RDONLY;
}

/* ---- snapshots ------------------------------------------------------------ */

static void
snapshot_hold(struct snapshot *s)
{
	atomic_inc(&s->refs);
}

/* Drop a reference; needs no lock, so a reader can drop the one it held
 * across its reply without touching the inode again. */
static void
snapshot_put(struct snapshot *s)
{
	if (__atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	if (s->have_rec)
		txn_record_release(&s->rec);
	free(s);
}

static int
snapshot_load(struct inode *ino, const struct txn_key *k, struct snapshot **out)
{
	struct snapshot *s = calloc(1, sizeof(*s));
	const struct bin *fb;
	int rc;

	if (s == NULL)
		return -ENOMEM;
	s->refs = 1;
	s->data = "";
	rc = txn_read(ino->ns, k, &s->rec);
	if (rc == -ENOENT) {
		/* Expired or deleted elsewhere: an empty file, as a local
		 * filesystem shows a file truncated by someone else. */
		*out = s;
		return 0;
	}
	if (rc != 0) {
		free(s);
		return rc;
	}
	s->have_rec = true;
	s->generation = s->rec.attr.generation;
	s->last_update_ms = s->rec.attr.last_update_ms;
	fb = s->rec.file_bin;
	if (fb != NULL && (fb->type == BIN_BLOB || fb->type == BIN_STRING)) {
		s->data = (const char *)fb->v.bytes.data;
		s->len = fb->v.bytes.len;
	}
	stats_inc(STAT_fuse_record_loads);
	*out = s;
	return 0;
}

/*
 * The snapshot of ino's record, with a reference for the caller: the one
 * readers share if it is still the record's generation, else a new one.
 * An unlinked inode keeps what it has; with nothing kept, it reads the
 * record its old name holds now (a reader racing a rename reads the new
 * version whole).  Inode lock held.
 */
static int
snapshot_get_locked(struct inode *ino, struct snapshot **out)
{
	struct snapshot *s = ino->snap;
	struct record_attr a;
	struct txn_key k;
	int rc;

	inode_key(ino, &k);
	if (s != NULL) {
		if (ino->unlinked)
			goto share;
		rc = txn_stat(ino->ns, &k, &a);
		if (rc == 0 && s->have_rec && a.generation == s->generation &&
		    a.last_update_ms == s->last_update_ms)
			goto share;
		if (rc == -ENOENT && !s->have_rec)
			goto share;
	}
	rc = snapshot_load(ino, &k, &s);
	if (rc != 0)
		return rc;
	s->foreign = ino->unlinked;
	if (ino->snap != NULL)
		snapshot_put(ino->snap);
	ino->snap = s;              /* the inode's reference */
share:
	snapshot_hold(s);
	*out = s;
	return 0;
}

/* ---- the kernel's page cache ------------------------------------------------ */

/* A cached read of generation gen is about to fill pages. */
static void
pages_note_read_locked(struct inode *ino, uint16_t gen)
{
	if (ino->pages == INODE_PAGES_EMPTY) {
		ino->pages = INODE_PAGES_GEN;
		ino->page_gen = gen;
	} else if (ino->pages == INODE_PAGES_GEN && ino->page_gen != gen) {
		ino->pages = INODE_PAGES_MIXED;
	}
}

/* ---- writable buffers -------------------------------------------------------- */

/* No record of the namespace can be larger than this. */
static uint64_t
content_max(const struct inode *ino)
{
	const struct ns_config *nc = namespace_config(ino->ns);
	uint64_t max = nc->storage.max_record_size;

	return max == 0 || max > nc->storage.write_block_size ? nc->storage.write_block_size : max;
}

/*
 * Largest content that surely fits max-record-size, given the record's key
 * and other bins (r, if read; else none, with POSIX metadata).  Writes
 * below it are only buffered; a write past it asks the engine at once
 * (handle_write), so EFBIG comes from the write that crosses the real
 * limit rather than from close.
 */
static uint64_t
content_limit(const struct inode *ino, const struct txn_record *r)
{
	const struct ns_config *nc = namespace_config(ino->ns);
	uint64_t max = content_max(ino);
	uint64_t base = RECORD_FLAT_HEADER_SIZE + ino->set_len + ino->key_len +
	    RECORD_META_BYTES + RECORD_BIN_HEADER(strlen(nc->file_bin)) + 4 + RECORD_END_BYTES;

	for (int i = 0; r != NULL && i < r->rec.n_bins; i++) {
		const struct bin *b = &r->rec.bins[i];

		if (b == r->file_bin)
			continue;
		base += RECORD_BIN_HEADER(b->name_len);
		base += b->type == BIN_INTEGER || b->type == BIN_DOUBLE ? 8 : 4 + (uint64_t)b->v.bytes.len;
	}
	return max > base ? max - base : 0;
}

static int
buffer_reserve(struct handle *h, size_t n)
{
	size_t cap = h->cap ? h->cap : 4096;
	char *p;

	if (n <= h->cap)
		return 0;
	while (cap < n)
		cap *= 2;
	p = realloc(h->data, cap);
	if (p == NULL)
		return -ENOMEM;
	h->data = p;
	h->cap = cap;
	return 0;
}

/* Set the length, zero-filling growth (truncate, sparse writes). */
static int
buffer_resize(struct handle *h, size_t n)
{
	int rc = buffer_reserve(h, n);

	if (rc != 0)
		return rc;
	if (n > h->len)
		memset(h->data + h->len, 0, n - h->len);
	h->len = n;
	return 0;
}

static int
buffer_fill(struct handle *h, const struct snapshot *s)
{
	int rc = buffer_reserve(h, s->len);

	if (rc != 0)
		return rc;
	if (s->len > 0)
		memcpy(h->data, s->data, s->len);
	h->len = s->len;
	h->loaded = true;
	h->limit = content_limit(h->inode, s->have_rec ? &s->rec : NULL);
	if (h->limit < h->len)
		h->limit = h->len;  /* it is stored, so it fits */
	return 0;
}

/* Give a writable handle the record's content (read-modify-write).  Inode lock held. */
static int
buffer_load_locked(struct handle *h)
{
	struct inode *ino = h->inode;
	struct snapshot *s;
	int rc;

	if (ino->unlinked && ino->snap == NULL) {
		h->len = 0;
		h->loaded = true;
		h->limit = content_limit(ino, NULL);
		return 0;
	}
	rc = snapshot_get_locked(ino, &s);
	if (rc != 0)
		return rc;
	rc = buffer_fill(h, s);
	snapshot_put(s);
	return rc;
}

/* Store the handle's buffer as the record's content.  Inode lock held. */
static int
buffer_store_locked(struct handle *h, bool durable)
{
	struct inode *ino = h->inode;
	struct txn_write w = {
		.flags = durable ? TXN_DURABLE : 0,
		.set_file = true,
		.file_data = h->data,
		.file_len = h->len,
		/* Else the engine takes the store's time: a write's mtime. */
		.set_mtime = h->mtime_explicit,
		.mtime_ns = h->mtime_ns,
	};
	struct record_attr a;
	struct txn_key k;
	int rc;

	inode_key(ino, &k);
	rc = txn_write(ino->ns, &k, &w, &a);
	if (rc != 0) {
		stats_inc(STAT_fuse_put_failures);
		return rc;
	}
	stats_inc(STAT_fuse_record_puts);
	h->dirty = false;
	h->mtime_explicit = false;
	if (h->limit < h->len)
		h->limit = h->len;
	if (ino->writer == h)
		ino->writer = NULL;
	return 0;
}

/*
 * The content would grow past max-record-size.  Ask the engine anyway: a
 * size change it refuses before storing anything, so the refusal is
 * counted where every write is counted (fail_record_too_big).  Returns the
 * engine's error (-EFBIG).  Inode lock held.
 */
static int
content_refuse_locked(struct inode *ino, uint64_t size)
{
	struct txn_write w = { .flags = TXN_UPDATE_ONLY, .set_size = true, .size = size };
	struct txn_key k;
	int rc;

	if (ino->unlinked)
		return -EFBIG;  /* the name may be another record's by now */
	inode_key(ino, &k);
	rc = txn_write(ino->ns, &k, &w, NULL);
	return rc == 0 || rc == -ENOENT ? -EFBIG : rc;
}

/*
 * A write was refused: drop the handle's unsaved changes, so that close
 * stores nothing and the record keeps its stored content (SPEC 9: bad
 * input loses nothing), and have the next flush report err.  An unlinked
 * file keeps its buffer: it is the only copy.  Inode lock held.
 */
static void
buffer_discard_locked(struct handle *h, int err)
{
	h->error = err;
	if (h->inode->unlinked)
		return;
	h->len = 0;
	h->loaded = false;
	h->dirty = false;
	h->mtime_explicit = false;
	if (h->inode->writer == h)
		h->inode->writer = NULL;
}

/* ---- handles ------------------------------------------------------------------- */

/* How long after its last writer a record's readers still read directly. */
#define WRITERS_SETTLE_NS 1000000000LL

/*
 * Whether writers are at work on ino.  They move the kernel's idea of the
 * file size as they write (and O_TRUNC sets it to 0), and cached reads
 * stop there or read zeros past the version they read; so a reader opened
 * meanwhile reads its snapshot directly and gets exactly one whole stored
 * version.  A second after the last writer the kernel has the stored size
 * again (writes invalidate its attributes, and the next read asks): then
 * readers use the page cache (and shared mmap) again.  Inode lock held.
 */
static bool
writers_active_locked(const struct inode *ino)
{
	for (const struct handle *o = ino->handles; o != NULL; o = o->next)
		if (handle_writable(o))
			return true;
	return ino->writers_gone_ns != 0 &&
	    recfsd_now_ns() - ino->writers_gone_ns < WRITERS_SETTLE_NS;
}

int
handle_open(struct inode *ino, int flags, bool fresh, struct handle **out)
{
	struct handle *h = calloc(1, sizeof(*h));
	bool writable = (flags & O_ACCMODE) != O_RDONLY;
	bool trunc = writable && (flags & O_TRUNC);
	int rc = 0;

	if (h == NULL)
		return -ENOMEM;
	h->kind = HANDLE_RECORD;
	h->inode = ino;
	h->flags = flags;
	h->direct_io = handle_direct_io(flags);
	pthread_mutex_lock(&ino->lock);
	if (ino->unlinked) {
		/*
		 * Replaced or deleted after the kernel looked it up.  A writer
		 * gets ESTALE: the kernel looks the name up again and retries
		 * the open, so it writes the record the name has now.  A reader
		 * reads what the inode kept, or the record its name holds now;
		 * then the kernel's cached size may be another version's, so
		 * its reads bypass the page cache.
		 */
		if (writable) {
			rc = -ESTALE;
			goto out;
		}
		if (ino->snap == NULL || ino->snap->foreign)
			h->direct_io = true;
	}
	if (!writable && !h->direct_io && writers_active_locked(ino))
		h->direct_io = true;
	if (fresh) {
		/* Just created empty: nothing to read. */
		h->loaded = true;
		h->limit = content_limit(ino, NULL);
	}
	if (trunc) {
		h->loaded = true;
		h->len = 0;
		if (h->limit == 0)
			h->limit = content_limit(ino, NULL);
		h->mtime_ns = recfsd_now_ns();
		/* A record created by this open is stored empty already. */
		h->dirty = !fresh;
		if (h->dirty)
			ino->writer = h;
	} else if (!h->direct_io && ino->pages == INODE_PAGES_GEN) {
		struct record_attr a;
		struct txn_key k;

		inode_key(ino, &k);
		if (txn_stat(ino->ns, &k, &a) == 0)
			h->keep_cache = a.generation == ino->page_gen;
	}
	/* Without keep_cache the kernel drops the inode's pages at this open;
	 * handles already open may refill them with their own versions. */
	if (!h->keep_cache)
		ino->pages = ino->handles == NULL ? INODE_PAGES_EMPTY : INODE_PAGES_MIXED;
	h->next = ino->handles;
	if (ino->handles != NULL)
		ino->handles->prev = h;
	ino->handles = h;
out:
	pthread_mutex_unlock(&ino->lock);
	if (rc != 0) {
		free(h);
		return rc;
	}
	inode_hold(ino);
	atomic_inc(&handle_total);
	*out = h;
	return 0;
}

int
handle_open_info(struct inode *ino, int flags, pid_t pid, struct handle **out)
{
	struct handle *h = calloc(1, sizeof(*h));
	int rc;

	if (h == NULL)
		return -ENOMEM;
	h->kind = HANDLE_INFO;
	h->inode = ino;
	h->flags = flags;
	h->direct_io = true;  /* the size is only known once built */
	rc = info_snapshot(ino, &h->text, &h->text_len);
	if (rc != 0) {
		free(h);
		return rc;
	}
	h->opener = pid;
	if ((flags & O_ACCMODE) == O_RDONLY)
		info_reader_open(ino, pid, h->text_len);
	atomic_inc(&handle_total);
	*out = h;
	return 0;
}

static size_t
read_count(size_t len, size_t size, off_t off)
{
	if ((uint64_t)off >= len)
		return 0;
	return len - (size_t)off < size ? len - (size_t)off : size;
}

int
handle_read(fuse_req_t req, struct handle *h, size_t size, off_t off)
{
	struct inode *ino = h->inode;
	struct snapshot *s;
	size_t n;
	int rc;

	if (h->kind == HANDLE_INFO) {
		/* From a copy: the handle may be released the moment the
		 * kernel has the reply, before fuse_reply_buf returns. */
		char *copy;

		n = read_count(h->text_len, size, off);
		copy = malloc(n ? n : 1);
		if (copy == NULL)
			return -ENOMEM;
		if (n > 0)
			memcpy(copy, h->text + off, n);
		stats_add(STAT_fuse_read_bytes, n);
		fuse_reply_buf(req, copy, n);
		free(copy);
		return 0;
	}
	pthread_mutex_lock(&ino->lock);
	if (handle_writable(h)) {
		/* Its own buffer, which its own writes may be changing: reply
		 * under the lock. */
		if (!h->loaded && (rc = buffer_load_locked(h)) != 0) {
			pthread_mutex_unlock(&ino->lock);
			return rc;
		}
		if (!h->direct_io)
			ino->pages = INODE_PAGES_MIXED;  /* unsaved data may enter the cache */
		n = read_count(h->len, size, off);
		stats_add(STAT_fuse_read_bytes, n);
		fuse_reply_buf(req, n ? h->data + off : NULL, n);
		pthread_mutex_unlock(&ino->lock);
		return 0;
	}
	if (h->snap == NULL) {
		rc = snapshot_get_locked(ino, &h->snap);
		if (rc != 0) {
			pthread_mutex_unlock(&ino->lock);
			return rc;
		}
	}
	s = h->snap;
	/* Our own reference across the reply: the kernel may release the
	 * handle as soon as it has the data, before fuse_reply_buf returns. */
	snapshot_hold(s);
	if (!h->direct_io)
		pages_note_read_locked(ino, s->generation);
	pthread_mutex_unlock(&ino->lock);
	/* Immutable: no lock needed to send it; nothing here touches the
	 * handle or the inode after the reply. */
	n = read_count(s->len, size, off);
	stats_add(STAT_fuse_read_bytes, n);
	fuse_reply_buf(req, n ? s->data + off : NULL, n);
	snapshot_put(s);
	return 0;
}

long
handle_write(struct handle *h, const char *buf, size_t size, off_t off)
{
	struct inode *ino = h->inode;
	uint64_t end;
	long rc;

	if (h->kind == HANDLE_INFO)
		return info_write(h, buf, size, off);  /* a configuration file */
	if (!handle_writable(h))
		return -EBADF;
	pthread_mutex_lock(&ino->lock);
	if (!h->loaded && (rc = buffer_load_locked(h)) != 0)
		goto out;
	/* No writeback cache: O_APPEND is ours to honour. */
	if (h->flags & O_APPEND)
		off = (off_t)h->len;
	end = (uint64_t)off + size;
	if (off < 0 || end > content_max(ino)) {
		rc = content_refuse_locked(ino, end);
		buffer_discard_locked(h, (int)rc);
		goto out;
	}
	rc = buffer_reserve(h, (size_t)end);
	if (rc != 0)
		goto out;
	if ((size_t)off > h->len)
		memset(h->data + h->len, 0, (size_t)off - h->len);
	memcpy(h->data + off, buf, size);
	if (end > h->len)
		h->len = (size_t)end;
	h->mtime_ns = recfsd_now_ns();
	h->mtime_explicit = false;
	h->store_error = 0;
	/* An unlinked file keeps its data for its handles, but never stores it. */
	h->dirty = !ino->unlinked;
	ino->writer = h;
	if (!h->direct_io)
		ino->pages = INODE_PAGES_MIXED;  /* the kernel cached unsaved bytes */
	if (end > h->limit && !ino->unlinked) {
		/* Under max-record-size, but maybe not with the record's key and
		 * bins: the engine decides, now, so the write that crosses the
		 * limit is the one that fails. */
		int src = buffer_store_locked(h, false);

		if (src == -EFBIG) {
			buffer_discard_locked(h, src);
			rc = src;
			goto out;
		}
		/* other errors: still dirty, close retries and reports */
	}
	rc = (long)size;
	stats_add(STAT_fuse_write_bytes, size);
out:
	pthread_mutex_unlock(&ino->lock);
	return rc;
}

int
handle_flush(struct handle *h, bool durable)
{
	struct inode *ino = h->inode;
	struct txn_key k;
	int rc = 0;

	if (h->kind == HANDLE_INFO)
		return info_flush(h);
	pthread_mutex_lock(&ino->lock);
	if (h->error != 0) {
		/* A refused write: close(2) must not look like success. */
		rc = h->error;
		h->error = 0;
	} else if (ino->unlinked) {
		rc = 0;
	} else if (h->dirty) {
		rc = buffer_store_locked(h, durable);
		if (rc != 0) {
			/* close(2) reports it; the data is not stored behind the
			 * user's back later (release does not retry), but every
			 * further close of a dup'd descriptor reports it again. */
			h->dirty = false;
			h->store_error = rc;
		}
	} else if (h->store_error != 0) {
		rc = h->store_error;
	} else if (durable) {
		/* Clean: the last store may still sit in a write buffer. */
		inode_key(ino, &k);
		rc = txn_sync(ino->ns, &k);
		if (rc == -ENOENT)
			rc = 0;
	}
	pthread_mutex_unlock(&ino->lock);
	return rc;
}

void
handle_release(struct handle *h)
{
	struct inode *ino = h->inode;

	atomic_dec(&handle_total);
	if (h->kind == HANDLE_INFO) {
		int rc = info_flush(h);

		if (rc != 0)
			log_warn("recfsd", ".info/config/.../%s: value written without close refused: %s",
			    ino->name, recfs_strerror(rc));
		if ((h->flags & O_ACCMODE) == O_RDONLY)
			info_reader_close(ino, h->opener);
		free(h->data);
		free(h->text);
		free(h);
		return;
	}
	pthread_mutex_lock(&ino->lock);
	if (h->dirty && !ino->unlinked) {
		/* Data written after the last close (mmap), a truncation with
		 * nothing written, or a failed close: nobody is left to tell
		 * about a failure. */
		int rc = buffer_store_locked(h, false);

		if (rc != 0)
			log_error("recfsd", "{%s} %.*s/%.*s: unsaved data lost at release: %s",
			    namespace_name(ino->ns), (int)ino->set_len, ino->name, (int)ino->key_len,
			    ino->name + ino->set_len, recfs_strerror(rc));
	}
	if (h->prev != NULL)
		h->prev->next = h->next;
	else
		ino->handles = h->next;
	if (h->next != NULL)
		h->next->prev = h->prev;
	if (handle_writable(h))
		ino->writers_gone_ns = recfsd_now_ns();
	if (ino->writer == h)
		ino->writer = NULL;
	if (h->snap != NULL)
		snapshot_put(h->snap);
	/* Nothing open: keep no copy of the record in memory. */
	if (ino->handles == NULL && ino->snap != NULL) {
		snapshot_put(ino->snap);
		ino->snap = NULL;
	}
	pthread_mutex_unlock(&ino->lock);
	free(h->data);
	free(h);
	inode_put(ino);
}

/* ---- attributes ------------------------------------------------------------------ */

void
handle_attr_adjust_locked(const struct inode *ino, struct record_attr *a)
{
	const struct handle *w = ino->writer;

	if (w != NULL && w->loaded && (w->dirty || ino->unlinked)) {
		a->size = w->len;
		a->mtime_ns = w->mtime_ns;
	}
}

int
handle_attr_locked(struct inode *ino, struct record_attr *out)
{
	struct txn_key k;
	int rc;

	if (ino->unlinked) {
		/* No handle kept it: have the kernel look the name up again. */
		if (ino->orphan == NULL)
			return -ESTALE;
		*out = *ino->orphan;
	} else {
		inode_key(ino, &k);
		rc = txn_stat(ino->ns, &k, out);
		if (rc != 0)
			return rc;
	}
	handle_attr_adjust_locked(ino, out);
	return 0;
}

/* setattr on an unlinked inode: only the kept attributes and buffer change. */
static int
setattr_orphan_locked(struct inode *ino, struct handle *h, const struct txn_write *w,
    struct record_attr *out)
{
	struct record_attr *a = ino->orphan;
	int rc;

	if (a == NULL)
		return -ESTALE;  /* no handle kept it: the kernel looks the name up again */
	if (w->set_size && h != NULL && handle_writable(h)) {
		if (!h->loaded && (rc = buffer_load_locked(h)) != 0)
			return rc;
		rc = buffer_resize(h, (size_t)w->size);
		if (rc != 0)
			return rc;
		ino->writer = h;
	}
	if (w->set_mode)
		a->mode = w->mode & 07777;
	if (w->set_uid)
		a->uid = w->uid;
	if (w->set_gid)
		a->gid = w->gid;
	if (w->set_mtime)
		a->mtime_ns = w->mtime_ns;
	if (w->set_atime)
		a->atime_ns = w->atime_ns;
	a->has_meta = a->has_meta || w->set_mode || w->set_uid || w->set_gid || w->set_mtime ||
	    w->set_atime;
	*out = *a;
	handle_attr_adjust_locked(ino, out);
	return 0;
}

/* Fill in what a first metadata write needs: a record with none shows the
 * daemon's defaults, and the engine would start from others (0644, root). */
static int
setattr_meta_defaults(struct inode *ino, const struct txn_key *k, struct txn_write *w)
{
	struct record_attr cur;
	int rc;

	if (!(w->set_mode || w->set_uid || w->set_gid || w->set_mtime || w->set_atime))
		return 0;
	rc = txn_stat(ino->ns, k, &cur);
	if (rc != 0 || cur.has_meta)
		return rc;
	if (!w->set_mode) {
		w->set_mode = true;
		w->mode = recfsd.file_mode;
	}
	if (!w->set_uid) {
		w->set_uid = true;
		w->uid = recfsd.uid;
	}
	if (!w->set_gid) {
		w->set_gid = true;
		w->gid = recfsd.gid;
	}
	if (!w->set_mtime) {
		w->set_mtime = true;
		w->mtime_ns = cur.mtime_ns;
	}
	return 0;
}

int
handle_setattr(struct inode *ino, struct handle *h, struct txn_write *w, struct record_attr *out)
{
	struct handle *target;
	struct txn_key k;
	int rc;

	if (h != NULL && (h->kind != HANDLE_RECORD || !handle_writable(h)))
		h = NULL;
	pthread_mutex_lock(&ino->lock);
	if (ino->unlinked) {
		rc = setattr_orphan_locked(ino, h, w, out);
		goto out;
	}
	inode_key(ino, &k);
	rc = setattr_meta_defaults(ino, &k, w);
	if (rc != 0)
		goto out;
	if (w->set_size && h != NULL) {
		/* ftruncate: the handle's buffer, stored at its close like a write. */
		if (w->size > content_max(ino)) {
			/* A failed truncate changes nothing, buffer included. */
			rc = content_refuse_locked(ino, w->size);
			goto out;
		}
		if (!h->loaded && (rc = buffer_load_locked(h)) != 0)
			goto out;
		rc = buffer_resize(h, (size_t)w->size);
		if (rc != 0)
			goto out;
		h->dirty = true;
		h->store_error = 0;
		h->mtime_ns = recfsd_now_ns();
		h->mtime_explicit = false;
		ino->writer = h;
		if (!h->direct_io)
			ino->pages = INODE_PAGES_MIXED;
		w->set_size = false;
	}
	/* utimens while data waits for close: the close keeps this mtime
	 * (cp -a writes, sets times, then closes). */
	target = h != NULL ? h : ino->writer;
	if (w->set_mtime && target != NULL && target->dirty) {
		target->mtime_ns = w->mtime_ns;
		target->mtime_explicit = true;
	}
	if (w->set_mode || w->set_uid || w->set_gid || w->set_mtime || w->set_atime ||
	    w->set_size) {
		/* Attributes (and a truncate by path) now; the stored content
		 * otherwise stays as it is. */
		w->flags |= TXN_UPDATE_ONLY;
		rc = txn_write(ino->ns, &k, w, out);
	} else {
		rc = txn_stat(ino->ns, &k, out);
	}
	if (rc == 0)
		handle_attr_adjust_locked(ino, out);
out:
	pthread_mutex_unlock(&ino->lock);
	return rc;
}

/* ---- unlink and rename victims ------------------------------------------------- */

int
handle_orphan_prepare_locked(struct inode *ino)
{
	struct snapshot *s = NULL;
	struct txn_key k;
	int rc;

	if (ino->handles == NULL || ino->unlinked)
		return 0;  /* no open handle: nothing to keep */
	if (ino->orphan == NULL) {
		ino->orphan = malloc(sizeof(*ino->orphan));
		if (ino->orphan == NULL)
			return -ENOMEM;
	}
	inode_key(ino, &k);
	rc = txn_stat(ino->ns, &k, ino->orphan);
	if (rc != 0)
		return rc;
	/* Handles that read nothing yet get the content now: it is going. */
	for (struct handle *h = ino->handles; h != NULL; h = h->next) {
		bool need = handle_writable(h) ? !h->loaded : h->snap == NULL;

		if (!need)
			continue;
		if (s == NULL && (rc = snapshot_get_locked(ino, &s)) != 0)
			return rc;
		if (handle_writable(h)) {
			rc = buffer_fill(h, s);
			if (rc != 0)
				break;
		} else {
			snapshot_hold(s);
			h->snap = s;
		}
	}
	if (s != NULL)
		snapshot_put(s);
	return rc;
}

void
handle_orphan_commit_locked(struct inode *ino)
{
	/* Nothing its handles hold will be stored any more. */
	for (struct handle *h = ino->handles; h != NULL; h = h->next) {
		h->dirty = false;
	}
	inode_unlink_locked(ino);
}

/* ---- shutdown and teardown ------------------------------------------------------- */

struct flush_count {
	unsigned stored, failed;
};

static void
flush_one(struct inode *ino, void *arg)
{
	struct flush_count *n = arg;

	pthread_mutex_lock(&ino->lock);
	for (struct handle *h = ino->handles; h != NULL && !ino->unlinked; h = h->next) {
		int rc;

		if (!h->dirty)
			continue;
		rc = buffer_store_locked(h, false);
		if (rc == 0) {
			n->stored++;
		} else {
			n->failed++;
			log_error("recfsd", "{%s} %.*s/%.*s: unsaved data lost at shutdown: %s",
			    namespace_name(ino->ns), (int)ino->set_len, ino->name, (int)ino->key_len,
			    ino->name + ino->set_len, recfs_strerror(rc));
		}
	}
	pthread_mutex_unlock(&ino->lock);
}

void
handle_flush_all(void)
{
	struct flush_count n = { 0 };

	inode_foreach_record(flush_one, &n);
	if (n.stored > 0)
		log_info("recfsd", "stored %u open files with unsaved data at shutdown", n.stored);
	if (n.failed > 0)
		log_error("recfsd", "%u open files could not be stored at shutdown", n.failed);
}

void
handle_inode_fini(struct inode *ino)
{
	struct handle *h, *next;

	/* At shutdown handles may still be open (the kernel releases nothing
	 * once the session is gone). */
	for (h = ino->handles; h != NULL; h = next) {
		next = h->next;
		if (h->snap != NULL)
			snapshot_put(h->snap);
		free(h->data);
		free(h);
	}
	ino->handles = NULL;
	if (ino->snap != NULL)
		snapshot_put(ino->snap);
	ino->snap = NULL;
}

uint64_t
handle_count(void)
{
	return atomic_load_relaxed(&handle_total);
}
