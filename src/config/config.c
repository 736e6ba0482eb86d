/*
 * config.c - the parameter table, the YAML loader, and everything that is
 * generated from the table: defaults, validation, --check-config output,
 * the /.info/config text accessors and docs/configuration.md.
 *
 * Why one table: Aerospike spreads a knob over a parser case, a default, an
 * info setter and the docs, and they drift apart.  Here a parameter is one
 * row of CONFIG_TABLE below and every consumer loops over the rows.  The
 * table is an X-macro so that one list expands into both the public
 * struct config_param array (config.h) and a private array of what only
 * this file needs (field size, extra check) without widening the public
 * struct that other modules code against.
 *
 * The loader uses libyaml's document API: the whole (small) file becomes a
 * node tree with line marks, which we walk against the table.  The event
 * API was rejected: it would make us keep our own stack of open mappings
 * just to report "namespaces[1].storage-engine.filesize" with a line.
 *
 * Rejected: resolving relative paths against the work directory (a daemon
 * that chdir("/")s makes them a trap; we require absolute paths instead),
 * and accepting a bare scalar where a list is expected (one spelling is
 * easier to validate and to print back).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "../base/atomic.h"
#include "../base/error.h"
#include "../base/log.h"
#include "config.h"

/* A parsed value, before it is stored into its field. */
struct config_value {
	uint64_t u;                 /* BOOL, UINT, SIZE, MODE, ENUM index */
	double d;                   /* DOUBLE */
	char s[CONFIG_PATH_MAX];    /* STRING, ENUM name, one LIST entry */
};

typedef int (*config_check_fn)(const struct config_param *p, const struct config_value *v,
    char *why, size_t why_size);

/* What only this file needs about a row. */
struct config_extra {
	size_t size;                /* sizeof the field: u32 vs u64, char array length */
	config_check_fn check;      /* extra rule beyond type and range, or NULL */
};

static int check_ns_name(const struct config_param *, const struct config_value *, char *, size_t);
static int check_bin_name(const struct config_param *, const struct config_value *, char *, size_t);
static int check_node_id(const struct config_param *, const struct config_value *, char *, size_t);
static int check_abs_path(const struct config_param *, const struct config_value *, char *, size_t);
static int check_log_file(const struct config_param *, const struct config_value *, char *, size_t);
static int check_seed(const struct config_param *, const struct config_value *, char *, size_t);
static int check_power_of_2(const struct config_param *, const struct config_value *, char *, size_t);
static int check_record_size(const struct config_param *, const struct config_value *, char *, size_t);
static int check_chunk_size(const struct config_param *, const struct config_value *, char *, size_t);

#define K_ 1024ULL
#define M_ (1024ULL * K_)
#define G_ (1024ULL * M_)
#define T_ (1024ULL * G_)

/*
 * The table.  ROW(struct, field, check, designated initializers...).
 * Rows print, load and document in this order.  For STRING rows min/max
 * bound the length; for LIST rows they bound the number of entries.
 * A NULL default means "no default": required (name, type) or unset (0).
 */
#define CONFIG_TABLE(ROW) \
	ROW(recfs_config, cluster_name, NULL, \
	    .name = "cluster-name", .section = CONFIG_SERVICE, .type = CONFIG_STRING, \
	    .default_text = "recfs", .min = 1, .max = 63, .unit = "", \
	    .help = "Name of the cluster; a peer announcing another name is refused.") \
	ROW(recfs_config, node_id, check_node_id, \
	    .name = "node-id", .section = CONFIG_SERVICE, .type = CONFIG_STRING, \
	    .default_text = "auto", .min = 4, .max = 16, .unit = "", \
	    .help = "This node's id: 16 hex digits, or auto (generated once and kept in the work directory).") \
	ROW(recfs_config, work_directory, check_abs_path, \
	    .name = "work-directory", .section = CONFIG_SERVICE, .type = CONFIG_STRING, \
	    .default_text = "/var/lib/recfs", .min = 1, .max = CONFIG_PATH_MAX - 1, .unit = "", \
	    .help = "Absolute path of the directory for the node id and the default namespace's storage. " \
	    "The default is /var/lib/recfs for root, else $XDG_DATA_HOME/recfs (~/.local/share/recfs).") \
	ROW(recfs_config, ticker_interval, NULL, \
	    .name = "ticker-interval", .section = CONFIG_SERVICE, .type = CONFIG_UINT, \
	    .default_text = "10", .min = 0, .max = 86400, .unit = "s", .dynamic = true, \
	    .help = "Seconds between summary lines in the log; 0 = off.") \
	ROW(recfs_config, transaction_max_ms, NULL, \
	    .name = "transaction-max-ms", .section = CONFIG_SERVICE, .type = CONFIG_UINT, \
	    .default_text = "1000", .min = 10, .max = 600000, .unit = "ms", .dynamic = true, \
	    .help = "Deadline of a request to another node (proxy, replica write): past it the " \
	    "operation fails; answers are kept twice as long so a retried request never runs twice.") \
	ROW(recfs_config, lock_wait, NULL, \
	    .name = "lock-wait", .section = CONFIG_SERVICE, .type = CONFIG_UINT, \
	    .default_text = "30", .min = 0, .max = 3600, .unit = "s", \
	    .help = "At start, how long to wait for a recfsd that is still shutting down on the same " \
	    "work directory or storage (a restart right after fusermount3 -u); a store held by a " \
	    "recfsd that is not shutting down is refused at once.") \
	ROW(recfs_config, log_file, check_log_file, \
	    .name = "file", .section = CONFIG_LOGGING, .type = CONFIG_STRING, \
	    .default_text = "stderr", .min = 1, .max = CONFIG_PATH_MAX - 1, .unit = "", \
	    .help = "Where the log goes: stderr, syslog, or an absolute file path (reopened on SIGHUP).") \
	ROW(recfs_config, log_level, NULL, \
	    .name = "level", .section = CONFIG_LOGGING, .type = CONFIG_ENUM, \
	    .default_text = "info", .choices = "error|warn|info|debug", .unit = "", .dynamic = true, \
	    .help = "Least severe level written to the log.") \
	ROW(recfs_config, fuse_threads, NULL, \
	    .name = "threads", .section = CONFIG_FUSE, .type = CONFIG_UINT, \
	    .default_text = "16", .min = 1, .max = 1024, .unit = "", \
	    .help = "Most threads serving FUSE requests at once.") \
	ROW(recfs_config, read_ahead, NULL, \
	    .name = "read-ahead", .section = CONFIG_FUSE, .type = CONFIG_SIZE, \
	    .default_text = "1M", .min = 0, .max = 64 * M_, .unit = "bytes", \
	    .help = "Read-ahead window of the mount: the kernel reads this far ahead of a sequential " \
	    "reader, in requests of up to 1 MiB (the kernel's own default is 128 KiB). Set at mount " \
	    "time in /sys/class/bdi/MAJOR:MINOR/read_ahead_kb, which only root may write; " \
	    "0 = leave the kernel's. Above 2M the requests in flight outrun the 4 chunks recfsd " \
	    "keeps behind a large file's reader: some chunks are read twice.") \
	ROW(recfs_config, attr_timeout, NULL, \
	    .name = "attr-timeout", .section = CONFIG_FUSE, .type = CONFIG_DOUBLE, \
	    .default_text = "1.0", .min = 0, .max = 3600, .unit = "s", \
	    .help = "How long the kernel may cache file attributes.") \
	ROW(recfs_config, entry_timeout, NULL, \
	    .name = "entry-timeout", .section = CONFIG_FUSE, .type = CONFIG_DOUBLE, \
	    .default_text = "1.0", .min = 0, .max = 3600, .unit = "s", \
	    .help = "How long the kernel may cache name lookups.") \
	ROW(recfs_config, file_mode, NULL, \
	    .name = "file-mode", .section = CONFIG_FUSE, .type = CONFIG_MODE, \
	    .default_text = "0644", .min = 0, .max = 07777, .unit = "", \
	    .help = "Octal mode of records that have no stored mode.") \
	ROW(recfs_config, dir_mode, NULL, \
	    .name = "dir-mode", .section = CONFIG_FUSE, .type = CONFIG_MODE, \
	    .default_text = "0755", .min = 0, .max = 07777, .unit = "", \
	    .help = "Octal mode of namespace directories, and of sets with no stored mode.") \
	ROW(recfs_config, fabric_address, NULL, \
	    .name = "fabric.address", .section = CONFIG_NETWORK, .type = CONFIG_STRING, \
	    .default_text = "127.0.0.1", .min = 1, .max = 63, .unit = "", \
	    .help = "Address the fabric (node to node) socket listens on.") \
	ROW(recfs_config, fabric_port, NULL, \
	    .name = "fabric.port", .section = CONFIG_NETWORK, .type = CONFIG_UINT, \
	    .default_text = "3001", .min = 1, .max = 65535, .unit = "", \
	    .help = "TCP port of the fabric socket.") \
	ROW(recfs_config, seeds, check_seed, \
	    .name = "seeds", .section = CONFIG_NETWORK, .type = CONFIG_LIST, \
	    .min = 0, .max = CONFIG_SEEDS_MAX, .unit = "", \
	    .help = "Peers to contact at start, as host:port; needs cluster-secret-file.") \
	ROW(recfs_config, heartbeat_interval_ms, NULL, \
	    .name = "heartbeat.interval-ms", .section = CONFIG_NETWORK, .type = CONFIG_UINT, \
	    .default_text = "150", .min = 10, .max = 60000, .unit = "ms", \
	    .help = "Interval between heartbeats sent to each peer.") \
	ROW(recfs_config, heartbeat_timeout_count, NULL, \
	    .name = "heartbeat.timeout-count", .section = CONFIG_NETWORK, .type = CONFIG_UINT, \
	    .default_text = "10", .min = 3, .max = 1000, .unit = "", \
	    .help = "Missed heartbeats after which a peer is considered dead.") \
	ROW(recfs_config, cluster_secret_file, check_abs_path, \
	    .name = "cluster-secret-file", .section = CONFIG_NETWORK, .type = CONFIG_STRING, \
	    .default_text = "", .min = 0, .max = CONFIG_PATH_MAX - 1, .unit = "", \
	    .help = "Absolute path of the file holding the shared secret that authenticates fabric " \
	    "traffic (HMAC); empty = no peers.") \
	ROW(recfs_config, tls_certificate, check_abs_path, \
	    .name = "tls.certificate", .section = CONFIG_NETWORK, .type = CONFIG_STRING, \
	    .default_text = "", .min = 0, .max = CONFIG_PATH_MAX - 1, .unit = "", \
	    .help = "Absolute path of this node's PEM certificate (chain) for the fabric over TLS 1.3; " \
	    "with tls.key and tls.ca, every fabric connection runs TLS with certificates on both " \
	    "sides. Empty = no TLS.") \
	ROW(recfs_config, tls_key, check_abs_path, \
	    .name = "tls.key", .section = CONFIG_NETWORK, .type = CONFIG_STRING, \
	    .default_text = "", .min = 0, .max = CONFIG_PATH_MAX - 1, .unit = "", \
	    .help = "Absolute path of the PEM private key of tls.certificate.") \
	ROW(recfs_config, tls_ca, check_abs_path, \
	    .name = "tls.ca", .section = CONFIG_NETWORK, .type = CONFIG_STRING, \
	    .default_text = "", .min = 0, .max = CONFIG_PATH_MAX - 1, .unit = "", \
	    .help = "Absolute path of the PEM CA certificate(s) a peer's certificate must be signed by; " \
	    "a peer without TLS or with another CA's certificate is refused (fabric_refused_tls).") \
	ROW(recfs_config, migrate_threads, NULL, \
	    .name = "migrate-threads", .section = CONFIG_NETWORK, .type = CONFIG_UINT, \
	    .default_text = "1", .min = 0, .max = 8, .unit = "", .dynamic = true, \
	    .help = "Threads sending partitions to the nodes that must receive them after a cluster " \
	    "change (migration); 0 pauses sending.") \
	ROW(recfs_config, migrate_max_num_incoming, NULL, \
	    .name = "migrate-max-num-incoming", .section = CONFIG_NETWORK, .type = CONFIG_UINT, \
	    .default_text = "4", .min = 0, .max = 256, .unit = "", .dynamic = true, \
	    .help = "Partitions this node receives at once; a sender past it tries again later; " \
	    "0 pauses receiving.") \
	ROW(recfs_config, migrate_yield_pct, NULL, \
	    .name = "migrate-yield-pct", .section = CONFIG_NETWORK, .type = CONFIG_UINT, \
	    .default_text = "300", .min = 0, .max = 1000, .unit = "%", .dynamic = true, \
	    .help = "While this node serves client operations, an emigration thread pauses after each " \
	    "message it sends for this percent of the time it worked since its last pause (at most " \
	    "100 ms a pause): clients get the CPU first, and each thread still works at least " \
	    "100/(100+N) of the time. 0 = no pause.") \
	ROW(ns_config, name, check_ns_name, \
	    .name = "name", .section = CONFIG_NAMESPACE, .type = CONFIG_STRING, \
	    .min = 1, .max = CONFIG_NAME_MAX, .unit = "", \
	    .help = "Required. Namespace name ([A-Za-z0-9_-]); also its directory in the mount.") \
	ROW(ns_config, replication_factor, NULL, \
	    .name = "replication-factor", .section = CONFIG_NAMESPACE, .type = CONFIG_UINT, \
	    .default_text = "1", .min = 1, .max = 32, .unit = "", \
	    .help = "Copies of each record in the cluster (capped at the cluster size).") \
	ROW(ns_config, default_ttl, NULL, \
	    .name = "default-ttl", .section = CONFIG_NAMESPACE, .type = CONFIG_UINT, \
	    .default_text = "0", .min = 0, .max = 315360000, .unit = "s", .dynamic = true, \
	    .help = "Time to live of records written without one; 0 = never expire. Needs nsup-period > 0.") \
	ROW(ns_config, nsup_period, NULL, \
	    .name = "nsup-period", .section = CONFIG_NAMESPACE, .type = CONFIG_UINT, \
	    .default_text = "120", .min = 0, .max = 86400, .unit = "s", .dynamic = true, \
	    .help = "Seconds between expiration and eviction passes; 0 = off.") \
	ROW(ns_config, chunk_reclaim_age, NULL, \
	    .name = "chunk-reclaim-age", .section = CONFIG_NAMESPACE, .type = CONFIG_UINT, \
	    .default_text = "60", .min = 1, .max = 86400, .unit = "s", .dynamic = true, \
	    .help = "A chunk of a large file that no head names is deleted by the reclaimer (each nsup pass) only once it is this old: a commit writes its chunks before its head, so keep it well above the longest commit.") \
	ROW(ns_config, evict_used_pct, NULL, \
	    .name = "evict-used-pct", .section = CONFIG_NAMESPACE, .type = CONFIG_UINT, \
	    .default_text = "0", .min = 0, .max = 100, .unit = "%", .dynamic = true, \
	    .help = "Used storage above which records closest to expiry are evicted; 0 = no eviction.") \
	ROW(ns_config, stop_writes_used_pct, NULL, \
	    .name = "stop-writes-used-pct", .section = CONFIG_NAMESPACE, .type = CONFIG_UINT, \
	    .default_text = "70", .min = 0, .max = 100, .unit = "%", .dynamic = true, \
	    .help = "Used storage at or above which writes fail with ENOSPC.") \
	ROW(ns_config, stop_writes_avail_pct, NULL, \
	    .name = "stop-writes-avail-pct", .section = CONFIG_NAMESPACE, .type = CONFIG_UINT, \
	    .default_text = "5", .min = 0, .max = 100, .unit = "%", .dynamic = true, \
	    .help = "Available storage (free write blocks) below which writes fail with ENOSPC.") \
	ROW(ns_config, migrate_sleep_us, NULL, \
	    .name = "migrate-sleep", .section = CONFIG_NAMESPACE, .type = CONFIG_UINT, \
	    .default_text = "1", .min = 0, .max = 1000000, .unit = "us", .dynamic = true, \
	    .help = "Pause of a migration per record it sends (throttle), slept once the time owed reaches 1 ms (or per batch of records when more); 0 = none.") \
	ROW(ns_config, file_bin, check_bin_name, \
	    .name = "file-bin", .section = CONFIG_NAMESPACE, .type = CONFIG_STRING, \
	    .default_text = "data", .min = 1, .max = 15, .unit = "", \
	    .help = "Bin holding a record's file content (no '.'); other bins are xattrs.") \
	ROW(ns_config, file_chunk_size, check_chunk_size, \
	    .name = "file-chunk-size", .section = CONFIG_NAMESPACE, .type = CONFIG_SIZE, \
	    .default_text = "0", .min = 0, .max = 8 * M_, .unit = "bytes", \
	    .help = "A file larger than one record is stored as a head record and chunks of this " \
	    "many bytes, each its own record; with its key and header a chunk must fit " \
	    "max-record-size.  0 = chunks whose records fill a write block: the largest " \
	    "multiple of 4K that fits (1020K with 1M write blocks; at most 1M; .info shows " \
	    "the value in effect).") \
	ROW(storage_config, type, NULL, \
	    .name = "type", .section = CONFIG_STORAGE, .type = CONFIG_ENUM, \
	    .choices = "device|memory", .unit = "", \
	    .help = "Required. device: records on files or block devices; memory: records in RAM, " \
	    "optionally shadowed to files or devices.") \
	ROW(storage_config, files, check_abs_path, \
	    .name = "files", .section = CONFIG_STORAGE, .type = CONFIG_LIST, \
	    .min = 0, .max = CONFIG_FILES_MAX, .unit = "", \
	    .help = "Storage files (absolute paths; created sparse at filesize). For memory: shadow files.") \
	ROW(storage_config, files, check_abs_path, \
	    .name = "devices", .section = CONFIG_STORAGE, .type = CONFIG_LIST, \
	    .min = 0, .max = CONFIG_FILES_MAX, .unit = "", \
	    .help = "Raw block devices, instead of files. For memory: shadow devices.") \
	ROW(storage_config, filesize, NULL, \
	    .name = "filesize", .section = CONFIG_STORAGE, .type = CONFIG_SIZE, \
	    .default_text = "4G", .min = 16 * M_, .max = 2 * T_, .unit = "bytes", \
	    .help = "Size of each file in files.") \
	ROW(storage_config, data_size, NULL, \
	    .name = "data-size", .section = CONFIG_STORAGE, .type = CONFIG_SIZE, \
	    .min = 16 * M_, .max = 256 * T_, .unit = "bytes", \
	    .help = "Memory engine only, required there: RAM holding the records; shadow files " \
	    "together must be at least this large.") \
	ROW(storage_config, write_block_size, check_power_of_2, \
	    .name = "write-block-size", .section = CONFIG_STORAGE, .type = CONFIG_SIZE, \
	    .default_text = "1M", .min = 128 * K_, .max = 8 * M_, .unit = "bytes", \
	    .help = "Unit of writing and defragmentation (a power of 2); a record never crosses one.") \
	ROW(storage_config, flush_max_ms, NULL, \
	    .name = "flush-max-ms", .section = CONFIG_STORAGE, .type = CONFIG_UINT, \
	    .default_text = "1000", .min = 0, .max = 60000, .unit = "ms", .dynamic = true, \
	    .help = "A partly filled write buffer is written after this long, and a file kept open " \
	    "with unsaved changes is stored; 0 = only when full (files: at close). " \
	    "Bounds what a crash can lose without commit-to-device.") \
	ROW(storage_config, max_write_cache, NULL, \
	    .name = "max-write-cache", .section = CONFIG_STORAGE, .type = CONFIG_SIZE, \
	    .default_text = "64M", .min = 1 * M_, .max = 64 * G_, .unit = "bytes", .dynamic = true, \
	    .help = "Write buffers waiting for the device, beyond which writers wait; at least write-block-size.") \
	ROW(storage_config, post_write_cache, NULL, \
	    .name = "post-write-cache", .section = CONFIG_STORAGE, .type = CONFIG_SIZE, \
	    .default_text = "256M", .min = 0, .max = 64 * G_, .unit = "bytes", .dynamic = true, \
	    .help = "Recently written buffers kept in RAM to serve reads.") \
	ROW(storage_config, commit_to_device, NULL, \
	    .name = "commit-to-device", .section = CONFIG_STORAGE, .type = CONFIG_BOOL, \
	    .default_text = "false", .unit = "", \
	    .help = "A write returns only once it is durable on storage (group commit).") \
	ROW(storage_config, defrag_lwm_pct, NULL, \
	    .name = "defrag-lwm-pct", .section = CONFIG_STORAGE, .type = CONFIG_UINT, \
	    .default_text = "50", .min = 0, .max = 100, .unit = "%", .dynamic = true, \
	    .help = "A write block whose live bytes fall below this share is defragmented.") \
	ROW(storage_config, defrag_sleep_us, NULL, \
	    .name = "defrag-sleep", .section = CONFIG_STORAGE, .type = CONFIG_UINT, \
	    .default_text = "1000", .min = 0, .max = 1000000, .unit = "us", .dynamic = true, \
	    .help = "Pause of the defrag thread after each write block it empties (device engine: after each batch of up to 16 MiB of them, none while writers wait for space).") \
	ROW(storage_config, defrag_queue_min, NULL, \
	    .name = "defrag-queue-min", .section = CONFIG_STORAGE, .type = CONFIG_UINT, \
	    .default_text = "0", .min = 0, .max = 1000000, .unit = "", .dynamic = true, \
	    .help = "Defrag waits until this many write blocks are queued.") \
	ROW(storage_config, direct_io, NULL, \
	    .name = "direct-io", .section = CONFIG_STORAGE, .type = CONFIG_BOOL, \
	    .default_text = "true", .unit = "", \
	    .help = "Open files with O_DIRECT (bypass the page cache).") \
	ROW(storage_config, cold_start_empty, NULL, \
	    .name = "cold-start-empty", .section = CONFIG_STORAGE, .type = CONFIG_BOOL, \
	    .default_text = "false", .unit = "", \
	    .help = "Ignore the records on storage at start (the space is reused).") \
	ROW(storage_config, tomb_raider_period, NULL, \
	    .name = "tomb-raider-period", .section = CONFIG_STORAGE, .type = CONFIG_UINT, \
	    .default_text = "3600", .min = 0, .max = 604800, .unit = "s", .dynamic = true, \
	    .help = "Seconds between passes that reclaim tombstones no older copy remains for; 0 = off.") \
	ROW(storage_config, tomb_raider_eligible_age, NULL, \
	    .name = "tomb-raider-eligible-age", .section = CONFIG_STORAGE, .type = CONFIG_UINT, \
	    .default_text = "86400", .min = 0, .max = 315360000, .unit = "s", .dynamic = true, \
	    .help = "In a cluster, a tombstone is reclaimed only once it is this many seconds old (a node away longer can bring the record back: docs/cluster.md); a node without a network does not wait.") \
	ROW(storage_config, max_record_size, check_record_size, \
	    .name = "max-record-size", .section = CONFIG_STORAGE, .type = CONFIG_SIZE, \
	    .default_text = "0", .min = 0, .max = 8 * M_, .unit = "bytes", \
	    .help = "Largest record on storage, as stored: content plus key, set name, metadata and other bins (README.md gives the sum); 0 = write-block-size, which is also the most allowed.  .info shows the value in effect.")

#define ROW_PARAM(st, field, chk, ...) { __VA_ARGS__, .offset = offsetof(struct st, field) },
#define ROW_EXTRA(st, field, chk, ...) { sizeof(((struct st *)0)->field), chk },

static const struct config_param config_table[] = { CONFIG_TABLE(ROW_PARAM) };
static const struct config_extra config_extras[] = { CONFIG_TABLE(ROW_EXTRA) };

#define N_PARAMS (sizeof(config_table) / sizeof(config_table[0]))

static const char *const section_names[] = {
	[CONFIG_SERVICE] = "service",
	[CONFIG_LOGGING] = "logging",
	[CONFIG_FUSE] = "fuse",
	[CONFIG_NETWORK] = "network",
	[CONFIG_NAMESPACE] = "namespaces",
	[CONFIG_STORAGE] = "storage-engine",
};

/* The example in docs/configuration.md; a test loads it. */
static const char config_example_yaml[] =
	"service:\n"
	"  cluster-name: recfs\n"
	"  node-id: auto                 # or 16 hex digits\n"
	"  work-directory: /var/lib/recfs\n"
	"  ticker-interval: 10           # seconds between summary log lines; 0 = off\n"
	"  transaction-max-ms: 1000      # deadline of a request to another node\n"
	"  lock-wait: 30                 # seconds a start waits for a recfsd still shutting down\n"
	"logging:\n"
	"  file: stderr                  # stderr | syslog | absolute path\n"
	"  level: info\n"
	"fuse:\n"
	"  threads: 16\n"
	"  read-ahead: 1M                # 0 = the kernel's 128K; set only as root\n"
	"  attr-timeout: 1.0\n"
	"  entry-timeout: 1.0\n"
	"  file-mode: \"0644\"             # for records with no stored mode\n"
	"  dir-mode: \"0755\"\n"
	"network:\n"
	"  fabric: { address: 127.0.0.1, port: 3001 }\n"
	"  seeds: [ \"127.0.0.1:3011\" ]\n"
	"  heartbeat: { interval-ms: 150, timeout-count: 10 }\n"
	"  cluster-secret-file: /etc/recfs/secret\n"
	"namespaces:\n"
	"  - name: test\n"
	"    replication-factor: 2\n"
	"    default-ttl: 0              # seconds; 0 = never expire\n"
	"    nsup-period: 120\n"
	"    evict-used-pct: 0           # 0 = no eviction\n"
	"    stop-writes-used-pct: 70\n"
	"    stop-writes-avail-pct: 5\n"
	"    file-bin: data\n"
	"    storage-engine:\n"
	"      type: device              # device | memory\n"
	"      files: [ /var/lib/recfs/test.dat ]   # or devices: [ /dev/nvme0n1 ]\n"
	"      filesize: 4G\n"
	"      write-block-size: 1M      # power of 2, 128K..8M\n"
	"      flush-max-ms: 1000\n"
	"      max-write-cache: 64M\n"
	"      post-write-cache: 256M\n"
	"      commit-to-device: false\n"
	"      defrag-lwm-pct: 50\n"
	"      defrag-sleep: 1000        # microseconds\n"
	"      defrag-queue-min: 0\n"
	"      direct-io: true           # O_DIRECT on files\n"
	"  - name: cache\n"
	"    storage-engine:\n"
	"      type: memory\n"
	"      data-size: 1G\n"
	"      files: [ /var/lib/recfs/cache.shadow ]   # optional shadow persistence\n"
	"      filesize: 2G\n";

/* ---- table access --------------------------------------------------------- */

const struct config_param *
config_params(size_t *n)
{
	if (n != NULL)
		*n = N_PARAMS;
	return config_table;
}

const struct config_param *
config_param_find(enum config_section section, const char *name)
{
	for (size_t i = 0; i < N_PARAMS; i++)
		if (config_table[i].section == section && strcmp(config_table[i].name, name) == 0)
			return &config_table[i];
	return NULL;
}

const char *
config_example(void)
{
	return config_example_yaml;
}

static const struct config_extra *
param_extra(const struct config_param *p)
{
	return &config_extras[p - config_table];
}

/* The struct a row's offset points into. */
static void *
section_base(struct recfs_config *cfg, int ns_index, enum config_section section)
{
	if (section == CONFIG_NAMESPACE)
		return &cfg->ns[ns_index];
	if (section == CONFIG_STORAGE)
		return &cfg->ns[ns_index].storage;
	return cfg;
}

/*
 * LIST rows (files, devices, seeds): the pointer array is at the row's
 * offset; its count is found here rather than in the table because there
 * are only two shapes, storage files and seeds.
 */
static char **
list_items(const struct config_param *p, const void *base, unsigned **count)
{
	if (p->section == CONFIG_NETWORK)
		*count = &((struct recfs_config *)base)->n_seeds;
	else
		*count = &((struct storage_config *)base)->n_files;
	return (char **)((char *)base + p->offset);
}

/* A list row shows entries only in its own spelling (files vs devices). */
static unsigned
list_count(const struct config_param *p, const void *base)
{
	unsigned *count;

	list_items(p, base, &count);
	if (p->section == CONFIG_STORAGE) {
		const struct storage_config *st = base;
		if (st->files_are_devices != (strcmp(p->name, "devices") == 0))
			return 0;
	}
	return *count;
}

static void
list_free(char **items, unsigned *count)
{
	for (unsigned i = 0; i < *count; i++) {
		free(items[i]);
		items[i] = NULL;
	}
	*count = 0;
}

/* ---- sizes, numbers, text --------------------------------------------------- */

/* Leading decimal digits of *s (at least one) into *v; -EINVAL on overflow. */
static int
parse_digits(const char **s, uint64_t *v)
{
	const char *c = *s;

	*v = 0;
	if (!isdigit((unsigned char)*c))
		return -EINVAL;
	for (; isdigit((unsigned char)*c); c++) {
		if (*v > (UINT64_MAX - (uint64_t)(*c - '0')) / 10)
			return -EINVAL;
		*v = *v * 10 + (uint64_t)(*c - '0');
	}
	*s = c;
	return 0;
}

int
config_parse_size(const char *text, uint64_t *out)
{
	uint64_t v, mult = 1;
	const char *s = text;

	if (text == NULL || parse_digits(&s, &v) != 0)
		return -EINVAL;
	switch (*s) {
	case '\0':                break;
	case 'k': case 'K':       mult = K_; s++; break;
	case 'm': case 'M':       mult = M_; s++; break;
	case 'g': case 'G':       mult = G_; s++; break;
	case 't': case 'T':       mult = T_; s++; break;
	default:                  return -EINVAL;
	}
	if (*s != '\0' || (v != 0 && v > UINT64_MAX / mult))
		return -EINVAL;
	*out = v * mult;
	return 0;
}

/* Largest suffix that divides exactly, so printing then parsing is exact. */
static void
format_size(uint64_t v, char *buf, size_t size)
{
	static const struct { uint64_t mult; char suffix; } units[] = {
		{ T_, 'T' }, { G_, 'G' }, { M_, 'M' }, { K_, 'K' },
	};

	for (size_t i = 0; v != 0 && i < sizeof(units) / sizeof(units[0]); i++) {
		if (v % units[i].mult == 0) {
			snprintf(buf, size, "%llu%c", (unsigned long long)(v / units[i].mult), units[i].suffix);
			return;
		}
	}
	snprintf(buf, size, "%llu", (unsigned long long)v);
}

/* Shortest text that reads back to the same double, always with a '.'. */
static void
format_double(double d, char *buf, size_t size)
{
	snprintf(buf, size, "%.15g", d);
	if (strtod(buf, NULL) != d)
		snprintf(buf, size, "%.17g", d);
	if (strpbrk(buf, ".eE") == NULL && strlen(buf) + 3 <= size)
		strcat(buf, ".0");
}

/* Digits only: no sign, no blanks, no hex (a YAML 0x10 is not a count). */
static int
parse_uint(const char *text, uint64_t *out)
{
	uint64_t v;

	if (parse_digits(&text, &v) != 0 || *text != '\0')
		return -EINVAL;
	*out = v;
	return 0;
}

/* A bound of a row as the user would write it (sizes with suffixes). */
static void
format_bound(const struct config_param *p, uint64_t v, char *buf, size_t size)
{
	if (p->type == CONFIG_SIZE)
		format_size(v, buf, size);
	else if (p->type == CONFIG_MODE)
		snprintf(buf, size, "%04llo", (unsigned long long)v);
	else
		snprintf(buf, size, "%llu", (unsigned long long)v);
}

/* Index of word in "a|b|c", or -1. */
static int
choice_index(const char *choices, const char *word)
{
	size_t len = strlen(word);
	int i = 0;

	for (const char *c = choices; ; i++) {
		const char *bar = strchr(c, '|');
		size_t n = bar != NULL ? (size_t)(bar - c) : strlen(c);
		if (n == len && strncmp(c, word, n) == 0)
			return i;
		if (bar == NULL)
			return -1;
		c = bar + 1;
	}
}

/* ---- parsing and storing one value ---------------------------------------- */

/*
 * Turn text into a value for row p: type, range, then the row's own rule.
 * why gets the reason (without the key); the caller adds file, line, key.
 * A LIST row parses one entry.
 */
static int
value_parse(const struct config_param *p, const char *text, struct config_value *v,
    char *why, size_t why_size)
{
	const struct config_extra *x = param_extra(p);
	char lo[32], hi[32];
	size_t len = strlen(text);
	int idx;

	memset(v, 0, offsetof(struct config_value, s) + 1);
	switch (p->type) {
	case CONFIG_BOOL:
		if (strcasecmp(text, "true") == 0 || strcasecmp(text, "yes") == 0 || strcasecmp(text, "on") == 0) {
			v->u = 1;
		} else if (strcasecmp(text, "false") == 0 || strcasecmp(text, "no") == 0 ||
		    strcasecmp(text, "off") == 0) {
			v->u = 0;
		} else {
			snprintf(why, why_size, "expected true or false, got \"%.64s\"", text);
			return -EINVAL;
		}
		break;
	case CONFIG_UINT:
	case CONFIG_SIZE:
		if ((p->type == CONFIG_UINT ? parse_uint(text, &v->u) : config_parse_size(text, &v->u)) != 0) {
			snprintf(why, why_size, p->type == CONFIG_UINT ? "expected a number, got \"%.64s\"" :
			    "expected a size (a number with an optional K, M, G or T suffix), got \"%.64s\"", text);
			return -EINVAL;
		}
		format_bound(p, p->min, lo, sizeof(lo));
		format_bound(p, p->max, hi, sizeof(hi));
		if (v->u < p->min) {
			snprintf(why, why_size, "%.64s below minimum %s", text, lo);
			return -EINVAL;
		}
		if (v->u > p->max) {
			snprintf(why, why_size, "%.64s above maximum %s", text, hi);
			return -EINVAL;
		}
		break;
	case CONFIG_DOUBLE: {
		char *end;

		errno = 0;
		v->d = strtod(text, &end);
		/* strtod also takes "inf", "nan", hex and leading blanks: none is a timeout */
		if (len == 0 || end != text + len || errno != 0 || !isfinite(v->d) ||
		    !(isdigit((unsigned char)text[0]) || text[0] == '.' || text[0] == '-') ||
		    strpbrk(text, "xX") != NULL) {
			snprintf(why, why_size, "expected a number, got \"%.64s\"", text);
			return -EINVAL;
		}
		if (v->d < (double)p->min) {
			snprintf(why, why_size, "%.64s below minimum %llu", text, (unsigned long long)p->min);
			return -EINVAL;
		}
		if (v->d > (double)p->max) {
			snprintf(why, why_size, "%.64s above maximum %llu", text, (unsigned long long)p->max);
			return -EINVAL;
		}
		break;
	}
	case CONFIG_MODE:
		if (len == 0 || len > 5 || strspn(text, "01234567") != len) {
			snprintf(why, why_size, "expected an octal mode like \"0644\", got \"%.64s\"", text);
			return -EINVAL;
		}
		v->u = strtoull(text, NULL, 8);
		if (v->u > p->max) {
			snprintf(why, why_size, "%.64s above maximum %04llo", text, (unsigned long long)p->max);
			return -EINVAL;
		}
		break;
	case CONFIG_ENUM:
		idx = choice_index(p->choices, text);
		if (idx < 0) {
			snprintf(why, why_size, "\"%.64s\" is not one of %s", text, p->choices);
			return -EINVAL;
		}
		v->u = (uint64_t)idx;
		memcpy(v->s, text, len + 1);
		break;
	case CONFIG_STRING:
	case CONFIG_LIST: {
		/* a list's min/max count entries; an entry is a path or host:port */
		uint64_t min_len = p->type == CONFIG_STRING ? p->min : 1;
		uint64_t max_len = p->type == CONFIG_STRING ? p->max : CONFIG_PATH_MAX - 1;

		if (p->type == CONFIG_STRING && max_len > x->size - 1)
			max_len = x->size - 1;  /* never overflow the field, whatever the row says */
		if (len < min_len) {
			snprintf(why, why_size, "must not be empty");
			return -EINVAL;
		}
		if (len > max_len) {
			snprintf(why, why_size, "\"%.48s%s\" longer than %llu characters", text,
			    len > 48 ? "..." : "", (unsigned long long)max_len);
			return -EINVAL;
		}
		memcpy(v->s, text, len + 1);
		break;
	}
	}
	if (x->check != NULL)
		return x->check(p, v, why, why_size);
	return 0;
}

/* Store into the field.  Dynamic scalars are stored atomically (readers run). */
static void
value_store(const struct config_param *p, void *base, const struct config_value *v)
{
	const struct config_extra *x = param_extra(p);
	char *field = (char *)base + p->offset;

	switch (p->type) {
	case CONFIG_BOOL:
		*(bool *)field = v->u != 0;
		break;
	case CONFIG_UINT:
	case CONFIG_SIZE:
	case CONFIG_MODE:
		if (x->size == sizeof(uint32_t))
			atomic_store_relaxed((uint32_t *)field, (uint32_t)v->u);
		else
			atomic_store_relaxed((uint64_t *)field, v->u);
		break;
	case CONFIG_DOUBLE:
		*(double *)field = v->d;
		break;
	case CONFIG_ENUM:
		/* an enum field holds the index, a char array the word */
		if (x->size == sizeof(int))
			*(int *)field = (int)v->u;
		else
			snprintf(field, x->size, "%s", v->s);
		break;
	case CONFIG_STRING:
		snprintf(field, x->size, "%s", v->s);
		break;
	case CONFIG_LIST:
		break;  /* lists are built by the loader, entry by entry */
	}
}

/* The field as plain text (no YAML quoting); a LIST joins entries with ','. */
static int
value_format(const struct config_param *p, const void *base, char *buf, size_t size)
{
	const struct config_extra *x = param_extra(p);
	const char *field = (const char *)base + p->offset;
	uint64_t u;
	int n = 0;

	if (size == 0)
		return -ERANGE;
	switch (p->type) {
	case CONFIG_BOOL:
		n = snprintf(buf, size, "%s", *(const bool *)field ? "true" : "false");
		break;
	case CONFIG_UINT:
	case CONFIG_SIZE:
	case CONFIG_MODE:
		u = x->size == sizeof(uint32_t) ? atomic_load_relaxed((const uint32_t *)field) :
		    atomic_load_relaxed((const uint64_t *)field);
		if (p->type == CONFIG_SIZE) {
			char tmp[32];
			format_size(u, tmp, sizeof(tmp));
			n = snprintf(buf, size, "%s", tmp);
		} else if (p->type == CONFIG_MODE) {
			n = snprintf(buf, size, "%04llo", (unsigned long long)u);
		} else {
			n = snprintf(buf, size, "%llu", (unsigned long long)u);
		}
		break;
	case CONFIG_DOUBLE: {
		char tmp[40];
		format_double(*(const double *)field, tmp, sizeof(tmp));
		n = snprintf(buf, size, "%s", tmp);
		break;
	}
	case CONFIG_ENUM:
		if (x->size == sizeof(int)) {
			int idx = *(const int *)field;
			const char *c = p->choices;
			for (int i = 0; i < idx && c != NULL; i++) {
				c = strchr(c, '|');
				if (c != NULL)
					c++;
			}
			if (c == NULL)
				c = "?";
			n = snprintf(buf, size, "%.*s", (int)strcspn(c, "|"), c);
		} else {
			n = snprintf(buf, size, "%.*s", (int)x->size, field);
		}
		break;
	case CONFIG_STRING:
		n = snprintf(buf, size, "%.*s", (int)x->size, field);
		break;
	case CONFIG_LIST: {
		unsigned *count, shown = list_count(p, base);
		char **items = list_items(p, base, &count);
		size_t off = 0;

		buf[0] = '\0';
		for (unsigned i = 0; i < shown; i++) {
			n = snprintf(buf + off, size - off, "%s%s", i ? "," : "", items[i]);
			if (n < 0 || (size_t)n >= size - off)
				return -ERANGE;
			off += (size_t)n;
		}
		return 0;
	}
	}
	if (n < 0 || (size_t)n >= size)
		return -ERANGE;
	return 0;
}

/* Zero and default every row of a section into base. */
static void
defaults_apply(enum config_section section, void *base)
{
	char why[256];
	struct config_value *v = malloc(sizeof(*v));

	if (v == NULL)
		abort();
	for (size_t i = 0; i < N_PARAMS; i++) {
		const struct config_param *p = &config_table[i];
		if (p->section != section || p->default_text == NULL || p->type == CONFIG_LIST)
			continue;
		/* a default the table cannot parse is a programming error: stop at start-up */
		if (value_parse(p, p->default_text, v, why, sizeof(why)) != 0) {
			fprintf(stderr, "config: default of %s: %s\n", p->name, why);
			abort();
		}
		value_store(p, base, v);
	}
	free(v);
}

static void
ns_defaults(struct ns_config *ns)
{
	memset(ns, 0, sizeof(*ns));
	defaults_apply(CONFIG_NAMESPACE, ns);
	defaults_apply(CONFIG_STORAGE, &ns->storage);
}

/* ---- row checks ------------------------------------------------------------- */

static int
check_ns_name(const struct config_param *p, const struct config_value *v, char *why, size_t why_size)
{
	if (strspn(v->s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") != strlen(v->s)) {
		snprintf(why, why_size, "\"%.64s\" is not a valid namespace name (letters, digits, '_' and '-' only)",
		    v->s);
		return -EINVAL;
	}
	return 0;
}

static int
check_bin_name(const struct config_param *p, const struct config_value *v, char *why, size_t why_size)
{
	if (strchr(v->s, '.') != NULL) {
		snprintf(why, why_size, "\"%.64s\": a bin name cannot contain '.'", v->s);
		return -EINVAL;
	}
	return 0;
}

static int
check_node_id(const struct config_param *p, const struct config_value *v, char *why, size_t why_size)
{
	if (strcmp(v->s, "auto") == 0 || (strlen(v->s) == 16 && strspn(v->s, "0123456789abcdefABCDEF") == 16))
		return 0;
	snprintf(why, why_size, "\"%.64s\" is neither auto nor 16 hex digits", v->s);
	return -EINVAL;
}

/* recfsd may chdir("/") when it daemonizes, so a relative path would move. */
static int
check_abs_path(const struct config_param *p, const struct config_value *v, char *why, size_t why_size)
{
	if (v->s[0] == '\0' || v->s[0] == '/')
		return 0;   /* empty only gets here where the row allows it */
	snprintf(why, why_size, "\"%.64s\" is not an absolute path", v->s);
	return -EINVAL;
}

static int
check_log_file(const struct config_param *p, const struct config_value *v, char *why, size_t why_size)
{
	if (strcmp(v->s, "stderr") == 0 || strcmp(v->s, "syslog") == 0 || v->s[0] == '/')
		return 0;
	snprintf(why, why_size, "\"%.64s\" is not stderr, syslog or an absolute path", v->s);
	return -EINVAL;
}

static int
check_seed(const struct config_param *p, const struct config_value *v, char *why, size_t why_size)
{
	const char *colon = strrchr(v->s, ':');
	uint64_t port;

	if (colon == NULL || colon == v->s || parse_uint(colon + 1, &port) != 0 || port == 0 || port > 65535) {
		snprintf(why, why_size, "\"%.64s\" is not host:port", v->s);
		return -EINVAL;
	}
	return 0;
}

static int
check_power_of_2(const struct config_param *p, const struct config_value *v, char *why, size_t why_size)
{
	char text[32];

	if (v->u != 0 && (v->u & (v->u - 1)) == 0)
		return 0;
	format_size(v->u, text, sizeof(text));
	snprintf(why, why_size, "%s is not a power of 2", text);
	return -EINVAL;
}

static int
check_record_size(const struct config_param *p, const struct config_value *v, char *why, size_t why_size)
{
	/* smaller than a record's header would make every write fail */
	if (v->u == 0 || v->u >= K_)
		return 0;
	snprintf(why, why_size, "%llu: use 0 (= write-block-size) or at least 1K", (unsigned long long)v->u);
	return -EINVAL;
}

static int
check_chunk_size(const struct config_param *p, const struct config_value *v, char *why, size_t why_size)
{
	(void)p;
	/* thousands of records per MiB would only cost index memory */
	if (v->u == 0 || v->u >= 4 * K_)
		return 0;
	snprintf(why, why_size, "%llu: use 0 (= derived from max-record-size) or at least 4K",
	    (unsigned long long)v->u);
	return -EINVAL;
}

/*
 * Rules that tie several fields of a namespace together.  Shared by the
 * loader and config_set_text so a runtime change cannot reach a state the
 * loader would refuse.  *row names the parameter to blame (NULL: the
 * storage-engine as a whole).
 */
static int
ns_check(const struct ns_config *ns, const struct config_param **row, char *why, size_t why_size)
{
	const struct storage_config *st = &ns->storage;
	char a[32], b[32];

	*row = NULL;
	if (st->type == STORAGE_DEVICE && st->n_files == 0) {
		snprintf(why, why_size, "device engine needs files or devices");
		return -EINVAL;
	}
	if (st->type == STORAGE_DEVICE && st->data_size != 0) {
		*row = config_param_find(CONFIG_STORAGE, "data-size");
		snprintf(why, why_size, "only used by the memory engine");
		return -EINVAL;
	}
	if (st->type == STORAGE_MEMORY && st->data_size == 0) {
		snprintf(why, why_size, "memory engine needs data-size");
		return -EINVAL;
	}
	/* a shadow mirrors RAM at the same offsets, so it must hold all of it */
	if (st->type == STORAGE_MEMORY && st->n_files != 0 && !st->files_are_devices &&
	    st->filesize * st->n_files < st->data_size) {
		*row = config_param_find(CONFIG_STORAGE, "filesize");
		format_size(st->filesize, a, sizeof(a));
		format_size(st->data_size, b, sizeof(b));
		snprintf(why, why_size, "%u shadow file(s) of %s cannot hold data-size %s", st->n_files, a, b);
		return -EINVAL;
	}
	if (st->max_record_size > st->write_block_size) {
		*row = config_param_find(CONFIG_STORAGE, "max-record-size");
		format_size(st->max_record_size, a, sizeof(a));
		format_size(st->write_block_size, b, sizeof(b));
		snprintf(why, why_size, "%s is larger than write-block-size %s", a, b);
		return -EINVAL;
	}
	/* a chunk is one record: its content plus the chunk record's own key,
	 * set name, header and bin must fit (docs/storage-format.md) */
	uint64_t mrs = st->max_record_size != 0 ? st->max_record_size : st->write_block_size;

	/* 0 derives a chunk of at least 4K: a smaller max-record-size has
	 * room for no chunk at all, so no file could grow past one record
	 * (config_chunk_size_default returns 0) */
	if (ns->file_chunk_size == 0 && config_chunk_size_default(mrs, st->write_block_size) == 0) {
		*row = config_param_find(CONFIG_STORAGE, "max-record-size");
		format_size(mrs, a, sizeof(a));
		snprintf(why, why_size, "%s leaves no room for a chunk of a large file (at least 4K plus %u "
		    "bytes)", a, CONFIG_CHUNK_OVERHEAD);
		return -EINVAL;
	}
	if ((uint64_t)ns->file_chunk_size + CONFIG_CHUNK_OVERHEAD > mrs) {
		*row = config_param_find(CONFIG_NAMESPACE, "file-chunk-size");
		format_size(ns->file_chunk_size, a, sizeof(a));
		format_size(st->max_record_size != 0 ? st->max_record_size : st->write_block_size,
		    b, sizeof(b));
		snprintf(why, why_size, "%s plus %u bytes of chunk record overhead is larger than "
		    "max-record-size %s", a, CONFIG_CHUNK_OVERHEAD, b);
		return -EINVAL;
	}
	/* fewer bytes of cache than one buffer would block every flush */
	if (st->max_write_cache < st->write_block_size) {
		*row = config_param_find(CONFIG_STORAGE, "max-write-cache");
		format_size(st->max_write_cache, a, sizeof(a));
		format_size(st->write_block_size, b, sizeof(b));
		snprintf(why, why_size, "%s is smaller than write-block-size %s", a, b);
		return -EINVAL;
	}
	/* Aerospike refuses this too: records would carry a TTL nobody enforces */
	if (ns->default_ttl != 0 && ns->nsup_period == 0) {
		*row = config_param_find(CONFIG_NAMESPACE, "default-ttl");
		snprintf(why, why_size, "a default-ttl of %u needs nsup-period > 0", ns->default_ttl);
		return -EINVAL;
	}
	return 0;
}

/* ---- defaults --------------------------------------------------------------- */

/* recfsd(8), FILES: /var/lib/recfs for root, else the XDG data directory. */
static void
default_work_directory(char *buf, size_t size)
{
	const char *xdg = getenv("XDG_DATA_HOME");
	const char *home = getenv("HOME");

	if (geteuid() == 0) {
		snprintf(buf, size, "/var/lib/recfs");
		return;
	}
	/* the XDG spec says to ignore a relative XDG_DATA_HOME */
	if (xdg != NULL && xdg[0] == '/' && strlen(xdg) + sizeof("/recfs") <= size) {
		snprintf(buf, size, "%s/recfs", xdg);
		return;
	}
	if (home == NULL || home[0] != '/') {
		struct passwd *pw = getpwuid(geteuid());
		home = pw != NULL ? pw->pw_dir : NULL;
	}
	if (home != NULL && home[0] == '/' && strlen(home) + sizeof("/.local/share/recfs") <= size)
		snprintf(buf, size, "%s/.local/share/recfs", home);
	else
		snprintf(buf, size, "/tmp/recfs-%u", (unsigned)geteuid());
}

/* Service, logging, fuse and network defaults; no namespaces. */
static void
config_base_defaults(struct recfs_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	defaults_apply(CONFIG_SERVICE, cfg);
	defaults_apply(CONFIG_LOGGING, cfg);
	defaults_apply(CONFIG_FUSE, cfg);
	defaults_apply(CONFIG_NETWORK, cfg);
	default_work_directory(cfg->work_directory, sizeof(cfg->work_directory));
}

void
config_default(struct recfs_config *cfg)
{
	struct ns_config *ns = &cfg->ns[0];

	config_base_defaults(cfg);
	ns_defaults(ns);
	snprintf(ns->name, sizeof(ns->name), "test");
	/* recfsd(8): the device engine on a sparse 4 GiB test.dat in the work dir. */
	ns->storage.type = STORAGE_DEVICE;
	if (asprintf(&ns->storage.files[0], "%s/test.dat", cfg->work_directory) < 0) {
		fprintf(stderr, "config: out of memory\n");
		abort();
	}
	ns->storage.n_files = 1;
	ns->storage.max_record_size = ns->storage.write_block_size;  /* resolved, as loaded */
	ns->file_chunk_size = config_chunk_size_default(ns->storage.max_record_size,
	    ns->storage.write_block_size);
	cfg->n_namespaces = 1;
	snprintf(cfg->source, sizeof(cfg->source), "built-in default");
}

void
config_free(struct recfs_config *cfg)
{
	if (cfg == NULL)
		return;
	for (unsigned i = 0; i < cfg->n_namespaces && i < CONFIG_NS_MAX; i++)
		list_free(cfg->ns[i].storage.files, &cfg->ns[i].storage.n_files);
	list_free(cfg->seeds, &cfg->n_seeds);
	cfg->n_namespaces = 0;
}

/* ---- the loader ------------------------------------------------------------- */

struct load_ctx {
	yaml_document_t *doc;
	const char *name;               /* file name for messages */
	char *err;
	size_t err_size;
	unsigned line_of[N_PARAMS];     /* line each row was set on, in the current namespace */
	struct config_value v;          /* scratch; 4 KiB, so not on the stack of every frame */
};

static unsigned
node_line(const yaml_node_t *node)
{
	return node != NULL ? (unsigned)node->start_mark.line + 1 : 1;
}

static int load_fail(struct load_ctx *c, unsigned line, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* "FILE:LINE: PATH: reason"; always RECFS_ECONFIG. */
static int
load_fail(struct load_ctx *c, unsigned line, const char *path, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (c->err == NULL || c->err_size == 0)
		return RECFS_ECONFIG;
	n = snprintf(c->err, c->err_size, "%s:%u: %s%s", c->name, line, path != NULL ? path : "",
	    path != NULL ? ": " : "");
	if (n >= 0 && (size_t)n < c->err_size) {
		va_start(ap, fmt);
		vsnprintf(c->err + n, c->err_size - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return RECFS_ECONFIG;
}

/* Scalar text, with YAML's plain null spellings read as the empty string. */
static const char *
scalar_text(const yaml_node_t *node)
{
	const char *s = (const char *)node->data.scalar.value;

	if (node->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	    (strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0))
		return "";
	return s;
}

static const char *
expected_text(const struct config_param *p)
{
	switch (p->type) {
	case CONFIG_BOOL:   return "expected true or false";
	case CONFIG_UINT:   return "expected a number";
	case CONFIG_SIZE:   return "expected a size";
	case CONFIG_DOUBLE: return "expected a number";
	case CONFIG_STRING: return "expected a string";
	case CONFIG_MODE:   return "expected an octal mode like \"0644\"";
	case CONFIG_ENUM:   return "expected a word";
	case CONFIG_LIST:   return "expected a list, like [ a, b ]";
	}
	return "unexpected value";
}

/*
 * A mapping's key, checked for being a scalar and for repeating an earlier
 * key (libyaml accepts duplicates and a silent "last one wins" hides typos).
 */
static int
mapping_key(struct load_ctx *c, const yaml_node_t *map, const yaml_node_pair_t *pair,
    const char *path, const char **key)
{
	yaml_node_t *k = yaml_document_get_node(c->doc, pair->key);

	if (k == NULL || k->type != YAML_SCALAR_NODE)
		return load_fail(c, node_line(k), path, "expected a key name");
	if (strlen((const char *)k->data.scalar.value) != k->data.scalar.length)
		return load_fail(c, node_line(k), path, "NUL byte in key");
	*key = (const char *)k->data.scalar.value;
	for (const yaml_node_pair_t *q = map->data.mapping.pairs.start; q < pair; q++) {
		yaml_node_t *qk = yaml_document_get_node(c->doc, q->key);
		if (qk != NULL && qk->type == YAML_SCALAR_NODE &&
		    strcmp((const char *)qk->data.scalar.value, *key) == 0)
			return load_fail(c, node_line(k), path[0] ? path : NULL,
			    "duplicate key %.64s (first on line %u)", *key, node_line(qk));
	}
	return 0;
}

/* A LIST row: the whole sequence replaces the field's entries. */
static int
load_list(struct load_ctx *c, const struct config_param *p, void *base, yaml_node_t *node,
    const char *path)
{
	char why[256];
	char *items[CONFIG_FILES_MAX > CONFIG_SEEDS_MAX ? CONFIG_FILES_MAX : CONFIG_SEEDS_MAX];
	unsigned n = 0, *count;
	char **field = list_items(p, base, &count);
	int rc = 0;

	if (node->type != YAML_SEQUENCE_NODE)
		return load_fail(c, node_line(node), path, "%s", expected_text(p));
	for (yaml_node_item_t *it = node->data.sequence.items.start; it < node->data.sequence.items.top; it++) {
		yaml_node_t *item = yaml_document_get_node(c->doc, *it);
		if (n >= p->max) {
			rc = load_fail(c, node_line(item), path, "more than %llu entries",
			    (unsigned long long)p->max);
			goto out;
		}
		if (item == NULL || item->type != YAML_SCALAR_NODE) {
			rc = load_fail(c, node_line(item), path, "expected a list of strings");
			goto out;
		}
		if (value_parse(p, scalar_text(item), &c->v, why, sizeof(why)) != 0) {
			rc = load_fail(c, node_line(item), path, "%s", why);
			goto out;
		}
		items[n] = strdup(c->v.s);
		if (items[n] == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		n++;
	}
	list_free(field, count);
	memcpy(field, items, n * sizeof(items[0]));
	*count = n;
	n = 0;
	if (p->section == CONFIG_STORAGE)
		((struct storage_config *)base)->files_are_devices = strcmp(p->name, "devices") == 0;
out:
	for (unsigned i = 0; i < n; i++)
		free(items[i]);
	return rc;
}

/* One key: value of a section, value already matched to row p. */
static int
load_value(struct load_ctx *c, const struct config_param *p, void *base, yaml_node_t *node,
    const char *path)
{
	char why[256];

	c->line_of[p - config_table] = node_line(node);
	if (p->type == CONFIG_LIST)
		return load_list(c, p, base, node, path);
	if (node->type != YAML_SCALAR_NODE)
		return load_fail(c, node_line(node), path, "%s", expected_text(p));
	if (strlen((const char *)node->data.scalar.value) != node->data.scalar.length)
		return load_fail(c, node_line(node), path, "NUL byte in value");
	if (value_parse(p, scalar_text(node), &c->v, why, sizeof(why)) != 0)
		return load_fail(c, node_line(node), path, "%s", why);
	value_store(p, base, &c->v);
	return 0;
}

/* Is group ("fabric") followed by '.' the start of some row name of the section? */
static bool
section_has_group(enum config_section section, const char *group)
{
	size_t len = strlen(group);

	for (size_t i = 0; i < N_PARAMS; i++)
		if (config_table[i].section == section && strncmp(config_table[i].name, group, len) == 0 &&
		    config_table[i].name[len] == '.')
			return true;
	return false;
}

/*
 * Walk a mapping of section rows.  prefix is "" or a group ("fabric."):
 * nested mappings are matched to the dotted row names, which is how the
 * network section's fabric: and heartbeat: groups are described.
 */
static int
load_section(struct load_ctx *c, enum config_section section, void *base, yaml_node_t *map,
    const char *path, const char *prefix)
{
	char sub[512], full[160];   /* prefix and key are each cut to 64 */
	const char *key;
	int rc;

	if (map->type != YAML_MAPPING_NODE)
		return load_fail(c, node_line(map), path, "expected a mapping of keys");
	for (yaml_node_pair_t *pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; pair++) {
		yaml_node_t *value = yaml_document_get_node(c->doc, pair->value);
		const struct config_param *p;

		if ((rc = mapping_key(c, map, pair, path, &key)) != 0)
			return rc;
		snprintf(sub, sizeof(sub), "%s.%.64s", path, key);
		snprintf(full, sizeof(full), "%s%.64s", prefix, key);
		if ((p = config_param_find(section, full)) != NULL) {
			rc = load_value(c, p, base, value, sub);
		} else if (section_has_group(section, full)) {
			strcat(full, ".");
			rc = load_section(c, section, base, value, sub, full);
		} else {
			unsigned line = node_line(yaml_document_get_node(c->doc, pair->key));
			rc = load_fail(c, line, sub, "unknown key");
		}
		if (rc != 0)
			return rc;
	}
	return 0;
}

static int
load_namespace(struct load_ctx *c, struct recfs_config *cfg, unsigned index, yaml_node_t *map)
{
	struct ns_config *ns = &cfg->ns[index];
	const struct config_param *row, *name_row = config_param_find(CONFIG_NAMESPACE, "name");
	const struct config_param *type_row = config_param_find(CONFIG_STORAGE, "type");
	const struct config_param *files_row = config_param_find(CONFIG_STORAGE, "files");
	const struct config_param *devices_row = config_param_find(CONFIG_STORAGE, "devices");
	yaml_node_t *storage = NULL;
	char path[64], sub[192], why[256];
	const char *key;
	int rc;

	snprintf(path, sizeof(path), "namespaces[%u]", index);
	/* forget the previous namespace's lines, keep the service sections' */
	for (size_t i = 0; i < N_PARAMS; i++)
		if (config_table[i].section == CONFIG_NAMESPACE || config_table[i].section == CONFIG_STORAGE)
			c->line_of[i] = 0;
	if (map->type != YAML_MAPPING_NODE)
		return load_fail(c, node_line(map), path, "expected a mapping of keys");
	for (yaml_node_pair_t *pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; pair++) {
		yaml_node_t *value = yaml_document_get_node(c->doc, pair->value);

		if ((rc = mapping_key(c, map, pair, path, &key)) != 0)
			return rc;
		snprintf(sub, sizeof(sub), "%s.%.64s", path, key);
		if (strcmp(key, "storage-engine") == 0) {
			storage = value;
			rc = load_section(c, CONFIG_STORAGE, &ns->storage, value, sub, "");
		} else if ((row = config_param_find(CONFIG_NAMESPACE, key)) != NULL) {
			rc = load_value(c, row, ns, value, sub);
		} else {
			rc = load_fail(c, node_line(yaml_document_get_node(c->doc, pair->key)), sub, "unknown key");
		}
		if (rc != 0)
			return rc;
	}

	if (c->line_of[name_row - config_table] == 0)
		return load_fail(c, node_line(map), path, "missing required key name");
	snprintf(sub, sizeof(sub), "%s.name", path);
	for (unsigned i = 0; i < index; i++)
		if (strcmp(cfg->ns[i].name, ns->name) == 0)
			return load_fail(c, c->line_of[name_row - config_table], sub,
			    "duplicate namespace name \"%s\" (also namespaces[%u])", ns->name, i);
	if (storage == NULL)
		return load_fail(c, node_line(map), path, "missing required key storage-engine");
	snprintf(sub, sizeof(sub), "%s.storage-engine", path);
	if (c->line_of[type_row - config_table] == 0)
		return load_fail(c, node_line(storage), sub, "missing required key type");
	if (c->line_of[files_row - config_table] != 0 && c->line_of[devices_row - config_table] != 0)
		return load_fail(c, c->line_of[devices_row - config_table], sub,
		    "files and devices cannot both be given");
	if (ns_check(ns, &row, why, sizeof(why)) != 0) {
		unsigned line = row != NULL ? c->line_of[row - config_table] : 0;
		char rowpath[256];

		if (line == 0)
			line = node_line(storage);
		if (row != NULL) {
			snprintf(rowpath, sizeof(rowpath), "%s%s%s", row->section == CONFIG_STORAGE ? sub : path,
			    ".", row->name);
			return load_fail(c, line, rowpath, "%s", why);
		}
		return load_fail(c, line, sub, "%s", why);
	}
	/* 0 = the write-block size: resolved here, so .info and the config
	 * files show the limit that applies, never 0. */
	if (ns->storage.max_record_size == 0)
		ns->storage.max_record_size = ns->storage.write_block_size;
	if (ns->file_chunk_size == 0)
		ns->file_chunk_size = config_chunk_size_default(ns->storage.max_record_size,
		    ns->storage.write_block_size);
	return 0;
}

static int
load_namespaces(struct load_ctx *c, struct recfs_config *cfg, yaml_node_t *seq)
{
	int rc;

	if (seq->type != YAML_SEQUENCE_NODE)
		return load_fail(c, node_line(seq), "namespaces", "expected a list of namespaces");
	for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top; it++) {
		yaml_node_t *item = yaml_document_get_node(c->doc, *it);

		if (cfg->n_namespaces >= CONFIG_NS_MAX)
			return load_fail(c, node_line(item), "namespaces", "more than %d namespaces", CONFIG_NS_MAX);
		/* counted before it is filled so config_free() releases a half-loaded one */
		ns_defaults(&cfg->ns[cfg->n_namespaces]);
		cfg->n_namespaces++;
		if ((rc = load_namespace(c, cfg, cfg->n_namespaces - 1, item)) != 0)
			return rc;
	}
	return 0;
}

static int
load_root(struct load_ctx *c, struct recfs_config *cfg, yaml_node_t *root)
{
	static const enum config_section sections[] = { CONFIG_SERVICE, CONFIG_LOGGING, CONFIG_FUSE, CONFIG_NETWORK };
	yaml_node_t *ns_node = NULL;
	const char *key;
	int rc;

	if (root == NULL)
		return load_fail(c, 1, NULL, "no namespaces configured");
	if (root->type != YAML_MAPPING_NODE)
		return load_fail(c, node_line(root), NULL, "expected a mapping of sections (service, namespaces, ...)");
	for (yaml_node_pair_t *pair = root->data.mapping.pairs.start; pair < root->data.mapping.pairs.top; pair++) {
		yaml_node_t *value = yaml_document_get_node(c->doc, pair->value);
		size_t i;

		if ((rc = mapping_key(c, root, pair, "", &key)) != 0)
			return rc;
		if (strcmp(key, "namespaces") == 0) {
			ns_node = value;
			if ((rc = load_namespaces(c, cfg, value)) != 0)
				return rc;
			continue;
		}
		for (i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
			if (strcmp(key, section_names[sections[i]]) == 0)
				break;
		if (i == sizeof(sections) / sizeof(sections[0]))
			return load_fail(c, node_line(yaml_document_get_node(c->doc, pair->key)), key, "unknown key");
		if ((rc = load_section(c, sections[i], cfg, value, key, "")) != 0)
			return rc;
	}
	if (cfg->n_namespaces == 0)
		return load_fail(c, node_line(ns_node != NULL ? ns_node : root), "namespaces", "no namespaces configured");
	/* fabric traffic is always authenticated: peers without a secret cannot work */
	if (cfg->n_seeds != 0 && cfg->cluster_secret_file[0] == '\0')
		return load_fail(c, c->line_of[config_param_find(CONFIG_NETWORK, "seeds") - config_table],
		    "network.seeds", "seeds need a cluster-secret-file");
	/* TLS is all three files or none */
	{
		static const char *const names[3] = { "tls.certificate", "tls.key", "tls.ca" };
		const char *vals[3] = { cfg->tls_certificate, cfg->tls_key, cfg->tls_ca };
		unsigned set = 0, given = 0, j;

		for (j = 0; j < 3; j++)
			if (vals[j][0] != '\0') {
				set++;
				given = j;
			}
		for (j = 0; j < 3 && set != 0 && set != 3; j++) {
			char missing[32];

			if (vals[j][0] != '\0')
				continue;
			snprintf(missing, sizeof(missing), "network.%s", names[j]);
			return load_fail(c, c->line_of[config_param_find(CONFIG_NETWORK, names[given]) - config_table],
			    missing, "not set: network.tls needs certificate, key and ca");
		}
	}
	return 0;
}

/* Line of a byte offset, for reader errors (which carry no mark). */
static unsigned
offset_line(const char *text, size_t len, size_t offset)
{
	unsigned line = 1;

	for (size_t i = 0; i < offset && i < len; i++)
		if (text[i] == '\n')
			line++;
	return line;
}

static int
load_buffer(struct recfs_config *cfg, const char *text, size_t len, const char *name, char *err, size_t err_size)
{
	yaml_parser_t parser;
	yaml_document_t doc, extra;
	struct load_ctx *c;
	int rc;

	config_base_defaults(cfg);
	snprintf(cfg->source, sizeof(cfg->source), "%s", name);
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	c->name = name;
	c->err = err;
	c->err_size = err_size;
	c->doc = &doc;
	if (err != NULL && err_size != 0)
		err[0] = '\0';
	if (!yaml_parser_initialize(&parser)) {
		free(c);
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		if (parser.error == YAML_MEMORY_ERROR) {
			rc = -ENOMEM;
		} else if (parser.error == YAML_READER_ERROR) {
			rc = load_fail(c, offset_line(text, len, parser.problem_offset), NULL, "syntax error: %s",
			    parser.problem != NULL ? parser.problem : "unreadable input");
		} else if (parser.context != NULL) {
			rc = load_fail(c, (unsigned)parser.problem_mark.line + 1, NULL, "syntax error: %s (%s on line %u)",
			    parser.problem != NULL ? parser.problem : "?", parser.context,
			    (unsigned)parser.context_mark.line + 1);
		} else {
			rc = load_fail(c, (unsigned)parser.problem_mark.line + 1, NULL, "syntax error: %s",
			    parser.problem != NULL ? parser.problem : "?");
		}
		yaml_parser_delete(&parser);
		free(c);
		goto fail;
	}
	rc = load_root(c, cfg, yaml_document_get_root_node(&doc));
	if (rc == 0) {
		/* a second document would be silently ignored: refuse it */
		if (!yaml_parser_load(&parser, &extra)) {
			rc = load_fail(c, (unsigned)parser.problem_mark.line + 1, NULL, "syntax error: %s",
			    parser.problem != NULL ? parser.problem : "?");
		} else {
			yaml_node_t *r = yaml_document_get_root_node(&extra);
			if (r != NULL)
				rc = load_fail(c, node_line(r), NULL, "more than one YAML document");
			yaml_document_delete(&extra);
		}
	}
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	free(c);
	if (rc == 0)
		return 0;
fail:
	/* leave a predictable, releasable state: defaults and no namespaces */
	config_free(cfg);
	config_base_defaults(cfg);
	snprintf(cfg->source, sizeof(cfg->source), "%s", name);
	if (rc != RECFS_ECONFIG && err != NULL && err_size != 0 && err[0] == '\0')
		snprintf(err, err_size, "%s: %s", name, recfs_strerror(rc));
	return rc;
}

int
config_load_string(struct recfs_config *cfg, const char *yaml, const char *name, char *err, size_t err_size)
{
	char *copy;
	int rc;

	/* a copy, because loading wipes cfg and name may be cfg->source */
	copy = strdup(name != NULL ? name : "<string>");
	if (copy == NULL || yaml == NULL) {
		config_base_defaults(cfg);
		free(copy);
		return copy == NULL ? -ENOMEM : -EINVAL;
	}
	rc = load_buffer(cfg, yaml, strlen(yaml), copy, err, err_size);
	free(copy);
	return rc;
}

/* A config file bigger than this is not a config file. */
#define CONFIG_FILE_MAX (4u << 20)

int
config_load_file(struct recfs_config *cfg, const char *path, char *err, size_t err_size)
{
	char *buf = NULL, *copy;
	size_t len = 0;
	ssize_t n;
	int fd = -1, rc;

	/* a copy, because loading wipes cfg and path may be cfg->source */
	copy = strdup(path);
	config_base_defaults(cfg);
	if (copy == NULL)
		return -ENOMEM;
	path = copy;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		goto io_fail;
	}
	buf = malloc(CONFIG_FILE_MAX + 1);
	if (buf == NULL) {
		rc = -ENOMEM;
		goto io_fail;
	}
	while ((n = read(fd, buf + len, CONFIG_FILE_MAX + 1 - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			goto io_fail;
		}
		len += (size_t)n;
		if (len > CONFIG_FILE_MAX) {
			rc = -EFBIG;
			goto io_fail;
		}
	}
	close(fd);
	rc = load_buffer(cfg, buf, len, path, err, err_size);
	free(buf);
	free(copy);
	return rc;
io_fail:
	if (fd >= 0)
		close(fd);
	free(buf);
	if (err != NULL && err_size != 0)
		snprintf(err, err_size, "%s: %s", path, rc == -EFBIG ? "larger than 4 MiB, not a configuration file" :
		    strerror(-rc));
	snprintf(cfg->source, sizeof(cfg->source), "%s", path);
	free(copy);
	return rc;
}

/* ---- printing ----------------------------------------------------------------- */

/* Plain YAML scalars that read back as the same text under our loader. */
static bool
yaml_plain_ok(const char *s)
{
	if (s[0] == '\0' || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0)
		return false;
	if (!isalnum((unsigned char)s[0]) && s[0] != '/' && s[0] != '_' && s[0] != '.')
		return false;
	for (const char *c = s; *c; c++) {
		if (isalnum((unsigned char)*c) || strchr("_./+@-", *c) != NULL)
			continue;
		if (*c == ':' && c[1] != '\0')
			continue;   /* "host:port": a colon only ends a key before a blank */
		return false;
	}
	return true;
}

static void
yaml_put_string(FILE *out, const char *s)
{
	if (yaml_plain_ok(s)) {
		fputs(s, out);
		return;
	}
	fputc('"', out);
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if (*c == '"' || *c == '\\')
			fprintf(out, "\\%c", *c);
		else if (*c < 0x20 || *c == 0x7f)
			fprintf(out, "\\x%02x", *c);
		else
			fputc(*c, out);
	}
	fputc('"', out);
}

/* One row at indent; returns without output for unset values. */
static void
print_row(FILE *out, const struct config_param *p, const void *base, int indent, const char *key)
{
	char buf[CONFIG_PATH_MAX + 64];

	if (p->type == CONFIG_LIST) {
		unsigned *count, n = list_count(p, base);
		char **items = list_items(p, base, &count);

		if (n == 0)
			return;
		fprintf(out, "%*s%s:\n", indent, "", key);
		for (unsigned i = 0; i < n; i++) {
			fprintf(out, "%*s  - ", indent, "");
			yaml_put_string(out, items[i]);
			fputc('\n', out);
		}
		return;
	}
	if (value_format(p, base, buf, sizeof(buf)) != 0)
		return;
	/* no default and zero = never set (data-size of a device namespace) */
	if (p->default_text == NULL && (p->type == CONFIG_UINT || p->type == CONFIG_SIZE) && strcmp(buf, "0") == 0)
		return;
	fprintf(out, "%*s%s: ", indent, "", key);
	if (p->type == CONFIG_STRING)
		yaml_put_string(out, buf);
	else if (p->type == CONFIG_MODE)
		fprintf(out, "\"%s\"", buf);   /* quoted as in docs/configuration.md, so no one reads 0644 as decimal */
	else
		fputs(buf, out);
	fputc('\n', out);
}

/* All rows of a section; dotted names print as nested groups. */
static void
print_section(FILE *out, enum config_section section, const void *base, int indent, const char *skip)
{
	char group[64] = "";

	for (size_t i = 0; i < N_PARAMS; i++) {
		const struct config_param *p = &config_table[i];
		const char *dot = strchr(p->name, '.');

		if (p->section != section || (skip != NULL && strcmp(p->name, skip) == 0))
			continue;
		if (dot == NULL) {
			group[0] = '\0';
			print_row(out, p, base, indent, p->name);
			continue;
		}
		if (strlen(group) != (size_t)(dot - p->name) || strncmp(group, p->name, strlen(group)) != 0) {
			snprintf(group, sizeof(group), "%.*s", (int)(dot - p->name), p->name);
			fprintf(out, "%*s%s:\n", indent, "", group);
		}
		print_row(out, p, base, indent + 2, dot + 1);
	}
}

void
config_print(const struct recfs_config *cfg, FILE *out)
{
	static const enum config_section sections[] = { CONFIG_SERVICE, CONFIG_LOGGING, CONFIG_FUSE, CONFIG_NETWORK };

	fputs("# recfs effective configuration, from ", out);
	for (const char *c = cfg->source; *c; c++)
		fputc((unsigned char)*c < 0x20 ? '?' : *c, out);
	fputc('\n', out);
	for (size_t s = 0; s < sizeof(sections) / sizeof(sections[0]); s++) {
		fprintf(out, "%s:\n", section_names[sections[s]]);
		print_section(out, sections[s], cfg, 2, NULL);
	}
	fputs("namespaces:\n", out);
	for (unsigned i = 0; i < cfg->n_namespaces; i++) {
		const struct ns_config *ns = &cfg->ns[i];

		fputs("  - name: ", out);
		yaml_put_string(out, ns->name);
		fputc('\n', out);
		print_section(out, CONFIG_NAMESPACE, ns, 4, "name");
		fputs("    storage-engine:\n", out);
		print_section(out, CONFIG_STORAGE, &ns->storage, 6, NULL);
	}
}

/* ---- /.info/config ------------------------------------------------------------ */

int
config_get_text(const struct recfs_config *cfg, int ns_index, enum config_section section,
    const char *name, char *buf, size_t buf_size)
{
	const struct config_param *p = config_param_find(section, name);

	if (p == NULL)
		return -ENOENT;
	if ((section == CONFIG_NAMESPACE || section == CONFIG_STORAGE) &&
	    (ns_index < 0 || (unsigned)ns_index >= cfg->n_namespaces))
		return -ENOENT;
	return value_format(p, section_base((struct recfs_config *)cfg, ns_index, section), buf, buf_size);
}

int
config_set_text(struct recfs_config *cfg, int ns_index, enum config_section section,
    const char *name, const char *value, char *err, size_t err_size)
{
	const struct config_param *p = config_param_find(section, name), *row;
	struct config_value *v = NULL;
	char why[256], text[CONFIG_PATH_MAX];
	size_t len;
	int rc = 0;

	if (err != NULL && err_size != 0)
		err[0] = '\0';
	if (p == NULL || ((section == CONFIG_NAMESPACE || section == CONFIG_STORAGE) &&
	    (ns_index < 0 || (unsigned)ns_index >= cfg->n_namespaces)))
		return -ENOENT;
	if (!p->dynamic) {
		if (err != NULL && err_size != 0)
			snprintf(err, err_size, "%s: static; change it in the configuration file and restart", name);
		return -EACCES;
	}
	v = malloc(sizeof(*v));
	if (v == NULL)
		return -ENOMEM;
	/* a trailing newline is what "echo 5 > file" writes */
	len = strlen(value);
	if (len > 0 && value[len - 1] == '\n')
		len--;
	if (len >= sizeof(text)) {
		snprintf(why, sizeof(why), "value too long");
		rc = -EINVAL;
		goto out;
	}
	memcpy(text, value, len);
	text[len] = '\0';
	if (value_parse(p, text, v, why, sizeof(why)) != 0) {
		rc = -EINVAL;
		goto out;
	}
	if (section == CONFIG_NAMESPACE || section == CONFIG_STORAGE) {
		/* try it on a copy: cross-field rules must hold after the change */
		struct ns_config tmp = cfg->ns[ns_index];

		value_store(p, section == CONFIG_NAMESPACE ? (void *)&tmp : (void *)&tmp.storage, v);
		if (ns_check(&tmp, &row, why, sizeof(why)) != 0) {
			rc = -EINVAL;
			goto out;
		}
	}
	value_store(p, section_base(cfg, ns_index, section), v);
	/* the logger keeps its own level; keep it in step with the table */
	if (section == CONFIG_LOGGING && strcmp(p->name, "level") == 0)
		log_set_level((enum log_level)log_level_parse(v->s));
out:
	if (rc != 0 && err != NULL && err_size != 0)
		snprintf(err, err_size, "%s: %s", name, why);
	free(v);
	return rc;
}

/* ---- docs/configuration.md ------------------------------------------------------- */

/* A table cell: '|' would end the cell. */
static void
md_cell(FILE *out, const char *s)
{
	fputc(' ', out);
	for (; *s; s++) {
		if (*s == '|')
			fputs("\\|", out);
		else
			fputc(*s, out);
	}
	fputs(" |", out);
}

static const char *
type_doc_name(enum config_type t)
{
	switch (t) {
	case CONFIG_BOOL:   return "bool";
	case CONFIG_UINT:   return "integer";
	case CONFIG_SIZE:   return "size";
	case CONFIG_DOUBLE: return "number";
	case CONFIG_STRING: return "string";
	case CONFIG_MODE:   return "octal mode";
	case CONFIG_ENUM:   return "enum";
	case CONFIG_LIST:   return "list";
	}
	return "?";
}

static void
range_doc(const struct config_param *p, char *buf, size_t size)
{
	char lo[32], hi[32];

	switch (p->type) {
	case CONFIG_BOOL:
		snprintf(buf, size, "true, false");
		break;
	case CONFIG_UINT:
	case CONFIG_SIZE:
	case CONFIG_MODE:
		format_bound(p, p->min, lo, sizeof(lo));
		format_bound(p, p->max, hi, sizeof(hi));
		snprintf(buf, size, "%s..%s%s", lo, hi,
		    param_extra(p)->check == check_power_of_2 ? ", power of 2" : "");
		break;
	case CONFIG_DOUBLE:
		snprintf(buf, size, "%llu..%llu", (unsigned long long)p->min, (unsigned long long)p->max);
		break;
	case CONFIG_STRING:
		snprintf(buf, size, "%llu..%llu characters", (unsigned long long)p->min, (unsigned long long)p->max);
		break;
	case CONFIG_ENUM:
		snprintf(buf, size, "%s", p->choices);
		break;
	case CONFIG_LIST:
		snprintf(buf, size, "up to %llu entries", (unsigned long long)p->max);
		break;
	}
}

static void
md_table(FILE *out, enum config_section section, const char *title, const char *intro)
{
	char range[128];

	fprintf(out, "## %s\n\n%s\n\n", title, intro);
	fputs("| name | type | default | range | unit | dynamic | description |\n", out);
	fputs("|---|---|---|---|---|---|---|\n", out);
	for (size_t i = 0; i < N_PARAMS; i++) {
		const struct config_param *p = &config_table[i];
		char name[80];

		if (p->section != section)
			continue;
		snprintf(name, sizeof(name), "`%s`", p->name);
		range_doc(p, range, sizeof(range));
		fputc('|', out);
		md_cell(out, name);
		md_cell(out, type_doc_name(p->type));
		if (p->default_text == NULL)
			md_cell(out, "-");
		else if (p->default_text[0] == '\0')
			md_cell(out, "(empty)");
		else
			md_cell(out, p->default_text);
		md_cell(out, range);
		md_cell(out, p->unit[0] ? p->unit : "-");
		md_cell(out, p->dynamic ? "yes" : "no");
		md_cell(out, p->help);
		fputc('\n', out);
	}
	fputc('\n', out);
}

void
config_write_markdown(FILE *out)
{
	fputs("<!-- Generated by tools/gen-config-doc from the parameter table in src/config/config.c.\n"
	    "     Do not edit: change the table and run tools/gen-config-doc > docs/configuration.md. -->\n\n"
	    "# Configuration\n\n"
	    "recfsd reads one YAML file (`recfsd -c FILE`). Without `-c` it runs on a built-in default:\n"
	    "one namespace `test` on the device engine, a sparse 4 GiB file `test.dat` in the work\n"
	    "directory, replication-factor 1, no peers. `recfsd --check-config` validates a file and\n"
	    "prints the effective configuration, every parameter included.\n\n"
	    "Rules:\n\n"
	    "- Unknown keys, wrong types, out-of-range values and repeated keys are errors that name\n"
	    "  the file, the line and the key, for example\n"
	    "  `recfs.yaml:31: namespaces[0].storage-engine.write-block-size: 3M is not a power of 2`;\n"
	    "  recfsd refuses to start on them.\n"
	    "- Sizes are plain byte counts or take a `K`, `M`, `G` or `T` suffix (powers of 1024).\n"
	    "- Paths are absolute (recfsd may change its directory to `/` when it detaches).\n"
	    "- Each namespace starts from the defaults below; `name` and `storage-engine.type` are\n"
	    "  required, the device engine needs `files` or `devices`, the memory engine `data-size`.\n"
	    "- Parameters marked dynamic can be changed while recfsd runs by writing the new value to\n"
	    "  `MOUNT/.info/config/service/<name>` or `MOUNT/.info/config/namespaces/<ns>/<name>`\n"
	    "  (storage-engine parameters are flattened into the namespace). A bad value is refused\n"
	    "  with EINVAL and the old value stays; writing a static parameter gives EACCES.\n\n"
	    "## Example\n\n"
	    "```yaml\n", out);
	fputs(config_example_yaml, out);
	fputs("```\n\n", out);
	md_table(out, CONFIG_SERVICE, "service", "The node as a whole.");
	md_table(out, CONFIG_LOGGING, "logging", "The daemon's log.");
	md_table(out, CONFIG_FUSE, "fuse", "The mount.");
	md_table(out, CONFIG_NETWORK, "network",
	    "Clustering. A dotted name is a nested key: `fabric.port` is written `fabric: { port: 3001 }`.");
	md_table(out, CONFIG_NAMESPACE, "namespaces",
	    "A list; each entry is one namespace (at most 32).");
	md_table(out, CONFIG_STORAGE, "namespaces[].storage-engine",
	    "Where a namespace keeps its records.");
}
