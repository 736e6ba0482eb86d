/*
 * handle.h - open files: put-on-close handles over whole records.
 *
 * SPEC 4: "a handle buffers the whole record; close() (flush) writes it as
 * one record write and returns its error; ... readers see the last
 * completed close."  So:
 *
 *   - a writable handle has its own buffer of the whole content, filled
 *     from the record when first needed (never, with O_TRUNC), changed by
 *     write and ftruncate, stored as one record write at close (flush),
 *     fsync, or a release that still finds unsaved data.  Two writers each
 *     store one whole version; the last close wins.  Reads through a
 *     writable handle see its own writes.
 *   - a read-only handle reads one snapshot of the stored record, taken at
 *     its first read and shared (refcounted, immutable) with the other
 *     readers of the same generation, so every read(2) sees one whole
 *     version, never a writer's half-written buffer.
 *
 * While a writable handle holds unsaved data, stat shows its size and
 * mtime (the last handle that wrote).  When a record is unlinked or
 * replaced, its open handles keep what they had (loaded at that moment if
 * they had nothing yet); nothing they do afterwards is stored.
 *
 * Every function takes the inode lock itself unless it says "locked".
 * Returns are 0 (or a byte count) or a negative engine code.
 */
#ifndef RECFS_FUSE_HANDLE_H
#define RECFS_FUSE_HANDLE_H

#include <fcntl.h>

#include "inode.h"

struct snapshot;

enum handle_kind { HANDLE_RECORD, HANDLE_INFO };

struct handle {
	enum handle_kind kind;
	struct inode *inode;          /* held (nref) while the handle exists */
	int flags;                    /* open(2) flags */
	bool direct_io;               /* for the open reply: bypass the page cache */
	bool keep_cache;              /* for the open reply: cached pages are current */
	struct handle *next, *prev;   /* the inode's record handles; inode lock */
	/* read-only record handles: set once under the inode lock, then read freely */
	struct snapshot *snap;
	/* writable record handles; inode lock: */
	char *data;                   /* len valid bytes, cap allocated */
	size_t len, cap;
	uint64_t limit;               /* largest content that surely fits max-record-size */
	int64_t mtime_ns;             /* last write (or utimens) into data, Unix ns */
	int error;                    /* a refused write (EFBIG), reported by the next flush */
	int store_error;              /* the last store failed (reported by close); cleared by a write */
	bool loaded;                  /* data holds the content (or a new empty one) */
	bool dirty;                   /* data differs from the stored record */
	bool mtime_explicit;          /* mtime_ns set by utimens: stored with the content */
	/* /.info handles: the snapshot built at open (writes to a configuration
	 * file use data, len, cap and dirty above) */
	char *text;
	size_t text_len;
	pid_t opener;                 /* the process that opened it (info_size) */
};

/*
 * Whether a record handle opened with these flags bypasses the page cache.
 * Write-only handles do: the kernel's direct-I/O write path sends no
 * getxattr("security.capability") before each write(2) (one round trip
 * saved per write), and nothing reads through such a handle (mmap needs
 * read access), so no caching is lost.
 */
static inline bool
handle_direct_io(int flags)
{
	return (flags & O_ACCMODE) == O_WRONLY;
}

/*
 * Open a record.  O_TRUNC on a writable open starts an empty buffer marked
 * dirty (": > f" stores an empty record with no write), stored at the first
 * close like any change: readers see the last completed close, and the
 * release that follows a close reaches us asynchronously, too late for a
 * reader that opens right after close(2) returned.  As on a local file
 * system, "cmd > f" whose cmd then fails with EFBIG leaves f empty (the
 * shell closed its first descriptor after dup2, which stored the
 * truncation).
 * fresh = the record was just created empty.  Sets h->direct_io and
 * h->keep_cache for the reply.  Errors: -ESTALE (the record was replaced
 * after the kernel looked it up: the kernel looks again and retries),
 * -ENOENT, -ENOMEM.
 */
int handle_open(struct inode *ino, int flags, bool fresh, struct handle **out);
/* Open a /.info file for process pid: the snapshot is built now and kept
 * in the handle.
 * A dynamic parameter's file may be open for writing (info.h: info_write);
 * its writes collect in data/len/dirty. */
int handle_open_info(struct inode *ino, int flags, pid_t pid, struct handle **out);

/* Reply to a read (loading on first use).  Sends the reply itself on
 * success; returns a negative code otherwise. */
int handle_read(fuse_req_t req, struct handle *h, size_t size, off_t off);
/*
 * Copy data into the handle's buffer at off (end of file with O_APPEND).
 * Returns the count, or -EFBIG when the record would exceed
 * max-record-size: then the handle's unsaved changes are dropped (the
 * stored record stays as it was, nothing is stored at close) and the next
 * flush reports EFBIG again.
 */
long handle_write(struct handle *h, const char *buf, size_t size, off_t off);
/* Store the buffer if dirty (close); durable = fsync: also wait for storage. */
int handle_flush(struct handle *h, bool durable);
/* Last use of a handle: store unsaved data (errors are logged), free it. */
void handle_release(struct handle *h);

/*
 * setattr on a record: mode, owner and mtime are written at once.  A size
 * change through a writable handle (ftruncate: h) changes its buffer and is
 * stored at close like a write; otherwise it is stored at once.  An mtime
 * set while a handle holds unsaved data is also stored with it at close
 * (cp -a writes, sets times, then closes).  *out receives the new
 * attributes.
 */
int handle_setattr(struct inode *ino, struct handle *h, struct txn_write *w,
    struct record_attr *out);

/* Attributes of a record inode for getattr: from the engine, or what was
 * kept at unlink; size and mtime follow unsaved data.  Inode lock held. */
int handle_attr_locked(struct inode *ino, struct record_attr *out);
/* Make listed or looked-up attributes follow unsaved data.  Inode lock held. */
void handle_attr_adjust_locked(const struct inode *ino, struct record_attr *a);

/*
 * The record of ino is about to be deleted or replaced: open handles load
 * what they have not read yet (they keep it), and its attributes are kept.
 * Inode lock held.
 */
int handle_orphan_prepare_locked(struct inode *ino);
/* After the delete succeeded: mark the inode unlinked; nothing of its
 * handles will be stored.  Inode lock held. */
void handle_orphan_commit_locked(struct inode *ino);

/* Store every unsaved buffer (shutdown, after the session loop). */
void handle_flush_all(void);
/* Drop what an inode keeps for its handles (inode teardown). */
void handle_inode_fini(struct inode *ino);
/* Open handles (gauge). */
uint64_t handle_count(void);

#endif
