/*
 * statistic.h - the one table of statistics (docs/statistics.md).
 *
 * Every statistic recfs shows is one row here: name, kind, unit, flags and
 * help.  The /.info files, /.info/metrics (Prometheus), the ticker log line,
 * docs/statistics.md (tools/gen-stats-doc) and the tests all expand these
 * rows; nothing else lists statistic names.  Names follow Aerospike's where
 * the concept is the same (objects, data_used_bytes, client_read_success...).
 *
 * The table is split into sections, one per file that shows them, so that
 * the code producing a section can expand just its rows into a dense enum
 * and a value array (node.c for the engine's, fuse/stats.h for the
 * daemon's).  A statistic a producer does not fill is a bug the unit tests
 * catch: every row of a section must get a value.
 *
 * Row: X(name, KIND, "unit", FLAGS, "help")
 *   KIND   COUNTER (only grows), GAUGE, BOOL (true/false; 1/0 in metrics),
 *          TEXT (a string: version, node id), HISTOGRAM (latencies)
 *   FLAGS  0, or STAT_F_TICK: shown in the ticker line (counters as a rate),
 *          STAT_F_ALIAS: the same value as a row of another section, not
 *          repeated in /.info/metrics
 *
 * No row exists before the engine code that computes its value does.
 */
#ifndef RECFS_BASE_STATISTIC_H
#define RECFS_BASE_STATISTIC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Outcome counters of client transactions: per namespace, and summed over
 * the namespaces in .info/statistics.  The engine's NS_COUNTERS table
 * (namespace.h) must name exactly these (node.c fails to compile if not). */
#define STATISTICS_CLIENT(X) \
	X(client_read_success, COUNTER, "reads", STAT_F_TICK, \
	    "Record reads that returned the record (cat, cp, the first read of an open file).") \
	X(client_read_not_found, COUNTER, "reads", 0, \
	    "Record reads of a record that does not exist (gone between lookup and read).") \
	X(client_read_error, COUNTER, "reads", 0, \
	    "Record reads that failed: storage read error, checksum mismatch, out of memory.") \
	X(client_write_success, COUNTER, "writes", STAT_F_TICK, \
	    "Record writes stored: creates, rewrites at close, truncates, chmod/chown/utimens, xattr changes, renames.") \
	X(client_write_error, COUNTER, "writes", 0, \
	    "Record writes that failed: too big, out of space, storage error.") \
	X(client_delete_success, COUNTER, "deletes", 0, "Records deleted (rm).") \
	X(client_delete_not_found, COUNTER, "deletes", 0, "Deletes of a record that does not exist.") \
	X(client_delete_error, COUNTER, "deletes", 0, \
	    "Deletes that failed (the tombstone could not be stored).") \
	X(client_lookup_success, COUNTER, "lookups", 0, \
	    "Metadata lookups (stat, ls -l) answered from the index, without reading storage.") \
	X(client_lookup_not_found, COUNTER, "lookups", 0, "Metadata lookups of a missing record.") \
	X(client_list_records, COUNTER, "records", 0, "Records returned by directory listings.") \
	X(fail_record_too_big, COUNTER, "writes", 0, \
	    "Writes refused because the record would exceed max-record-size (EFBIG).") \
	X(fail_out_of_space, COUNTER, "writes", 0, "Writes refused for lack of storage space (ENOSPC).") \
	X(fail_key_exists, COUNTER, "writes", 0, \
	    "Create-only writes (O_CREAT|O_EXCL reaching the engine) of a record that exists.") \
	X(fail_stop_writes, COUNTER, "writes", 0, \
	    "Writes and creates refused (ENOSPC) because the namespace was in stop-writes.") \
	X(expired_objects, COUNTER, "records", 0, \
	    "Records nsup reclaimed (durably deleted) after their void time passed.") \
	X(evicted_objects, COUNTER, "records", 0, \
	    "Records nsup evicted, closest to expiry first, to keep used space under evict-used-pct.") \
	X(apply_not_newer, COUNTER, "records", 0, \
	    "Record versions received encoded (replica writes, migration) and not stored because the version here is as new or newer (a retry, or a late copy).") \
	X(set_changes_sent, COUNTER, "messages", 0, \
	    "Set changes (mkdir, rmdir, chmod/chown/touch of a set directory), rmdir and mkdir checks, and set-table pages this node sent to other nodes: one per node.") \
	X(set_changes_received, COUNTER, "messages", 0, \
	    "Set changes, checks and set-table pages received from other nodes.") \
	X(set_changes_failed, COUNTER, "messages", 0, \
	    "Set changes, checks and set-table pages another node did not answer within transaction-max-ms (the operation failed with EIO; the set table is sent again), or did not take because it went down or restarted meanwhile (a change made here then waits for that node to leave the cluster, or sends it again).") \
	X(list_pages_sent, COUNTER, "pages", 0, \
	    "Listing pages (ls of a set or of the namespace directory) asked of other nodes: one per node that masters partitions after the listing's position, per page.") \
	X(list_pages_received, COUNTER, "pages", 0, \
	    "Listing pages other nodes asked of this one (its records in the partitions they name).") \
	X(migrate_msgs_refused, COUNTER, "messages", 0, \
	    "Migration messages refused (logged at debug): another cluster key (a change came in between), or a partition this node does not expect from that node; a message that does not decode is refused and logged.") \
	X(migrate_records_refused, COUNTER, "records", 0, \
	    "Records of migration batches (INSERT) refused one by one: malformed (they fail the record's checks) or of another partition than the batch's; the rest of the batch is applied, and each batch with refusals is logged with partition and sender.") \
	X(migrate_rx_ends_failed, COUNTER, "partitions", 0, \
	    "Ends of a partition's migration from one sender (its last section, or DONE) this node answered with an error because the records received or the partition's version could not be made durable (the sync of the records or the store of the versions failed, logged): the partition stays expected from that sender, which keeps its copy and sends the partition again.") \
	X(migrate_takeover_notices_again, COUNTER, "messages", 0, \
	    "Takeover notices a final master sent again to a member that had not taken the first: it had not rebalanced yet, was busy or not connected (asked again with backoff while the change lasts; until every member took it the partition counts in migrate_partitions_remaining). Without them that member would send the partition's operations to the old working master until the next cluster change.") \
	X(migrate_tx_yields, COUNTER, "pauses", 0, \
	    "Pauses emigration threads of this namespace took after a message because this node served client operations meanwhile (network.migrate-yield-pct): clients get the CPU first.") \
	X(migrate_tx_yield_time, COUNTER, "us", 0, \
	    "Time those pauses lasted, in microseconds: each is migrate-yield-pct of the time the thread worked since its last pause, at most 100 ms.") \
	X(dup_res_run, COUNTER, "operations", 0, \
	    "Operations (stat, read, write, delete, rename) on a partition this node serves as working master before its duplicates' migrations reached it, that asked each duplicate holder for its copy first (duplicate resolution, docs/cluster.md).") \
	X(dup_res_won, COUNTER, "records", 0, \
	    "Copies duplicate holders returned that were newer than this node's (later last-update time, then higher generation) and were applied before the operation ran.") \
	X(dup_res_failed, COUNTER, "operations", 0, \
	    "Duplicate resolutions that failed: a holder that is a member did not answer within transaction-max-ms, or the copy could not be stored; the operation failed with EIO.") \
	X(retries_applied_before, COUNTER, "operations", 0, \
	    "Writes, deletes and renames routed again after their master went down before answering, that this node (the new master) knew their first attempt had applied: answered as that attempt (0), not applied again (docs/cluster.md, Proxy).") \
	X(chunk_reads, COUNTER, "chunks", 0, \
	    "Chunk records of large files read (each serves up to file-chunk-size bytes of reads).") \
	X(chunk_writes, COUNTER, "chunks", 0, \
	    "Chunk records of large files written: the chunks a commit (close, fsync, the dirty-chunk bound) changed.") \
	X(chunk_read_errors, COUNTER, "chunks", 0, \
	    "Chunk reads that failed (checksum, storage error; logged with the chunk's key): that range of the file reads EIO, the rest is served.  One per failed read, whether the reader or a fetch ahead of it read the chunk.") \
	X(chunks_reclaimed, COUNTER, "chunks", 0, \
	    "Chunks no head named (left by a crash during a commit, or by a failed delete), deleted by the background reclaimer: each node deletes those of the partitions it masters.") \
	X(chunk_reclaim_passes, COUNTER, "passes", 0, \
	    "Passes of the chunk reclaimer (at the start and every nsup-period, while this node holds chunks).") \
	X(chunk_reclaim_skipped, COUNTER, "passes", 0, \
	    "Chunk reclaimer passes that deleted nothing because the heads gathered could miss one: a node did not answer, the cluster changed or was migrating, or a large file's map moved (a rename, an unlink of an open file) during the gather; the next pass tries again.")

/* .info/statistics, first part: the engine (txn_node_values). */
#define STATISTICS_NODE(X) \
	X(uptime, GAUGE, "s", 0, "Seconds since the node opened its namespaces.") \
	X(cluster_size, GAUGE, "nodes", 0, "Nodes in the cluster (1 for a single node without network, or an orphan).") \
	X(namespaces, GAUGE, "namespaces", 0, "Configured namespaces.") \
	X(objects, GAUGE, "records", 0, "Live records in all namespaces.") \
	X(tombstones, GAUGE, "records", 0, "Tombstones (durable deletes) in all namespaces.") \
	X(index_used_bytes, GAUGE, "bytes", 0, "RAM held by the primary indexes of all namespaces.") \
	STATISTICS_CLIENT(X) \
	X(system_total_mem_bytes, GAUGE, "bytes", 0, "RAM of the machine.") \
	X(system_free_mem_pct, GAUGE, "%", 0, "Free RAM of the machine (free plus buffers) in percent.") \
	X(process_max_rss_bytes, GAUGE, "bytes", 0, "Peak resident memory of the daemon.")

/* .info/statistics, second part: the FUSE daemon's own counters. */
#define STATISTICS_FUSE(X) \
	X(fuse_lookup, COUNTER, "requests", 0, "FUSE lookup requests (a name resolved).") \
	X(fuse_forget, COUNTER, "inodes", 0, "FUSE forget entries (the kernel dropped an inode).") \
	X(fuse_getattr, COUNTER, "requests", 0, "FUSE getattr requests (stat).") \
	X(fuse_setattr, COUNTER, "requests", 0, "FUSE setattr requests (truncate, chmod, chown, utimens).") \
	X(fuse_mknod, COUNTER, "requests", 0, "FUSE mknod requests.") \
	X(fuse_mkdir, COUNTER, "requests", 0, "FUSE mkdir requests (set creation).") \
	X(fuse_unlink, COUNTER, "requests", 0, "FUSE unlink requests (rm).") \
	X(fuse_rmdir, COUNTER, "requests", 0, "FUSE rmdir requests (set removal).") \
	X(fuse_rename, COUNTER, "requests", 0, "FUSE rename requests (mv).") \
	X(fuse_create, COUNTER, "requests", 0, "FUSE create requests (open with O_CREAT of a new name).") \
	X(fuse_open, COUNTER, "requests", 0, "FUSE open requests.") \
	X(fuse_read, COUNTER, "requests", 0, "FUSE read requests.") \
	X(fuse_write, COUNTER, "requests", 0, "FUSE write requests.") \
	X(fuse_flush, COUNTER, "requests", 0, "FUSE flush requests (close of a writable file).") \
	X(fuse_fsync, COUNTER, "requests", 0, "FUSE fsync requests.") \
	X(fuse_release, COUNTER, "requests", 0, "FUSE release requests (last close of an open file).") \
	X(fuse_opendir, COUNTER, "requests", 0, "FUSE opendir requests.") \
	X(fuse_readdir, COUNTER, "requests", 0, "FUSE readdir requests (listings without attributes).") \
	X(fuse_readdirplus, COUNTER, "requests", 0, "FUSE readdirplus requests (listings with attributes).") \
	X(fuse_releasedir, COUNTER, "requests", 0, "FUSE releasedir requests.") \
	X(fuse_statfs, COUNTER, "requests", 0, "FUSE statfs requests (df).") \
	X(fuse_getxattr, COUNTER, "requests", 0, "FUSE getxattr requests.") \
	X(fuse_setxattr, COUNTER, "requests", 0, "FUSE setxattr requests.") \
	X(fuse_listxattr, COUNTER, "requests", 0, "FUSE listxattr requests.") \
	X(fuse_removexattr, COUNTER, "requests", 0, "FUSE removexattr requests.") \
	X(fuse_other, COUNTER, "requests", 0, \
	    "Other requests: link and symlink (refused), fallocate.") \
	X(fuse_read_bytes, COUNTER, "bytes", 0, "Bytes returned by read requests.") \
	X(fuse_write_bytes, COUNTER, "bytes", 0, "Bytes accepted by write requests.") \
	X(fuse_record_loads, COUNTER, "records", 0, \
	    "Whole records read for open files (a reader's snapshot, a writer's shared state).") \
	X(fuse_record_puts, COUNTER, "records", 0, \
	    "Whole records stored from an open file's shared state (close, fsync, release, flush-max-ms).") \
	X(fuse_put_failures, COUNTER, "records", 0, \
	    "Stores from an open file's shared state that failed.") \
	X(fuse_timed_stores, COUNTER, "records", 0, \
	    "Stores of open files dirty for flush-max-ms (a file kept open and written is stored anyway).") \
	X(fuse_large_commits, COUNTER, "commits", 0, \
	    "Commits of large files (their changed chunks, then their head): at close, fsync, flush-max-ms, or when a file's dirty chunks reach their bound.") \
	X(fuse_dirty_chunk_bytes, GAUGE, "bytes", 0, \
	    "Memory held by dirty chunks of large files open for writing (bounded: a file past 8 MiB of dirty chunks, or any writer past 64 MiB in all, commits).") \
	X(fuse_chunk_prefetches, COUNTER, "chunks", 0, \
	    "Chunks of large files fetched ahead of a sequential reader, in the background, and then used by it.") \
	X(fuse_chunk_read_waits, COUNTER, "chunks", 0, \
	    "Chunks of large files a read request waited for: read from storage by the request itself (the first, or after a jump), or still being fetched ahead when it came (a sequential reader faster than the fetches).") \
	X(fuse_chunk_read_wait_time, COUNTER, "us", 0, \
	    "Time read requests of large files spent waiting for those chunks (fuse_chunk_read_waits).") \
	X(fuse_read_ahead_bytes, GAUGE, "bytes", 0, \
	    "Read-ahead window of the mount as the kernel applies it (its read_ahead_kb in /sys/class/bdi; fuse.read-ahead sets it when recfsd runs as root), 0 if unknown.") \
	X(fuse_readdir_entries, COUNTER, "entries", 0, "Directory entries returned by listings.") \
	X(fuse_not_found, COUNTER, "requests", 0, "Requests answered ENOENT or ENODATA.") \
	X(fuse_errors, COUNTER, "requests", 0, "Requests answered with any other error.") \
	X(fuse_inodes, GAUGE, "inodes", 0, "Inodes the kernel holds (records and set directories).") \
	X(fuse_open_handles, GAUGE, "handles", 0, "Open files (records and .info files).")

/* .info/statistics, third part: the fabric and the heartbeat (all 0 on a
 * node without network.seeds: it opens no socket).  txn_network_values. */
#define STATISTICS_FABRIC(X) \
	X(fabric_sent_bytes, COUNTER, "bytes", 0, "Bytes sent to other nodes over the fabric, frames and handshakes included (with network.tls: before encryption, the TLS handshake not counted).") \
	X(fabric_received_bytes, COUNTER, "bytes", 0, "Bytes received from other nodes over the fabric, frames and handshakes included (with network.tls: after decryption, the TLS handshake not counted).") \
	X(fabric_msgs_sent, COUNTER, "messages", 0, "Authenticated messages sent over the fabric (heartbeat pulses included).") \
	X(fabric_msgs_received, COUNTER, "messages", 0, "Authenticated messages received over the fabric.") \
	X(fabric_connects, COUNTER, "connections", 0, "Fabric connections that completed the handshake (both directions).") \
	X(fabric_connect_failures, COUNTER, "connections", 0, "Outgoing fabric connects that failed (the peer is retried with backoff).") \
	X(fabric_send_queue_full, COUNTER, "messages", 0, "Messages not queued because the peer's send queue was at its bound (back-pressure).") \
	X(fabric_refused_auth, COUNTER, "connections", 0, "Connections dropped because the peer's proof of the cluster secret did not verify (wrong secret).") \
	X(fabric_refused_cluster_name, COUNTER, "connections", 0, "Connections dropped because the peer has another cluster-name.") \
	X(fabric_refused_version, COUNTER, "connections", 0, "Connections dropped because the peer speaks another protocol version.") \
	X(fabric_refused_malformed, COUNTER, "connections", 0, "Connections dropped for a malformed or truncated frame.") \
	X(fabric_refused_oversized, COUNTER, "connections", 0, "Connections dropped for a length prefix above the frame bound.") \
	X(fabric_refused_mac, COUNTER, "connections", 0, "Connections dropped because a frame's MAC did not verify (tampered or replayed).") \
	X(fabric_refused_duplicate_node, COUNTER, "connections", 0, "Connections dropped because the peer claimed this node's id or a connected node's.") \
	X(fabric_refused_timeout, COUNTER, "connections", 0, "Connections dropped because the handshake did not complete in time.") \
	X(fabric_refused_too_many, COUNTER, "connections", 0, "Connections dropped because too many were still unauthenticated.") \
	X(fabric_refused_tls, COUNTER, "connections", 0, "Connections whose TLS handshake failed (network.tls): a peer without TLS, with a certificate of another CA or with none.") \
	X(fabric_refused_by_peer, COUNTER, "connections", 0, "Connections the peer dropped, telling this node why (logged).") \
	X(fabric_closed_ack_timeout, COUNTER, "connections", 0, "Authenticated or handshaking connections closed because nothing sent on them was acknowledged within the ack timeout (the heartbeat timeout: a cut link, or a node dead or not reading; logged as such).") \
	X(fabric_send_queue_dropped, COUNTER, "messages", 0, "Messages queued for a node while it had no connection and dropped when it was reported down (after the grace period): a request its sender has given up on never runs there later, when the node is reachable again.") \
	X(fabric_peers_connected, GAUGE, "nodes", 0, "Nodes with an authenticated fabric connection now.") \
	X(heartbeat_pulses_sent, COUNTER, "pulses", 0, "Heartbeat pulses sent (one per interval per connected node).") \
	X(heartbeat_pulses_received, COUNTER, "pulses", 0, "Heartbeat pulses received and taken.") \
	X(heartbeat_pulses_malformed, COUNTER, "pulses", 0, "Heartbeat pulses refused: bad fields, or a node id that is not the sender's (logged).") \
	X(heartbeat_arrivals, COUNTER, "nodes", 0, "Nodes that became alive (a first pulse, or one after their departure).") \
	X(heartbeat_departures, COUNTER, "nodes", 0, "Nodes declared dead: no pulse for interval-ms x timeout-count, or their notice that they stop.") \
	X(heartbeat_departures_announced, COUNTER, "nodes", 0, "Of heartbeat_departures, nodes declared dead at once by their own notice, sent on a clean stop (unmount, SIGTERM), instead of after the timeout.") \
	X(heartbeat_nodes_known, GAUGE, "nodes", 0, "Other nodes the heartbeat knows, alive or dead (the lines of .info/peers).") \
	X(heartbeat_nodes_alive, GAUGE, "nodes", 0, "Other nodes alive now.") \
	X(rpc_calls, COUNTER, "calls", 0, "Requests this node sent to another node and waited for (proxy, replica writes).") \
	X(rpc_calls_answered, COUNTER, "calls", 0, "Calls that got their answer (busy and no-handler answers included).") \
	X(rpc_calls_timed_out, COUNTER, "calls", 0, "Calls without an answer within their deadline (transaction-max-ms unless the caller gave one).") \
	X(rpc_calls_failed_fast, COUNTER, "calls", 0, "Calls failed before their deadline: the node went down or was never known, or the daemon stopped.") \
	X(rpc_calls_failed_silent, COUNTER, "calls", 0, "Calls failed at once, unsent, because their node is silent: an earlier call to it ran to its deadline with nothing heard from the node meanwhile, and nothing has been heard since.") \
	X(rpc_retransmits, COUNTER, "requests", 0, "Requests sent again because no answer came (after 200 ms, then doubling).") \
	X(rpc_late_answers, COUNTER, "answers", 0, "Answers that matched no waiting call (after its deadline, a second copy) and were dropped.") \
	X(rpc_calls_in_flight, GAUGE, "calls", 0, "Calls waiting for their answer now.") \
	X(rpc_requests_received, COUNTER, "requests", 0, "Requests received from other nodes (copies included).") \
	X(rpc_requests_duplicate, COUNTER, "requests", 0, "Copies of a request already queued, running (dropped) or answered (answered again, not run).") \
	X(rpc_requests_busy, COUNTER, "requests", 0, "Requests refused busy (the caller gets EAGAIN): the worker queue or the table of kept requests was full.") \
	X(rpc_requests_expired, COUNTER, "requests", 0, "Queued requests dropped unrun because their caller's deadline had passed.") \
	X(rpc_requests_inline, COUNTER, "requests", 0, "Requests served on the fabric thread without a worker (a ping, a replica write or a read of a record in memory that found its record lock free).") \
	X(rpc_requests_pending, COUNTER, "requests", 0, "Requests their handler left to answer later: proxied writes on memory storage (on the fabric thread), answered when their replica's acknowledgement is read; migration messages ending partitions (on a bulk worker), answered once the ends are durable.") \
	X(rpc_calls_async, COUNTER, "calls", 0, "Calls whose answer is handled by the thread that reads it, with no thread waiting for it: replica writes of proxied writes served on the fabric thread.") \
	X(rpc_requests_in_progress, GAUGE, "requests", 0, "Requests from other nodes queued or running now.") \
	X(rpc_requests_kept, GAUGE, "requests", 0, "Requests remembered so that a copy never runs twice: queued, running, or answered within 2 x transaction-max-ms.") \
	X(rpc_msgs_malformed, COUNTER, "messages", 0, "Request or answer messages that did not decode (dropped).") \
	X(rpc_requests_stale, COUNTER, "requests", 0, "Requests refused unrun because they were meant for this node's previous process (it restarted after the caller sent the first copy).") \
	X(rpc_calls_peer_restarted, COUNTER, "calls", 0, "Calls failed because the node restarted after their first copy was sent there (it may have run; never sent to the new process). The data path reports EIO.") \
	X(proxy_sent, COUNTER, "requests", 0, "Operations sent to the master of their record (another node), retries after a busy answer included.") \
	X(proxy_completed, COUNTER, "operations", 0, "Proxied operations the master ran and answered (any result, errors such as ENOENT included).") \
	X(proxy_failed, COUNTER, "operations", 0, "Proxied operations that failed without a result: the master was down, or its answer did not decode.") \
	X(proxy_timed_out, COUNTER, "operations", 0, "Proxied operations without an answer within transaction-max-ms (the caller got EIO).") \
	X(proxy_rerouted, COUNTER, "operations", 0, "Proxied operations the node answered not-master (its table had changed): routed again once.") \
	X(proxy_busy, COUNTER, "requests", 0, "Proxied operations the master answered busy (all its workers taken): sent again after 1, 2, 4 ... ms.") \
	X(proxy_received, COUNTER, "requests", 0, "Operations other nodes sent here as the master of their record.") \
	X(replica_writes_sent, COUNTER, "writes", 0, "Record versions this node sent as master to another replica of their partition.") \
	X(replica_writes_acked, COUNTER, "writes", 0, "Replica writes the replica answered OK (applied, or it already had that version or a newer one).") \
	X(replica_writes_failed, COUNTER, "writes", 0, "Replica writes answered with an error or not-a-replica, or failed because the node went down.") \
	X(replica_writes_timed_out, COUNTER, "writes", 0, "Replica writes without an answer within transaction-max-ms (the write failed with EIO; the master keeps its copy).") \
	X(replica_writes_received, COUNTER, "writes", 0, "Record versions received from their master as a replica.") \
	X(replica_writes_applied, COUNTER, "writes", 0, "Received replica writes that were newer than the stored version and were stored.") \
	X(replica_writes_kept_older, COUNTER, "writes", 0, "Received replica writes not stored because the stored version was as new or newer (a retry; answered OK).") \
	X(replica_writes_returned, COUNTER, "writes", 0, "Proxied writes this node mastered whose other replica was the node that sent them: the version went back in the answer, for that node to store (counted there in replica_writes_received), and nowhere else.")

/* .info/build */
#define STATISTICS_BUILD(X) \
	X(version, TEXT, "", 0, "recfs version.") \
	X(fuse_library, TEXT, "", 0, "Version of the libfuse the daemon runs on.")

/* .info/node */
#define STATISTICS_NODE_ID(X) \
	X(node_id, TEXT, "", 0, "This node's id: 16 hex digits (node-id, or generated once and kept).")

/* .info/cluster (docs/cluster.md). */
#define STATISTICS_CLUSTER(X) \
	X(cluster_size, GAUGE, "nodes", STAT_F_ALIAS, \
	    "Nodes in the cluster: the succession list's length (1 for a single node or an orphan).") \
	X(cluster_key, TEXT, "", 0, \
	    "Random id of the current cluster membership, 16 hex digits: a new one whenever it changes (a single node draws one at start; an orphan shows 0000000000000000).") \
	X(cluster_principal, TEXT, "", 0, \
	    "Node id of the principal, the highest node id of the cluster (this node while it is alone; 0000000000000000 for an orphan).") \
	X(cluster_integrity, BOOL, "", 0, \
	    "Every node of the succession list is alive in this node's heartbeat (false for an orphan).") \
	X(cluster_succession, TEXT, "", 0, "Node ids of the cluster, principal first, comma-separated.") \
	X(cluster_name, TEXT, "", 0, "The cluster-name of the configuration.") \
	X(cluster_change_time, TEXT, "", 0, \
	    "When the cluster last changed as this node saw it (UTC, ISO 8601; the start for a single node).") \
	X(cluster_change_cause, TEXT, "", 0, \
	    "Why it last changed: started, formed alone, formed a cluster of N nodes, node N joined, node N left, merged: N nodes joined, orphaned: ....") \
	X(cluster_changes, COUNTER, "changes", 0, \
	    "Succession lists this node installed, orphanings included (0 for a single node without network).") \
	X(cluster_proposals, COUNTER, "proposals", 0, "Succession lists this node proposed as principal.") \
	X(cluster_proposals_aborted, COUNTER, "proposals", 0, \
	    "Proposals of this node that a member rejected or did not answer within a quantum (retried after the next quantum).") \
	X(cluster_nodes_left_out, COUNTER, "nodes", 0, \
	    "Nodes this node, as principal, left out of its proposals because they pulse but answered none of 2 proposals in a row (proposed again every 8 quanta; counted once until they answer).") \
	X(migrate_partitions_remaining, GAUGE, "partitions", 0, \
	    "Migrations of partitions this node still has to send or receive after the last cluster change, all namespaces (migrate_tx_partitions_remaining + migrate_rx_partitions_remaining); 0 once the cluster has settled.")

/* .info/namespace/<ns> (followed there by the namespace's configuration). */
#define STATISTICS_NAMESPACE(X) \
	X(objects, GAUGE, "records", STAT_F_TICK, "Live records (set markers and tombstones excluded).") \
	X(objects_files, GAUGE, "records", 0, \
	    "Live records that are files (counted in objects too): a small file's one record, or a large file's head record.") \
	X(objects_chunks, GAUGE, "records", 0, \
	    "Live chunk records of large files (counted in objects too; docs/storage-format.md, Large files).") \
	X(tombstones, GAUGE, "records", 0, \
	    "Tombstones: records written by deletes on persistent storage so a restart cannot bring them back.") \
	X(objects_directories, GAUGE, "records", 0, \
	    "Live records that are directories inside sets (counted in objects too).") \
	X(objects_links, GAUGE, "records", 0, \
	    "Live records that are symbolic links inside sets (counted in objects too).") \
	X(directory_index_directories, GAUGE, "directories", 0, \
	    "Directories inside sets of which this node's directory index holds entries, tombstones included until they are reclaimed (RAM: 8 to 16 bytes per entry, 48 per directory).") \
	X(index_used_bytes, GAUGE, "bytes", 0, \
	    "RAM of the primary index: fixed tables plus entries with their keys.") \
	X(data_total_bytes, GAUGE, "bytes", 0, "Storage size: files, devices or RAM stripes, headers included.") \
	X(data_used_bytes, GAUGE, "bytes", STAT_F_TICK, "Bytes of live record copies on storage.") \
	X(data_used_pct, GAUGE, "%", 0, "data_used_bytes in percent of data_total_bytes.") \
	X(data_avail_pct, GAUGE, "%", STAT_F_TICK, \
	    "Free write blocks in percent, the least of any file or stripe.") \
	X(total_wblocks, GAUGE, "wblocks", 0, "Write blocks of the storage (headers excluded).") \
	X(free_wblocks, GAUGE, "wblocks", 0, "Free write blocks (free queue plus never used).") \
	X(write_q, GAUGE, "buffers", STAT_F_TICK, \
	    "Device engine: full write buffers waiting for their device write.") \
	X(shadow_write_q, GAUGE, "buffers", 0, \
	    "Memory engine with shadow files: buffers waiting for their shadow file write.") \
	X(defrag_q, GAUGE, "wblocks", STAT_F_TICK, "Write blocks waiting for defragmentation.") \
	X(defrag_reads, COUNTER, "wblocks", 0, "Write blocks defragmented (read to move their live records).") \
	X(defrag_writes, COUNTER, "buffers", 0, "Defrag buffers filled with moved records.") \
	X(defrag_records, COUNTER, "records", 0, "Records moved by defragmentation.") \
	X(storage_writes, COUNTER, "buffers", 0, "Full write buffers written (device) or write blocks filled (memory).") \
	X(partial_writes, COUNTER, "buffers", 0, \
	    "Partly filled buffers written because flush-max-ms passed or a sync asked for them.") \
	X(write_waits, COUNTER, "writes", 0, \
	    "Writes that waited for the write cache to drain or for defrag to free space.") \
	X(storage_reads, COUNTER, "reads", 0, "Record reads from storage (RAM buffers included).") \
	X(cache_read_pct, GAUGE, "%", 0, "Share of storage_reads served from RAM (write buffers, post-write cache).") \
	X(read_errors, COUNTER, "reads", 0, "Storage reads that failed (logged with file and offset).") \
	X(write_errors, COUNTER, "writes", 0, \
	    "Device writes that failed (logged; the device then refuses writes).") \
	X(checksum_errors, COUNTER, "reads", 0, \
	    "Records whose checksum or format did not verify on read (logged with file and offset).") \
	X(damaged_records, GAUGE, "records", 0, \
	    "Records whose newest copy the cold start found damaged (header intact, body not): listed, stat works, reads fail with EIO until overwritten or unlinked (logged with file and offset).") \
	X(cold_start_torn_writes, COUNTER, "records", 0, \
	    "Torn writes the last cold start dropped: after an unclean shutdown, a newest copy with an intact header but a damaged body written within flush-max-ms + 1 s of the device's newest write was never acknowledged as durable; the previous version is kept (none: the record is absent). Logged with file and offset.") \
	X(cold_start_dropped_records, COUNTER, "records", 0, \
	    "Copies the last cold start skipped because their partition's copy had been dropped here (not a replica any more) after they were written, and that were not stored under a regain of the partition since (their regain mark): their bytes were still on the device, they are never loaded and count as free space (docs/cluster.md, Dropping a copy).") \
	X(partition_version_syncs, COUNTER, "syncs", 0, \
	    "Syncs of a storage file for the partition versions (each store of them is durable before it returns: docs/cluster.md, Partition versions). A node that stops being a replica of many partitions at once stores their drops together: one sync for all of them, not one each.") \
	X(partition_version_pages, COUNTER, "pages", 0, \
	    "4 KiB pages of the partition version table written to a storage file's header area (counted once for all the namespace's files). A store of the table writes only the pages whose slots differ from what the files hold since the last write that succeeded (a migration's completed partitions change a few slots), the whole table (32 pages) after a load or a failed write.") \
	X(tombstones_reclaimed, COUNTER, "records", 0, \
	    "Tombstones dropped by the tomb raider once no older copy remained on storage (in a cluster: by the partition's master, and by each replica at its request).") \
	X(tomb_raider_passes, COUNTER, "passes", 0, "Tomb raider passes over the storage.") \
	X(tomb_reclaims_sent, COUNTER, "requests", 0, \
	    "Tombstone reclaims this node sent as master to the other replicas of the partition (one per replica).") \
	X(tomb_reclaims_refused, COUNTER, "tombstones", 0, \
	    "Tombstones this node as master kept because a replica kept its copy (not yet checked by its tomb raider, or an older copy on its storage) or did not answer; asked again after the next pass.") \
	X(tomb_reclaims_received, COUNTER, "requests", 0, \
	    "Tombstone reclaims received from a partition's master as a replica.") \
	X(stop_writes, BOOL, "", STAT_F_TICK, \
	    "Writes and creates fail with ENOSPC: used >= stop-writes-used-pct or available < stop-writes-avail-pct.") \
	X(hwm_breached, BOOL, "", 0, "Used space is above evict-used-pct: nsup evicts.") \
	X(evict_void_time, GAUGE, "s", 0, \
	    "Void time (s since 2010-01-01) below which the last eviction removed records; 0 = none yet.") \
	X(nsup_cycle_duration, GAUGE, "ms", 0, "Duration of nsup's last expiration and eviction pass.") \
	X(effective_replication_factor, GAUGE, "copies", 0, \
	    "Copies of each record the cluster keeps now: replication-factor, capped at the nodes in the cluster (1 for a single node).") \
	X(master_partitions, GAUGE, "partitions", 0, \
	    "Partitions of the namespace (of 4096) this node is the master of.") \
	X(prole_partitions, GAUGE, "partitions", 0, \
	    "Partitions this node holds as a replica other than the master (Aerospike's prole).") \
	X(migrate_tx_partitions_initial, GAUGE, "partitions", 0, \
	    "Migrations (a partition to one node) this node had to send after the last cluster change.") \
	X(migrate_tx_partitions_remaining, GAUGE, "partitions", STAT_F_TICK, \
	    "Of those, not yet sent and acknowledged.") \
	X(migrate_tx_partitions_active, GAUGE, "partitions", 0, "Migrations being sent now.") \
	X(migrate_rx_partitions_initial, GAUGE, "partitions", 0, \
	    "Migrations (a partition from one node) this node had to receive after the last cluster change.") \
	X(migrate_rx_partitions_remaining, GAUGE, "partitions", STAT_F_TICK, \
	    "Of those, not yet received completely.") \
	X(migrate_rx_partitions_active, GAUGE, "partitions", 0, \
	    "Migrations being received now (at most network.migrate-max-num-incoming for all namespaces).") \
	X(migrate_records_transmitted, COUNTER, "records", 0, \
	    "Records and tombstones sent to other nodes by migrations.") \
	X(migrate_records_received, COUNTER, "records", 0, \
	    "Records and tombstones received from other nodes by migrations and applied by the conflict rule (a copy older than the one here is received but not stored).") \
	X(migrate_fresh_partitions, GAUGE, "partitions", 0, \
	    "Partitions of this node that no node held data of at the last rebalance: its replicas took the new version at once, nothing to migrate.") \
	STATISTICS_CLIENT(X)

/* .info/sets/<ns>/<set> */
#define STATISTICS_SET(X) \
	X(objects, GAUGE, "records", 0, "Live records of the set.") \
	X(tombstones, GAUGE, "records", 0, "Tombstones of the set's deleted records.") \
	X(data_used_bytes, GAUGE, "bytes", 0, "Bytes the set's records occupy on storage.")

/* .info/latencies, per namespace: the transactions (txn.h) by operation. */
#define STATISTICS_LATENCY_NS(X) \
	X(read, HISTOGRAM, "us", 0, "Record reads (txn_read): lock, index, storage read, checksum, decode.") \
	X(write, HISTOGRAM, "us", 0, "Record writes (txn_write), durable ones included.") \
	X(delete, HISTOGRAM, "us", 0, "Record deletes (txn_delete).") \
	X(rename, HISTOGRAM, "us", 0, "Record renames (txn_rename).") \
	X(lookup, HISTOGRAM, "us", 0, "Metadata lookups from the index (txn_stat).") \
	X(list, HISTOGRAM, "us", 0, "Listing batches (txn_list, up to 64 records each).")

/* .info/latencies, the daemon: one FUSE request, from its arrival in the
 * daemon to its reply. */
#define STATISTICS_LATENCY_FUSE(X) \
	X(lookup, HISTOGRAM, "us", 0, "FUSE lookup.") \
	X(getattr, HISTOGRAM, "us", 0, "FUSE getattr.") \
	X(setattr, HISTOGRAM, "us", 0, "FUSE setattr.") \
	X(mknod, HISTOGRAM, "us", 0, "FUSE mknod.") \
	X(mkdir, HISTOGRAM, "us", 0, "FUSE mkdir.") \
	X(unlink, HISTOGRAM, "us", 0, "FUSE unlink.") \
	X(rmdir, HISTOGRAM, "us", 0, "FUSE rmdir.") \
	X(rename, HISTOGRAM, "us", 0, "FUSE rename.") \
	X(create, HISTOGRAM, "us", 0, "FUSE create (the empty record is stored).") \
	X(open, HISTOGRAM, "us", 0, "FUSE open.") \
	X(read, HISTOGRAM, "us", 0, "FUSE read (the first one loads the record).") \
	X(write, HISTOGRAM, "us", 0, "FUSE write (into the open file's buffer).") \
	X(flush, HISTOGRAM, "us", 0, "FUSE flush (close: the record is stored).") \
	X(fsync, HISTOGRAM, "us", 0, "FUSE fsync (stored and durable).") \
	X(release, HISTOGRAM, "us", 0, "FUSE release.") \
	X(opendir, HISTOGRAM, "us", 0, "FUSE opendir.") \
	X(readdir, HISTOGRAM, "us", 0, "FUSE readdir.") \
	X(readdirplus, HISTOGRAM, "us", 0, "FUSE readdirplus.") \
	X(releasedir, HISTOGRAM, "us", 0, "FUSE releasedir.") \
	X(statfs, HISTOGRAM, "us", 0, "FUSE statfs.") \
	X(getxattr, HISTOGRAM, "us", 0, "FUSE getxattr.") \
	X(setxattr, HISTOGRAM, "us", 0, "FUSE setxattr.") \
	X(listxattr, HISTOGRAM, "us", 0, "FUSE listxattr.") \
	X(removexattr, HISTOGRAM, "us", 0, "FUSE removexattr.")

/* .info/latencies, the node's requests to other nodes (rpc). */
#define STATISTICS_LATENCY_FABRIC(X) \
	X(rpc, HISTOGRAM, "us", 0, "Requests to another node that got an answer, from the first send to the answer.")

/* X(SECTION, sub-table, "file", "metric prefix", "what it is") */
#define STATISTICS_SECTIONS(X) \
	X(NODE, STATISTICS_NODE, "statistics", "recfs_", \
	    "Node statistics from the engine; client_* are the sums over the namespaces.") \
	X(FUSE, STATISTICS_FUSE, "statistics", "recfs_", \
	    "The FUSE daemon's counters, after the engine's in the same file.  Requests on " \
	    "the `.info` tree are not counted (a refused one still counts in fuse_errors), " \
	    "so reading statistics does not change them.") \
	X(FABRIC, STATISTICS_FABRIC, "statistics", "recfs_", \
	    "The fabric's totals and the heartbeat, after the daemon's counters in the same " \
	    "file; per node in `.info/peers` (docs/cluster.md).  All 0 on a node without " \
	    "`network.seeds`.") \
	X(BUILD, STATISTICS_BUILD, "build", "recfs_", "What is running.") \
	X(NODE_ID, STATISTICS_NODE_ID, "node", "recfs_", "Who this node is.") \
	X(CLUSTER, STATISTICS_CLUSTER, "cluster", "recfs_", \
	    "The cluster as this node sees it: a single node without network is its own principal.") \
	X(NAMESPACE, STATISTICS_NAMESPACE, "namespace/<ns>", "recfs_namespace_", \
	    "One file per namespace; after the statistics come the namespace's effective " \
	    "configuration parameters (see configuration.md).  Metrics carry a namespace label.") \
	X(SET, STATISTICS_SET, "sets/<ns>/<set>", "recfs_set_", \
	    "One file per set.  Metrics carry namespace and set labels.") \
	X(LATENCY_NS, STATISTICS_LATENCY_NS, "latencies", "recfs_namespace_", \
	    "Per namespace and operation, as `{<ns>}-<op>.<field>` lines.") \
	X(LATENCY_FUSE, STATISTICS_LATENCY_FUSE, "latencies", "recfs_fuse_", \
	    "Per FUSE request type, as `fuse-<op>.<field>` lines; requests on the `.info` " \
	    "tree are left out.") \
	X(LATENCY_FABRIC, STATISTICS_LATENCY_FABRIC, "latencies", "recfs_fabric_", \
	    "Requests to other nodes, as `fabric-<op>.<field>` lines (count 0 on a node " \
	    "without `network.seeds`).")

enum stat_kind { STAT_COUNTER, STAT_GAUGE, STAT_BOOL, STAT_TEXT, STAT_HISTOGRAM };

#define STAT_F_TICK  0x01u   /* in the ticker line */
#define STAT_F_ALIAS 0x02u   /* same value as another section's row: no metric */

enum stat_section {
#define X(sec, table, file, prefix, what) STAT_SECTION_##sec,
	STATISTICS_SECTIONS(X)
#undef X
	STAT_SECTION_COUNT
};

/* Dense per-section ids: STAT_NS_objects, STAT_NODE_uptime, ... (the
 * daemon's FUSE ids are in fuse/stats.h).  Value arrays are indexed by them. */
enum stat_node {
#define X(name, kind, unit, flags, help) STAT_NODE_##name,
	STATISTICS_NODE(X)
#undef X
	STAT_NODE_COUNT
};
enum stat_fabric {
#define X(name, kind, unit, flags, help) STAT_FABRIC_##name,
	STATISTICS_FABRIC(X)
#undef X
	STAT_FABRIC_COUNT
};
enum stat_ns {
#define X(name, kind, unit, flags, help) STAT_NS_##name,
	STATISTICS_NAMESPACE(X)
#undef X
	STAT_NS_COUNT
};
enum stat_set {
#define X(name, kind, unit, flags, help) STAT_SET_##name,
	STATISTICS_SET(X)
#undef X
	STAT_SET_COUNT
};
enum stat_latency_ns {
#define X(name, kind, unit, flags, help) STAT_LAT_NS_##name,
	STATISTICS_LATENCY_NS(X)
#undef X
	STAT_LAT_NS_COUNT
};
enum stat_latency_fabric {
#define X(name, kind, unit, flags, help) STAT_LAT_FABRIC_##name,
	STATISTICS_LATENCY_FABRIC(X)
#undef X
	STAT_LAT_FABRIC_COUNT
};
enum stat_latency_fuse {
#define X(name, kind, unit, flags, help) STAT_LAT_FUSE_##name,
	STATISTICS_LATENCY_FUSE(X)
#undef X
	STAT_LAT_FUSE_COUNT
};

struct statistic {
	const char *name;
	enum stat_section section;
	enum stat_kind kind;
	const char *unit;
	unsigned flags;
	const char *help;
};

struct stat_section_info {
	const char *name;        /* "NAMESPACE" */
	const char *file;        /* under /.info: "namespace/<ns>" */
	const char *prefix;      /* of its metric names: "recfs_namespace_" */
	const char *what;
};

/* The rows of one section, in table order (index = the section's enum). */
const struct statistic *statistic_rows(enum stat_section s, size_t *n);
const struct stat_section_info *statistic_section(enum stat_section s);
/* A section by name ("NAMESPACE"), or -1. */
int statistic_section_find(const char *name);
/* Prometheus type of a row ("counter", "gauge", "histogram"). */
const char *statistic_metric_type(const struct statistic *row);

/* A row's Prometheus family name: the section's prefix, the row's name and
 * the suffixes of Prometheus's conventions (_total for counters, _seconds,
 * _bytes, _ratio for percentages, _info for TEXT, _latency_seconds for
 * histograms); and a numeric row's sample value in that family's unit
 * (percent / 100, ms / 1000). */
void statistic_metric_name(const struct statistic *row, const struct stat_section_info *si,
    char *buf, size_t size);
void statistic_metric_value(const struct statistic *row, uint64_t value, char *buf, size_t size);

/* A numeric row's value as the .info files show it: decimal, or
 * true/false for BOOL rows. */
void statistic_format(const struct statistic *row, uint64_t value, char *buf, size_t size);

/* docs/statistics.md, from the table. */
void statistic_write_markdown(FILE *out);

#endif
