/*
 * config.h - configuration: one table of parameters, a YAML loader, and the
 * effective configuration every subsystem reads.
 *
 * Every parameter is one row of the table in config.c (name, section, type,
 * default, min, max, unit, dynamic, help).  The loader, validation,
 * --check-config output, /.info/config files and docs/configuration.md are
 * all generated from those rows; nothing else lists parameters.
 *
 * Errors name the file, line and key:  "recfs.yaml:12: namespaces[0].storage-engine.filesize: 10 below minimum 16M".
 */
#ifndef RECFS_CONFIG_CONFIG_H
#define RECFS_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_NS_MAX 32
#define CONFIG_FILES_MAX 128
#define CONFIG_NAME_MAX 31
#define CONFIG_PATH_MAX 4096
#define CONFIG_SEEDS_MAX 64

enum storage_type { STORAGE_DEVICE = 0, STORAGE_MEMORY = 1 };

struct storage_config {
	enum storage_type type;
	unsigned n_files;                 /* files: or devices: entries */
	char *files[CONFIG_FILES_MAX];    /* owned; shadow files for memory */
	bool files_are_devices;           /* given as devices: */
	uint64_t filesize;                /* bytes per file */
	uint64_t data_size;               /* memory engine RAM */
	uint32_t write_block_size;        /* power of 2, 128K..8M */
	uint32_t flush_max_ms;            /* dynamic */
	uint64_t max_write_cache;         /* dynamic */
	uint64_t post_write_cache;        /* dynamic */
	bool commit_to_device;
	uint32_t defrag_lwm_pct;          /* dynamic */
	uint32_t defrag_sleep_us;         /* dynamic */
	uint32_t defrag_queue_min;        /* dynamic */
	bool direct_io;
	bool cold_start_empty;
	uint64_t max_record_size;         /* 0 = write-block-size */
	uint32_t tomb_raider_period;      /* s between tombstone reclaim passes, 0 = off; dynamic */
	uint32_t tomb_raider_eligible_age; /* s a tombstone stays at least, in a cluster; dynamic */
	uint32_t lock_wait_s;             /* not a row: the service's lock-wait, set by node_open */
};

/* Bytes a chunk record needs besides its content: header, set name (at
 * most 63), chunk key (36), metadata, bin header and end mark, rounded up. */
#define CONFIG_CHUNK_OVERHEAD 512u

/* The largest chunk size the default derives (bounds the memory of a large
 * file's dirty chunks and of its prefetch). */
#define CONFIG_CHUNK_DEFAULT_MAX (1u << 20)

/*
 * file-chunk-size 0: chunks whose records fill a write block.  A write block
 * of wbs bytes holds k chunk records, k the fewest for which a record is no
 * larger than max_record_size and than CONFIG_CHUNK_DEFAULT_MAX plus its
 * overhead; each chunk is the largest multiple of 4 KiB whose record fits
 * wbs / k.  1 MiB blocks: one chunk of 1020 KiB per block (a power of 2
 * would take a block of its own half empty); 8 MiB blocks: 8 of 1020 KiB.
 * 0 when no chunk of 4 KiB fits (the loader refuses such a namespace).
 */
static inline uint32_t
config_chunk_size_default(uint64_t max_record_size, uint64_t write_block_size)
{
	uint64_t rec = max_record_size < CONFIG_CHUNK_DEFAULT_MAX + CONFIG_CHUNK_OVERHEAD ?
	    max_record_size : CONFIG_CHUNK_DEFAULT_MAX + CONFIG_CHUNK_OVERHEAD;
	uint64_t k, per;

	if (rec < CONFIG_CHUNK_OVERHEAD + 4096 || write_block_size < rec)
		return 0;
	/* The fewest records of at most rec bytes that fill the block; one
	 * fewer when their share is below the smallest chunk (k - 1 records
	 * of rec bytes fit the block, so one step is enough). */
	for (k = (write_block_size + rec - 1) / rec; k > 1; k--)
		if (write_block_size / k >= CONFIG_CHUNK_OVERHEAD + 4096)
			break;
	per = write_block_size / k;
	if (per > rec)
		per = rec;
	return (uint32_t)((per - CONFIG_CHUNK_OVERHEAD) & ~(uint64_t)4095);
}

struct ns_config {
	char name[CONFIG_NAME_MAX + 1];
	uint32_t replication_factor;
	uint32_t default_ttl;             /* s, 0 = never; dynamic */
	uint32_t nsup_period;             /* s, 0 = off; dynamic */
	uint32_t chunk_reclaim_age;       /* s an unnamed chunk is kept; dynamic */
	uint32_t evict_used_pct;          /* dynamic */
	uint32_t stop_writes_used_pct;    /* dynamic */
	uint32_t stop_writes_avail_pct;   /* dynamic */
	uint32_t migrate_sleep_us;        /* us an emigration pauses after each record; dynamic */
	char file_bin[16];
	uint32_t file_chunk_size;         /* bytes of content per chunk record */
	struct storage_config storage;
	bool clustered;                   /* not a row: seeds given (the node joins a
	                                   * cluster), set by node_open */
};

struct recfs_config {
	/* service */
	char cluster_name[64];
	char node_id[17];                 /* "auto" or 16 hex digits */
	char work_directory[CONFIG_PATH_MAX];
	uint32_t ticker_interval;         /* s, 0 = off; dynamic */
	uint32_t transaction_max_ms;      /* ms, deadline of a request to another node; dynamic */
	uint32_t lock_wait;               /* s a start waits for a store's closing holder */
	/* logging */
	char log_file[CONFIG_PATH_MAX];   /* stderr | syslog | path */
	char log_level[16];               /* error|warn|info|debug; dynamic */
	/* fuse */
	uint32_t fuse_threads;
	uint64_t read_ahead;              /* bytes, 0 = the kernel's */
	double attr_timeout;
	double entry_timeout;
	uint32_t file_mode;
	uint32_t dir_mode;
	/* network (cluster issue) */
	char fabric_address[64];
	uint32_t fabric_port;
	unsigned n_seeds;
	char *seeds[CONFIG_SEEDS_MAX];
	uint32_t heartbeat_interval_ms;
	uint32_t heartbeat_timeout_count;
	char cluster_secret_file[CONFIG_PATH_MAX];
	char tls_certificate[CONFIG_PATH_MAX];  /* all three or none ("" = no TLS) */
	char tls_key[CONFIG_PATH_MAX];
	char tls_ca[CONFIG_PATH_MAX];
	uint32_t migrate_threads;         /* emigration threads running, 0 = paused; dynamic */
	uint32_t migrate_max_num_incoming; /* partitions received at once; dynamic */
	uint32_t migrate_yield_pct;       /* pause per time worked while clients are served; dynamic */
	/* namespaces */
	unsigned n_namespaces;
	struct ns_config ns[CONFIG_NS_MAX];
	/* where the configuration came from ("built-in default" or a path) */
	char source[CONFIG_PATH_MAX];
};

/* Parameter metadata (one row of the table). */
enum config_type { CONFIG_BOOL, CONFIG_UINT, CONFIG_SIZE, CONFIG_DOUBLE, CONFIG_STRING, CONFIG_MODE, CONFIG_ENUM, CONFIG_LIST };
enum config_section { CONFIG_SERVICE, CONFIG_LOGGING, CONFIG_FUSE, CONFIG_NETWORK, CONFIG_NAMESPACE, CONFIG_STORAGE };

struct config_param {
	const char *name;        /* YAML key, e.g. "defrag-lwm-pct"; nested network keys as "heartbeat.interval-ms" */
	enum config_section section;
	enum config_type type;
	const char *default_text;
	uint64_t min, max;       /* for UINT/SIZE */
	const char *unit;        /* "s", "ms", "us", "bytes", "%", "" */
	bool dynamic;
	const char *help;
	const char *choices;     /* for ENUM: "device|memory" */
	size_t offset;           /* into recfs_config, ns_config or storage_config */
};

/* The table (NULL-terminated count in *n). */
const struct config_param *config_params(size_t *n);
const struct config_param *config_param_find(enum config_section section, const char *name);

/* Fill cfg with the built-in default configuration (recfsd(8), FILES):
 * namespace "test" on the device engine, a sparse 4 GiB test.dat in the
 * work directory (/var/lib/recfs for root, else $XDG_DATA_HOME/recfs). */
void config_default(struct recfs_config *cfg);

/*
 * Load YAML from path / from a string (name used in messages).  On error
 * returns RECFS_ECONFIG (or -errno for I/O) and writes "FILE:LINE: KEY: why"
 * into err.  cfg is always left in a state config_free() can release.
 * cfg is output only: whatever it held is overwritten, not freed.  Loading
 * starts from the built-in service/logging/fuse/network values and no
 * namespaces; on error cfg holds exactly that.
 */
int config_load_file(struct recfs_config *cfg, const char *path, char *err, size_t err_size);
int config_load_string(struct recfs_config *cfg, const char *yaml, const char *name, char *err, size_t err_size);

/* Release owned strings. */
void config_free(struct recfs_config *cfg);

/* Print the effective configuration as YAML (--check-config). */
void config_print(const struct recfs_config *cfg, FILE *out);

/*
 * Read / write one parameter as text (for /.info/config).  ns_index is
 * ignored for service-level sections.  config_set validates exactly like
 * the loader; -EINVAL (bad value, err filled), -EACCES (static parameter),
 * -ENOENT (no such parameter or namespace).  It changes nothing on error.
 * config_get_text gives lists comma-separated and returns -ERANGE when buf
 * is too small.  Numeric fields are stored with relaxed atomic stores, so a
 * reader of a dynamic field should load it with atomic_load_relaxed().
 * Setting logging "level" also calls log_set_level().  Callers serialize
 * config_set_text() calls (one writer).
 */
int config_get_text(const struct recfs_config *cfg, int ns_index, enum config_section section,
    const char *name, char *buf, size_t buf_size);
int config_set_text(struct recfs_config *cfg, int ns_index, enum config_section section,
    const char *name, const char *value, char *err, size_t err_size);

/* Parse "64M", "4G", "1024", "128K" (powers of 1024).  0 or -EINVAL. */
int config_parse_size(const char *text, uint64_t *out);

/* Write docs/configuration.md text from the table. */
void config_write_markdown(FILE *out);

/* The example configuration shown in docs/configuration.md (static text). */
const char *config_example(void);

#endif
