/*
 * chunkfile.h - the open-file state of a large file: its committed chunk
 * map and its dirty chunks (docs/architecture.md, Large files).
 *
 * A file whose content outgrows one record (handle.c) is kept as a head
 * and chunk records (txn/chunk.h).  Its open-file state holds no copy of
 * the content: only the committed map, the chunks written since the last
 * commit (each a whole chunk buffer, zero past the file's end), the two
 * clean chunks read last (sequential reads fetch each chunk once, and a
 * read spanning two chunks is replied to from both), and up to 6 MiB of
 * chunks fetched ahead of a sequential reader by background threads (kept
 * until the reader is 4 chunks past them).  A
 * write touches only the chunks it covers; a read fetches the chunks it
 * covers.  Dirty chunks are bounded per file (CHUNKFILE_DIRTY_FILE_BYTES)
 * and per daemon (CHUNKFILE_DIRTY_BYTES_MAX): past either bound the file
 * is committed (handle.c), as at close, so a file of any size is written
 * with a few MiB of daemon memory.
 *
 * Not thread-safe: the owner's inode lock protects everything.  Returns
 * are 0 (or a byte count) or a negative engine code.
 */
#ifndef RECFS_FUSE_CHUNKFILE_H
#define RECFS_FUSE_CHUNKFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "txn/chunk.h"

/* Bytes of dirty chunks per file before it is committed (at least 2
 * chunks: a commit at the bound may hold back the one being filled). */
#define CHUNKFILE_DIRTY_FILE_BYTES (8u << 20)
/* Bytes of dirty chunks in the whole daemon before a writer commits its file. */
#define CHUNKFILE_DIRTY_BYTES_MAX (64ull << 20)

struct chunkfile;
struct prefetch;

/* Where a large file lives: its namespace and the head's key. */
struct chunkfile_where {
	struct namespace *ns;
	struct txn_key key;
};

/* A file becoming large: its content so far (len bytes) becomes dirty
 * chunks of chunk_size; committed, the head gets a new file id. */
int chunkfile_from_content(struct chunkfile **out, uint32_t chunk_size, const char *data, size_t len);
/* A large file as its head names it (m copied). */
int chunkfile_from_map(struct chunkfile **out, const struct txn_chunk_map *m);
void chunkfile_free(struct chunkfile *cf);

/* Its chunk size (fixed when the file became large). */
uint32_t chunkfile_chunk_size(const struct chunkfile *cf);
/* Its size, unsaved changes included. */
uint64_t chunkfile_size(const struct chunkfile *cf);
/* Whether it has changes not committed. */
bool chunkfile_dirty(const struct chunkfile *cf);
/* Whether a bound on dirty chunks is reached: commit now. */
bool chunkfile_over_bound(const struct chunkfile *cf);

/* Read up to size bytes at off into buf; returns the count (0 at the end),
 * or an error of txn_chunk_read (-EIO for a chunk that fails its check). */
long chunkfile_read(const struct chunkfile_where *at, struct chunkfile *cf, char *buf, size_t size,
    uint64_t off);
/* The same without a copy: up to CHUNKFILE_IOV_MAX pieces of the file's
 * buffers (dirty or clean chunks, static zeros for holes) into iov (*n_iov
 * of them), valid until the next call on cf (the owner's lock held until
 * the reply is sent).  -E2BIG: the range spans more chunks than that (use
 * chunkfile_read). */
#define CHUNKFILE_IOV_MAX 2
long chunkfile_read_iov(const struct chunkfile_where *at, struct chunkfile *cf, struct iovec *iov,
    unsigned *n_iov, size_t size, uint64_t off);
/*
 * A read of committed chunks without the owner's lock held while it waits
 * and replies: when every chunk of the range is in a slot fetched ahead
 * (or being fetched), chunkfile_read_pin (owner's lock held; the reader's
 * head moves and fetches ahead start as with chunkfile_read_iov) pins
 * those slots and returns the count; then, the lock released,
 * chunkfile_pin_wait waits for their fetches and fills iov (*n_iov pieces)
 * and, once the reply is sent, chunkfile_unpin releases them (a pinned
 * slot is neither reused nor freed: chunkfile_free waits).  -EAGAIN from
 * either: use chunkfile_read_iov under the lock (after chunkfile_unpin).
 * The slots hold the committed chunks the map named at the pin: for a
 * reader's snapshot, which no write changes.
 */
struct chunkfile_pin {
	struct prefetch *slot[CHUNKFILE_IOV_MAX];
	size_t in[CHUNKFILE_IOV_MAX], len[CHUNKFILE_IOV_MAX];
	unsigned n;
};
long chunkfile_read_pin(const struct chunkfile_where *at, struct chunkfile *cf,
    struct chunkfile_pin *pin, size_t size, uint64_t off);
int chunkfile_pin_wait(struct chunkfile_pin *pin, struct iovec *iov, unsigned *n_iov);
void chunkfile_unpin(struct chunkfile_pin *pin);
/* Write size bytes at off (zeros fill a gap); returns size or an error. */
long chunkfile_write(const struct chunkfile_where *at, struct chunkfile *cf, const char *buf,
    size_t size, uint64_t off);
/* Zero [off, off + len) within the file (punch hole). */
int chunkfile_zero(const struct chunkfile_where *at, struct chunkfile *cf, uint64_t off, uint64_t len);
/* Set the size (truncate or extend: the new bytes read as zeros). */
int chunkfile_resize(const struct chunkfile_where *at, struct chunkfile *cf, uint64_t size);
/* Commit the dirty chunks and the head (w: the head's other fields, as
 * txn_chunk_commit takes them).  On failure nothing is dropped: the dirty
 * chunks stay for the next try or for chunkfile_discard. */
int chunkfile_commit(const struct chunkfile_where *at, struct chunkfile *cf, const struct txn_write *w,
    struct record_attr *out);
/* The commit of a file past its bound on dirty chunks (chunkfile_over_bound)
 * while it is written: as chunkfile_commit, except that the chunk a
 * sequential writer is filling (the file's last, past the committed end,
 * where the last write ended) stays dirty, the commit naming the file up
 * to that chunk's start - else that chunk would be stored twice, part-filled
 * now and whole at the next commit.  1: that chunk was held back (the file
 * is still dirty), 0: everything was committed, or an error. */
int chunkfile_commit_bound(const struct chunkfile_where *at, struct chunkfile *cf,
    const struct txn_write *w, struct record_attr *out);
/* Drop the changes since the last commit. */
void chunkfile_discard(struct chunkfile *cf);

/* Wait until no chunk is being fetched ahead in the background (before
 * the namespaces close: a file still open at shutdown is never freed). */
void chunkfile_quiesce(void);

/* Bytes of dirty chunks in the daemon now (a gauge). */
uint64_t chunkfile_dirty_bytes(void);

#endif
