/*
 * chunk.h - files larger than one record: a head record at the file's name
 * plus chunk records (docs/storage-format.md, Large files).
 *
 * The head is an ordinary record at the file's key: its POSIX metadata, an
 * empty file bin, and the bin TXN_CHUNK_MAP_BIN naming the file id, the
 * size, the chunk size, the commit number and, per chunk, the version that
 * holds it (0: a hole, read as zeros).  Chunk i of version v is the record
 * "/k" + 16 hex file id + "/" + 8 hex i + "." + 8 hex v in the same set,
 * its content in the file bin (up to the chunk size; shorter chunks read as
 * zeros past their end).
 *
 * A commit (txn_chunk_commit) is copy-on-write: the chunks it changes are
 * written under the next commit number (new keys, never a stored chunk
 * overwritten), then the head is rewritten naming them - one record write,
 * so a reader on any node sees either the old map or the new one, each
 * naming chunks that exist - and only then are the replaced versions and
 * the chunks past the new end deleted.  A crash before the head is written
 * leaves the new chunks unnamed; one after it leaves the old ones unnamed:
 * the reclaimer (txn_chunk_reclaim) deletes chunks no head names.
 *
 * Every call goes through the public record calls (txn_read, txn_write,
 * txn_delete), so chunks are routed, proxied, replicated and migrated as
 * every record is: the same code works on one node and in a cluster.
 */
#ifndef RECFS_TXN_CHUNK_H
#define RECFS_TXN_CHUNK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "txn.h"

/* The head's bin holding the map.  Bin names starting with '/' are
 * internal (never an xattr), as internal keys are. */
#define TXN_CHUNK_MAP_BIN RECORD_BIN_CHUNK_MAP
#define TXN_CHUNK_MAP_BIN_LEN 7
/* "/k" + 16 + "/" + 8 + "." + 8 */
#define TXN_CHUNK_KEY_LEN 36

/* The map a head names (decoded; versions owned, n entries). */
struct txn_chunk_map {
	uint64_t file_id;        /* non-zero once committed; 0: not yet */
	uint64_t size;           /* the file's size in bytes */
	uint32_t chunk_size;     /* fixed when the file became large */
	uint32_t commit;         /* commits so far: chunks of commit c have version c */
	uint32_t n;              /* chunks: ceil(size / chunk_size) */
	uint32_t *versions;      /* per chunk, 0 = a hole */
};

/* One changed chunk for a commit: len bytes (<= chunk size; the rest of
 * the chunk, up to the file size, reads as zeros); data NULL: the chunk
 * becomes a hole (its stored version is deleted, none written). */
struct txn_chunk_data {
	uint32_t index;
	uint32_t len;
	const void *data;
};

/* Bytes of a head besides its map: header, set name, key (at most 255),
 * metadata, an empty file bin, the map bin's header, and room for a few
 * small xattrs; the largest file has (max-record-size - this - 32) / 4
 * chunks. */
#define TXN_CHUNK_HEAD_OVERHEAD 600u
/* The largest file of chunk_size chunks ns can hold. */
uint64_t txn_chunk_file_max(const struct namespace *ns, uint32_t chunk_size);

/* Whether a stored record is a head; its map bin, or NULL. */
const struct bin *txn_chunk_map_bin(const struct record *r);
/* Decode a head's map bin.  -EINVAL (logged by the caller) when the bytes
 * are not a well-formed map; -ENOMEM.  Release with txn_chunk_map_free. */
int txn_chunk_map_decode(const void *data, size_t len, struct txn_chunk_map *out);
void txn_chunk_map_free(struct txn_chunk_map *m);
/* A copy of src (versions duplicated). */
int txn_chunk_map_copy(struct txn_chunk_map *dst, const struct txn_chunk_map *src);
/* The key of chunk (id, index, version): out holds TXN_CHUNK_KEY_LEN + 1. */
void txn_chunk_key(char *out, uint64_t id, uint32_t index, uint32_t version);
/* Parse a chunk key; false if key is not one. */
bool txn_chunk_key_parse(const char *key, size_t len, uint64_t *id, uint32_t *index,
    uint32_t *version);

/*
 * Read chunk index of map (the head in set, len bytes) into buf, which has
 * room for map->chunk_size bytes: *got receives the bytes the chunk holds
 * within the file (up to min(chunk size, size - start)); the caller's
 * bytes past what the chunk stored are zeroed.  A hole reads as zeros with
 * no engine call.  -ENOENT: the chunk is gone (a newer commit replaced it:
 * read the head again), RECFS_ECHECKSUM / -EIO (logged here, naming the
 * file's set and chunk), -ENOMEM.
 */
int txn_chunk_read(struct namespace *ns, const char *set, size_t set_len,
    const struct txn_chunk_map *map, uint32_t index, void *buf, size_t *got);

/* The same for chunk (file_id, index, version) without its map: want
 * bytes (the chunk's share of the file; start: its first byte, for the
 * log) into buf.  For a reader that copied what it needs of a map (a
 * prefetch running beside the file's owner). */
int txn_chunk_read_version(struct namespace *ns, const char *set, size_t set_len, uint64_t file_id,
    uint32_t index, uint32_t version, uint64_t start, size_t want, void *buf);

/*
 * The same into a buffer of the caller's own, with no copy when this node
 * stores the chunk: buf (buf_size bytes, aligned to TXN_READ_ALIGN, at
 * least txn_chunk_buf_size(chunk size)) receives the chunk record and
 * *data points at the chunk's bytes inside it, span of them readable
 * (span >= want: zeros past what the chunk stored).  A chunk read from
 * another node (or a record larger than buf) is copied to the start of
 * buf.  Errors as txn_chunk_read_version.
 */
int txn_chunk_read_into(struct namespace *ns, const char *set, size_t set_len, uint64_t file_id,
    uint32_t index, uint32_t version, uint64_t start, size_t want, size_t span, void *buf,
    size_t buf_size, const char **data);
/* Bytes of a buffer for txn_chunk_read_into of chunks of chunk_size: the
 * chunk and its record's header (a multiple of TXN_READ_ALIGN). */
size_t txn_chunk_buf_size(uint32_t chunk_size);

/*
 * Commit a large file at head: the chunks in d (n of them, distinct
 * indexes below ceil(size / chunk size)) are written as commit
 * map->commit + 1, then the head with the map for size (other chunks as
 * they were, those past the end dropped) and w's other fields (flags
 * TXN_DURABLE, set_mtime, set_mode ...: the head's metadata, as a plain
 * write takes them), then the replaced chunks are deleted.  map is the
 * committed map before (file_id 0 for a file becoming large: an id is
 * drawn) and, on success, after.  Nothing changes on failure (chunks
 * already written are unnamed: the reclaimer's).  *out (may be NULL)
 * gets the head's attributes, size the file's.  Errors of txn_write
 * (-EFBIG when the map, with the head's bins, outgrows a record), -EFBIG
 * past txn_chunk_file_max (nothing written), -ENOMEM.
 */
int txn_chunk_commit(struct namespace *ns, const struct txn_key *head, struct txn_chunk_map *map,
    uint64_t size, const struct txn_chunk_data *d, size_t n, const struct txn_write *w,
    struct record_attr *out);

/*
 * Take the map away from the head at k (its chunks stay: the caller owns
 * them now, to drop with txn_chunk_drop and then txn_chunk_release), or
 * give map back to it (the operation that needed it away failed; this
 * ends the hold too).  An unlink or a rename over a large file whose open
 * handles still read it uses them (fuse/handle.c).  From the unmap until
 * the release, this node's reclaimer gather names map's file id (held), so
 * that no node's reclaimer takes the chunks while the handles read them.
 * Errors of txn_write (the hold is then undone), -ENOMEM.
 */
int txn_chunk_unmap(struct namespace *ns, const struct txn_key *k, const struct txn_chunk_map *map);
int txn_chunk_remap(struct namespace *ns, const struct txn_key *k, const struct txn_chunk_map *map);
/* The last handle is gone and the chunks were dropped: file_id is no
 * longer held. */
void txn_chunk_release(struct namespace *ns, uint64_t file_id);

/* Delete every chunk map names (best effort: what fails is left to the
 * reclaimer).  Returns the number deleted. */
unsigned txn_chunk_drop(struct namespace *ns, const char *set, size_t set_len,
    const struct txn_chunk_map *map);

/*
 * One pass of the reclaimer (docs/architecture.md, "Large files"): deletes
 * the chunks this node masters that no head names - older versions a
 * commit left behind, chunks of a commit that never reached its head, of
 * a deleted file - last written before before_ms (last-update time: a
 * commit in progress writes its chunks before its head).  The heads are
 * gathered from every partition's master (this node's own index alone),
 * with the file ids every node's open handles hold; a gather that may have
 * missed one - a node that did not answer, a succession change or a
 * migration not finished anywhere, a map that moved (rename, unlink of an
 * open file) on any node meanwhile - deletes nothing (the next pass tries
 * again; chunk_reclaim_skipped).  Returns the number reclaimed (also
 * counted in chunks_reclaimed) or a negative code.  Runs in the nsup
 * thread.
 */
long txn_chunk_reclaim(struct namespace *ns, uint64_t before_ms);

/* Most bytes one reclaim pass holds of the heads' maps it gathers (256 MiB;
 * tests lower it): past it the page is refused with -E2BIG and the pass is
 * skipped, logged. */
extern size_t txn_chunk_gather_max_bytes;

/* The gather's rpc (RPC_OP_TXN_CHUNKS, remote.c): serve a request of
 * another node's reclaimer (chunk.c encodes and decodes both). */
struct rpc_reply;
int txn_chunk_serve(struct namespace *ns, const uint8_t *req, size_t len, struct rpc_reply *reply);
/* A heads page of the gather (another node's answer to a request from
 * partition from), decoded as the reclaimer does: 0 with the partition the
 * next page starts at, the distinct file ids named and held; -EBADMSG
 * (never reads outside p), -ENOMEM.  For the fuzz target and tests. */
int txn_chunk_page_decode(const uint8_t *p, size_t len, uint32_t from, uint32_t *next,
    size_t *n_ids, size_t *n_held);

#endif
