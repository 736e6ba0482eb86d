/*
 * test_config.c - the configuration module: built-in defaults, the
 * example of docs/configuration.md, print/load round trips, every class of load error (asserting the
 * file, line and key the message names), size parsing and the /.info/config
 * accessors.  Leaks are caught by running the suite under ASan.
 *
 * Errors are asserted as substrings of the full "FILE:LINE: KEY: reason"
 * text so a test pins what a user reads, not how it is built.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/error.h"
#include "base/log.h"
#include "config/config.h"

/* The example of docs/configuration.md, verbatim. */
static const char spec_example[] =
	"service:\n"
	"  cluster-name: recfs\n"
	"  node-id: auto                 # or 16 hex digits; auto = generated once, kept in the work directory\n"
	"  work-directory: /var/lib/recfs\n"
	"  ticker-interval: 10           # seconds between summary log lines; 0 = off\n"
	"logging:\n"
	"  file: stderr                  # stderr | syslog | path\n"
	"  level: info\n"
	"fuse:\n"
	"  threads: 16\n"
	"  attr-timeout: 1.0\n"
	"  entry-timeout: 1.0\n"
	"  file-mode: \"0644\"             # defaults for records with no stored mode\n"
	"  dir-mode: \"0755\"\n"
	"network:                        # #cluster\n"
	"  fabric: { address: 127.0.0.1, port: 3001 }\n"
	"  seeds: [ \"127.0.0.1:3011\" ]\n"
	"  heartbeat: { interval-ms: 150, timeout-count: 10 }\n"
	"  cluster-secret-file: /etc/recfs/secret\n"
	"namespaces:\n"
	"  - name: test\n"
	"    replication-factor: 2\n"
	"    default-ttl: 0              # seconds; 0 = never expire\n"
	"    nsup-period: 120            # seconds between expiration/eviction passes; 0 = off\n"
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
	"      files: [ /var/lib/recfs/cache.shadow ]   # optional shadow persistence (#shadow)\n"
	"      filesize: 2G\n";

/* The smallest valid file; error tests append to or edit around it. */
#define MINIMAL_NS \
	"namespaces:\n" \
	"  - name: test\n" \
	"    storage-engine:\n" \
	"      type: device\n" \
	"      files: [ /tmp/test.dat ]\n"

/* config_print() into a malloc'd string. */
static char *
print_to_string(const struct recfs_config *cfg)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	config_print(cfg, f);
	assert_int_equal(fclose(f), 0);
	return text;
}

/* Every parameter of a and b reads back as the same text. */
static void
assert_same_config(const struct recfs_config *a, const struct recfs_config *b)
{
	size_t n;
	const struct config_param *params = config_params(&n);
	char va[8192], vb[8192];

	assert_int_equal(a->n_namespaces, b->n_namespaces);
	for (size_t i = 0; i < n; i++) {
		const struct config_param *p = &params[i];
		unsigned count = (p->section == CONFIG_NAMESPACE || p->section == CONFIG_STORAGE) ?
		    a->n_namespaces : 1;

		for (unsigned ns = 0; ns < count; ns++) {
			assert_int_equal(config_get_text(a, (int)ns, p->section, p->name, va, sizeof(va)), 0);
			assert_int_equal(config_get_text(b, (int)ns, p->section, p->name, vb, sizeof(vb)), 0);
			if (strcmp(va, vb) != 0)
				fail_msg("%s (ns %u): \"%s\" != \"%s\"", p->name, ns, va, vb);
		}
	}
	for (unsigned ns = 0; ns < a->n_namespaces; ns++)
		assert_int_equal(a->ns[ns].storage.files_are_devices, b->ns[ns].storage.files_are_devices);
}

/* Load text expecting failure; the message must contain want. */
static void
expect_error(const char *yaml, const char *want)
{
	struct recfs_config cfg;
	char err[512];
	int rc = config_load_string(&cfg, yaml, "bad.yaml", err, sizeof(err));

	if (rc != RECFS_ECONFIG)
		fail_msg("expected RECFS_ECONFIG for [%s], got %d", want, rc);
	if (strstr(err, want) == NULL)
		fail_msg("message \"%s\" does not contain \"%s\"", err, want);
	/* a failed load leaves service defaults and no namespaces */
	assert_int_equal(cfg.n_namespaces, 0);
	assert_int_equal(cfg.fuse_threads, 16);
	config_free(&cfg);
}

static void
load_ok(struct recfs_config *cfg, const char *yaml)
{
	char err[512] = "";
	int rc = config_load_string(cfg, yaml, "good.yaml", err, sizeof(err));

	if (rc != 0)
		fail_msg("load failed (%d): %s", rc, err);
}

/* ---- defaults ---- */

static void
test_config_default_is_one_device_namespace_test(void **state)
{
	struct recfs_config cfg;

	config_default(&cfg);
	assert_string_equal(cfg.source, "built-in default");
	assert_string_equal(cfg.cluster_name, "recfs");
	assert_string_equal(cfg.node_id, "auto");
	assert_int_equal(cfg.ticker_interval, 10);
	assert_string_equal(cfg.log_file, "stderr");
	assert_string_equal(cfg.log_level, "info");
	assert_int_equal(cfg.fuse_threads, 16);
	assert_true(cfg.attr_timeout == 1.0 && cfg.entry_timeout == 1.0);
	assert_int_equal(cfg.file_mode, 0644);
	assert_int_equal(cfg.dir_mode, 0755);
	assert_int_equal(cfg.n_seeds, 0);
	assert_int_equal(cfg.n_namespaces, 1);

	const struct ns_config *ns = &cfg.ns[0];
	assert_string_equal(ns->name, "test");
	assert_int_equal(ns->replication_factor, 1);
	assert_string_equal(ns->file_bin, "data");
	assert_int_equal(ns->stop_writes_used_pct, 70);
	assert_int_equal(ns->stop_writes_avail_pct, 5);
	assert_int_equal(ns->storage.type, STORAGE_DEVICE);
	assert_int_equal(ns->storage.n_files, 1);
	assert_false(ns->storage.files_are_devices);
	assert_int_equal(ns->storage.filesize, 4ULL << 30);
	assert_int_equal(ns->storage.write_block_size, 1 << 20);
	assert_int_equal(ns->storage.flush_max_ms, 1000);
	assert_int_equal(ns->storage.max_write_cache, 64 << 20);
	assert_int_equal(ns->storage.post_write_cache, 256 << 20);
	assert_false(ns->storage.commit_to_device);
	assert_int_equal(ns->storage.defrag_lwm_pct, 50);
	assert_int_equal(ns->storage.defrag_sleep_us, 1000);
	assert_int_equal(ns->storage.defrag_queue_min, 0);
	assert_true(ns->storage.direct_io);
	assert_false(ns->storage.cold_start_empty);
	/* the default 0 is resolved to the write-block size (.info shows it) */
	assert_int_equal(ns->storage.max_record_size, 1 << 20);

	char want[CONFIG_PATH_MAX + 16];
	snprintf(want, sizeof(want), "%s/test.dat", cfg.work_directory);
	assert_string_equal(ns->storage.files[0], want);
	config_free(&cfg);
}

static void
test_config_default_work_directory_follows_user(void **state)
{
	struct recfs_config cfg;
	char *old_xdg = getenv("XDG_DATA_HOME") ? strdup(getenv("XDG_DATA_HOME")) : NULL;
	char *old_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;

	setenv("XDG_DATA_HOME", "/tmp/xdg-data", 1);
	setenv("HOME", "/tmp/home-dir", 1);
	config_default(&cfg);
	if (geteuid() == 0) {
		assert_string_equal(cfg.work_directory, "/var/lib/recfs");
		assert_string_equal(cfg.ns[0].storage.files[0], "/var/lib/recfs/test.dat");
	} else {
		assert_string_equal(cfg.work_directory, "/tmp/xdg-data/recfs");
		config_free(&cfg);
		unsetenv("XDG_DATA_HOME");
		config_default(&cfg);
		assert_string_equal(cfg.work_directory, "/tmp/home-dir/.local/share/recfs");
		config_free(&cfg);
		/* the XDG spec says a relative XDG_DATA_HOME is ignored */
		setenv("XDG_DATA_HOME", "relative/dir", 1);
		config_default(&cfg);
		assert_string_equal(cfg.work_directory, "/tmp/home-dir/.local/share/recfs");
	}
	config_free(&cfg);
	if (old_xdg != NULL)
		setenv("XDG_DATA_HOME", old_xdg, 1);
	else
		unsetenv("XDG_DATA_HOME");
	if (old_home != NULL)
		setenv("HOME", old_home, 1);
	free(old_xdg);
	free(old_home);
}

/* Each row's default, applied by config_default(), reads back as the table says. */
static void
test_config_defaults_match_table(void **state)
{
	struct recfs_config cfg;
	size_t n;
	const struct config_param *params = config_params(&n);
	char buf[CONFIG_PATH_MAX];

	config_default(&cfg);
	assert_true(n >= 40);
	for (size_t i = 0; i < n; i++) {
		const struct config_param *p = &params[i];

		assert_non_null(p->name);
		assert_non_null(p->help);
		assert_true(strlen(p->help) > 10);
		assert_ptr_equal(config_param_find(p->section, p->name), p);
		/* lists are built by the loader only; no runtime change for them */
		if (p->type == CONFIG_LIST)
			assert_false(p->dynamic);
		if (p->type == CONFIG_ENUM)
			assert_non_null(p->choices);
		/* computed defaults: the work directory follows the user, and
		 * max-record-size 0 resolves to the write-block size (asserted in
		 * test_config_default_is_one_device_namespace_test) */
		if (p->default_text == NULL || p->type == CONFIG_LIST || strcmp(p->name, "work-directory") == 0 ||
		    strcmp(p->name, "max-record-size") == 0 || strcmp(p->name, "file-chunk-size") == 0)
			continue;
		assert_int_equal(config_get_text(&cfg, 0, p->section, p->name, buf, sizeof(buf)), 0);
		if (strcmp(buf, p->default_text) != 0)
			fail_msg("%s: default \"%s\" reads back as \"%s\"", p->name, p->default_text, buf);
	}
	config_free(&cfg);
}

/* The dynamic set is exactly what docs/configuration.md promises. */
static void
test_config_dynamic_params_are_the_documented_ones(void **state)
{
	static const char *const dynamic[] = {
		"ticker-interval", "level", "default-ttl", "nsup-period", "chunk-reclaim-age", "evict-used-pct",
		"stop-writes-used-pct", "stop-writes-avail-pct", "flush-max-ms", "max-write-cache",
		"post-write-cache", "defrag-lwm-pct", "defrag-sleep", "defrag-queue-min",
		"tomb-raider-period", "tomb-raider-eligible-age", "transaction-max-ms", "migrate-threads",
		"migrate-max-num-incoming", "migrate-yield-pct", "migrate-sleep",
	};
	size_t n, found = 0;
	const struct config_param *params = config_params(&n);

	for (size_t i = 0; i < n; i++) {
		bool listed = false;
		for (size_t j = 0; j < sizeof(dynamic) / sizeof(dynamic[0]); j++)
			listed |= strcmp(params[i].name, dynamic[j]) == 0;
		if (params[i].dynamic != listed)
			fail_msg("%s: dynamic is %d", params[i].name, params[i].dynamic);
		found += listed;
	}
	assert_int_equal(found, sizeof(dynamic) / sizeof(dynamic[0]));
}

/* ---- loading ---- */

static void
test_config_spec_example_loads(void **state)
{
	struct recfs_config cfg;

	load_ok(&cfg, spec_example);
	assert_string_equal(cfg.source, "good.yaml");
	assert_string_equal(cfg.work_directory, "/var/lib/recfs");
	assert_string_equal(cfg.fabric_address, "127.0.0.1");
	assert_int_equal(cfg.fabric_port, 3001);
	assert_int_equal(cfg.n_seeds, 1);
	assert_string_equal(cfg.seeds[0], "127.0.0.1:3011");
	assert_int_equal(cfg.heartbeat_interval_ms, 150);
	assert_int_equal(cfg.heartbeat_timeout_count, 10);
	assert_string_equal(cfg.cluster_secret_file, "/etc/recfs/secret");
	assert_int_equal(cfg.file_mode, 0644);
	assert_int_equal(cfg.n_namespaces, 2);

	assert_string_equal(cfg.ns[0].name, "test");
	assert_int_equal(cfg.ns[0].replication_factor, 2);
	assert_int_equal(cfg.ns[0].nsup_period, 120);
	assert_int_equal(cfg.ns[0].storage.type, STORAGE_DEVICE);
	assert_int_equal(cfg.ns[0].storage.n_files, 1);
	assert_string_equal(cfg.ns[0].storage.files[0], "/var/lib/recfs/test.dat");
	assert_int_equal(cfg.ns[0].storage.filesize, 4ULL << 30);
	assert_true(cfg.ns[0].storage.direct_io);

	/* the second namespace starts from the table's namespace defaults */
	assert_string_equal(cfg.ns[1].name, "cache");
	assert_int_equal(cfg.ns[1].replication_factor, 1);
	assert_string_equal(cfg.ns[1].file_bin, "data");
	assert_int_equal(cfg.ns[1].stop_writes_used_pct, 70);
	assert_int_equal(cfg.ns[1].storage.type, STORAGE_MEMORY);
	assert_int_equal(cfg.ns[1].storage.data_size, 1ULL << 30);
	assert_int_equal(cfg.ns[1].storage.filesize, 2ULL << 30);
	assert_int_equal(cfg.ns[1].storage.write_block_size, 1 << 20);
	assert_string_equal(cfg.ns[1].storage.files[0], "/var/lib/recfs/cache.shadow");
	config_free(&cfg);
}

static void
test_config_doc_example_loads(void **state)
{
	struct recfs_config cfg;

	load_ok(&cfg, config_example());
	assert_int_equal(cfg.n_namespaces, 2);
	config_free(&cfg);
}

static void
test_config_file_without_namespaces_is_refused(void **state)
{
	expect_error("", "bad.yaml:1: no namespaces configured");
	expect_error("service:\n  ticker-interval: 5\n", "bad.yaml:1: namespaces: no namespaces configured");
	expect_error("service:\n  ticker-interval: 5\nnamespaces: []\n",
	    "bad.yaml:3: namespaces: no namespaces configured");
}

static void
test_config_minimal_file_takes_defaults(void **state)
{
	struct recfs_config cfg;

	load_ok(&cfg, MINIMAL_NS "fuse:\n  threads: 4\n");
	assert_int_equal(cfg.fuse_threads, 4);
	assert_int_equal(cfg.ticker_interval, 10);
	assert_int_equal(cfg.n_namespaces, 1);
	assert_int_equal(cfg.ns[0].storage.write_block_size, 1 << 20);
	assert_int_equal(cfg.ns[0].nsup_period, 120);
	config_free(&cfg);
}

static void
test_config_devices_and_nested_network_load(void **state)
{
	struct recfs_config cfg;

	load_ok(&cfg,
	    "network:\n"
	    "  fabric:\n"
	    "    port: 4001\n"
	    "  heartbeat: { interval-ms: 200 }\n"
	    "namespaces:\n"
	    "  - name: raw_1\n"
	    "    storage-engine:\n"
	    "      type: device\n"
	    "      devices:\n"
	    "        - /dev/nvme0n1\n"
	    "        - /dev/nvme1n1\n"
	    "      commit-to-device: yes\n"
	    "      max-record-size: 128K\n"
	    "      write-block-size: 128K\n");
	assert_int_equal(cfg.fabric_port, 4001);
	assert_string_equal(cfg.fabric_address, "127.0.0.1");
	assert_int_equal(cfg.heartbeat_interval_ms, 200);
	assert_int_equal(cfg.heartbeat_timeout_count, 10);
	assert_true(cfg.ns[0].storage.files_are_devices);
	assert_int_equal(cfg.ns[0].storage.n_files, 2);
	assert_string_equal(cfg.ns[0].storage.files[1], "/dev/nvme1n1");
	assert_true(cfg.ns[0].storage.commit_to_device);
	assert_int_equal(cfg.ns[0].storage.max_record_size, 128 << 10);
	config_free(&cfg);
}

static void
test_config_load_file_reads_and_names_the_file(void **state)
{
	char path[] = "/tmp/test_config_XXXXXX";
	int fd = mkstemp(path);
	struct recfs_config cfg;
	char err[512];
	const char text[] = MINIMAL_NS "      filesize: 1\n";

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
	close(fd);
	assert_int_equal(config_load_file(&cfg, path, err, sizeof(err)), RECFS_ECONFIG);
	char want[256];
	snprintf(want, sizeof(want), "%s:6: namespaces[0].storage-engine.filesize: 1 below minimum 16M", path);
	assert_string_equal(err, want);
	config_free(&cfg);
	unlink(path);

	assert_int_equal(config_load_file(&cfg, "/nonexistent/recfs.yaml", err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "/nonexistent/recfs.yaml: No such file or directory");
	config_free(&cfg);

	/* a reload may name the file by the old config's own source field */
	load_ok(&cfg, MINIMAL_NS);
	config_free(&cfg);      /* frees the lists; source stays readable */
	assert_int_equal(config_load_string(&cfg, MINIMAL_NS, cfg.source, err, sizeof(err)), 0);
	assert_string_equal(cfg.source, "good.yaml");
	config_free(&cfg);
}

/* ---- round trip ---- */

static void
round_trip(const struct recfs_config *a)
{
	struct recfs_config b, c;
	char *text = print_to_string(a), *text2;
	char err[512] = "";

	if (config_load_string(&b, text, "printed", err, sizeof(err)) != 0)
		fail_msg("printed config does not load: %s\n%s", err, text);
	assert_same_config(a, &b);
	/* printing again gives the same text, apart from the source comment */
	text2 = print_to_string(&b);
	assert_string_equal(strchr(text, '\n'), strchr(text2, '\n'));
	load_ok(&c, text2);
	assert_same_config(a, &c);
	config_free(&b);
	config_free(&c);
	free(text);
	free(text2);
}

static void
test_config_print_load_round_trip(void **state)
{
	struct recfs_config cfg;

	load_ok(&cfg, spec_example);
	round_trip(&cfg);
	config_free(&cfg);

	config_default(&cfg);
	round_trip(&cfg);
	config_free(&cfg);

	/* strings that need quoting, odd doubles, devices, unusual values */
	load_ok(&cfg,
	    "service:\n"
	    "  cluster-name: \"two words: #1 \\\"q\\\"\"\n"
	    "  node-id: 0123456789abcdef\n"
	    "  work-directory: \"/srv/with space/recfs\"\n"
	    "logging: { file: syslog, level: debug }\n"
	    "fuse: { attr-timeout: 0.1, entry-timeout: 2.5e-3, file-mode: \"600\" }\n"
	    "network:\n"
	    "  seeds: [ \"[::1]:3011\", host:3012 ]\n"
	    "  cluster-secret-file: /etc/secret\n"
	    "namespaces:\n"
	    "  - name: \"null\"\n"
	    "    file-bin: \"- x\"\n"
	    "    default-ttl: 3600\n"
	    "    storage-engine:\n"
	    "      type: device\n"
	    "      devices: [ /dev/sdb ]\n"
	    "      filesize: 1000000000\n"
	    "      max-write-cache: 3M\n"
	    "  - name: m\n"
	    "    storage-engine:\n"
	    "      type: memory\n"
	    "      data-size: 16M\n");
	assert_string_equal(cfg.cluster_name, "two words: #1 \"q\"");
	assert_string_equal(cfg.ns[0].name, "null");
	assert_string_equal(cfg.ns[0].file_bin, "- x");
	assert_int_equal(cfg.file_mode, 0600);
	assert_int_equal(cfg.ns[1].storage.n_files, 0);
	round_trip(&cfg);
	config_free(&cfg);
}

/* ---- errors: each names the line and the key ---- */

static void
test_config_unknown_key_names_line_and_path(void **state)
{
	expect_error(
	    "service:\n"
	    "  cluster-name: recfs\n"
	    "namespaces:\n"
	    "  - name: test\n"
	    "    storage-engine:\n"
	    "      type: device\n"
	    "      filesiz: 4G\n",
	    "bad.yaml:7: namespaces[0].storage-engine.filesiz: unknown key");
	expect_error("servce:\n  x: 1\n", "bad.yaml:1: servce: unknown key");
	expect_error(MINIMAL_NS "network:\n  fabric: { adress: x }\n",
	    "bad.yaml:7: network.fabric.adress: unknown key");
	expect_error(MINIMAL_NS "    colour: blue\n", "bad.yaml:6: namespaces[0].colour: unknown key");
}

static void
test_config_wrong_type_is_refused(void **state)
{
	expect_error("fuse:\n  threads: lots\n" MINIMAL_NS,
	    "bad.yaml:2: fuse.threads: expected a number, got \"lots\"");
	expect_error("fuse:\n  threads: [ 1 ]\n" MINIMAL_NS, "bad.yaml:2: fuse.threads: expected a number");
	expect_error("fuse:\n  threads: -1\n" MINIMAL_NS, "bad.yaml:2: fuse.threads: expected a number");
	expect_error("fuse:\n  attr-timeout: soon\n" MINIMAL_NS, "bad.yaml:2: fuse.attr-timeout: expected a number");
	expect_error("fuse:\n  attr-timeout: nan\n" MINIMAL_NS, "bad.yaml:2: fuse.attr-timeout: expected a number");
	expect_error("fuse:\n  file-mode: rw-r--r--\n" MINIMAL_NS, "bad.yaml:2: fuse.file-mode: expected an octal mode");
	expect_error("service: 5\n" MINIMAL_NS, "bad.yaml:1: service: expected a mapping");
	expect_error("namespaces: { name: x }\n", "bad.yaml:1: namespaces: expected a list of namespaces");
	expect_error(MINIMAL_NS "      direct-io: maybe\n",
	    "bad.yaml:6: namespaces[0].storage-engine.direct-io: expected true or false, got \"maybe\"");
	expect_error(MINIMAL_NS "      filesize: 4X\n",
	    "bad.yaml:6: namespaces[0].storage-engine.filesize: expected a size");
	expect_error(MINIMAL_NS "      filesize: { a: 1 }\n",
	    "bad.yaml:6: namespaces[0].storage-engine.filesize: expected a size");
	expect_error("namespaces:\n  - name: test\n    storage-engine:\n      type: disk\n      files: [ /a ]\n",
	    "bad.yaml:4: namespaces[0].storage-engine.type: \"disk\" is not one of device|memory");
	expect_error("namespaces:\n  - name: test\n    storage-engine:\n      type: device\n      files: /a\n",
	    "bad.yaml:5: namespaces[0].storage-engine.files: expected a list");
	expect_error("logging:\n  level: loud\n" MINIMAL_NS, "bad.yaml:2: logging.level: \"loud\" is not one of");
}

static void
test_config_out_of_range_is_refused(void **state)
{
	expect_error(MINIMAL_NS "      defrag-lwm-pct: 150\n",
	    "bad.yaml:6: namespaces[0].storage-engine.defrag-lwm-pct: 150 above maximum 100");
	expect_error(MINIMAL_NS "      filesize: 10\n",
	    "bad.yaml:6: namespaces[0].storage-engine.filesize: 10 below minimum 16M");
	expect_error(MINIMAL_NS "      write-block-size: 16M\n",
	    "bad.yaml:6: namespaces[0].storage-engine.write-block-size: 16M above maximum 8M");
	expect_error("fuse:\n  threads: 0\n" MINIMAL_NS, "bad.yaml:2: fuse.threads: 0 below minimum 1");
	expect_error("fuse:\n  threads: 99999999999999999999999\n" MINIMAL_NS, "bad.yaml:2: fuse.threads: expected a number");
	expect_error("fuse:\n  entry-timeout: 7200\n" MINIMAL_NS,
	    "bad.yaml:2: fuse.entry-timeout: 7200 above maximum 3600");
	expect_error("fuse:\n  dir-mode: \"17777\"\n" MINIMAL_NS, "bad.yaml:2: fuse.dir-mode: 17777 above maximum 7777");
	expect_error(MINIMAL_NS "    stop-writes-used-pct: 101\n",
	    "bad.yaml:6: namespaces[0].stop-writes-used-pct: 101 above maximum 100");
}

static void
test_config_write_block_size_must_be_power_of_2(void **state)
{
	expect_error(MINIMAL_NS "      write-block-size: 3M\n",
	    "bad.yaml:6: namespaces[0].storage-engine.write-block-size: 3M is not a power of 2");
	expect_error(MINIMAL_NS "      write-block-size: 200000\n",
	    "write-block-size: 200000 is not a power of 2");
}

static void
test_config_bad_names_are_refused(void **state)
{
	expect_error("namespaces:\n  - name: \"bad name!\"\n    storage-engine: { type: memory, data-size: 1G }\n",
	    "bad.yaml:2: namespaces[0].name: \"bad name!\" is not a valid namespace name");
	expect_error("namespaces:\n  - name: a234567890123456789012345678901x\n"
	    "    storage-engine: { type: memory, data-size: 1G }\n",
	    "bad.yaml:2: namespaces[0].name: \"a234567890123456789012345678901x\" longer than 31 characters");
	expect_error("namespaces:\n  - name: \"\"\n    storage-engine: { type: memory, data-size: 1G }\n",
	    "bad.yaml:2: namespaces[0].name: must not be empty");
	expect_error(MINIMAL_NS "    file-bin: a.b\n", "bad.yaml:6: namespaces[0].file-bin: \"a.b\": a bin name cannot contain '.'");
	expect_error(MINIMAL_NS "    file-bin: sixteen_chars_xx\n", "bad.yaml:6: namespaces[0].file-bin:");
	expect_error("service: { node-id: 12345 }\n" MINIMAL_NS, "bad.yaml:1: service.node-id: \"12345\" is neither auto");
}

static void
test_config_duplicates_are_refused(void **state)
{
	expect_error(MINIMAL_NS
	    "  - name: test\n"
	    "    storage-engine: { type: memory, data-size: 1G }\n",
	    "bad.yaml:6: namespaces[1].name: duplicate namespace name \"test\" (also namespaces[0])");
	expect_error("fuse:\n  threads: 4\n  threads: 5\n" MINIMAL_NS,
	    "bad.yaml:3: fuse: duplicate key threads (first on line 2)");
	expect_error(MINIMAL_NS "service: {}\nservice: {}\n", "bad.yaml:7: duplicate key service");
}

/* A chunk is one record: its content and its key and header fit max-record-size. */
static void
test_config_file_chunk_size_must_fit_a_record(void **state)
{
	struct recfs_config cfg;

	(void)state;
	expect_error(MINIMAL_NS "      max-record-size: 512K\n    file-chunk-size: 512K\n",
	    "bad.yaml:7: namespaces[0].file-chunk-size: 512K plus 512 bytes of chunk record overhead "
	    "is larger than max-record-size 512K");
	/* no explicit chunk size, and no room for the smallest derived one
	 * (found by fuzz_config: the printed configuration did not load) */
	expect_error(MINIMAL_NS "      max-record-size: 2K\n",
	    "bad.yaml:6: namespaces[0].storage-engine.max-record-size: 2K leaves no room for a chunk of a "
	    "large file (at least 4K plus 512 bytes)");
	expect_error(MINIMAL_NS "    file-chunk-size: 100\n",
	    "bad.yaml:6: namespaces[0].file-chunk-size: 100: use 0 (= derived from max-record-size) "
	    "or at least 4K");
	load_ok(&cfg, MINIMAL_NS "    file-chunk-size: 256K\n");
	assert_int_equal(cfg.ns[0].file_chunk_size, 256 << 10);
	config_free(&cfg);
	/* 0 (the default): chunks whose records fill a write block - the
	 * largest multiple of 4K that fits with its record overhead, at most 1M */
	load_ok(&cfg, MINIMAL_NS);
	assert_int_equal(cfg.ns[0].storage.write_block_size, 1 << 20);
	assert_int_equal(cfg.ns[0].file_chunk_size, 1020 << 10);
	config_free(&cfg);
	/* 8 chunk records of 1020K fill an 8M block */
	load_ok(&cfg, MINIMAL_NS "      write-block-size: 8M\n");
	assert_int_equal(cfg.ns[0].file_chunk_size, 1020 << 10);
	config_free(&cfg);
	load_ok(&cfg, MINIMAL_NS "      write-block-size: 128K\n");
	assert_int_equal(cfg.ns[0].file_chunk_size, 124 << 10);
	config_free(&cfg);
	/* records of at most 128K: 8 per 1M block */
	load_ok(&cfg, MINIMAL_NS "      max-record-size: 128K\n");
	assert_int_equal(cfg.ns[0].file_chunk_size, 124 << 10);
	config_free(&cfg);
	/* records of at most 600K: 2 per 1M block, not 1 and 40% empty */
	load_ok(&cfg, MINIMAL_NS "      max-record-size: 600K\n");
	assert_int_equal(cfg.ns[0].file_chunk_size, 508 << 10);
	config_free(&cfg);
	for (uint64_t wbs = 4 << 10; wbs <= 8 << 20; wbs <<= 1) {
		for (uint64_t mrs = 4608; mrs <= wbs; mrs += mrs / 3) {
			uint32_t c = config_chunk_size_default(mrs, wbs);

			/* a multiple of 4K that fits a record, and the records
			 * of a block leave less than one more 4K page each */
			assert_true(c >= 4096 && c % 4096 == 0 && c <= 1 << 20);
			assert_true(c + CONFIG_CHUNK_OVERHEAD <= mrs);
			assert_true(wbs / (c + CONFIG_CHUNK_OVERHEAD) * (c + CONFIG_CHUNK_OVERHEAD + 4096) > wbs ||
			    c == 1020 << 10);
		}
		assert_int_equal(config_chunk_size_default(4096, wbs), 0);
	}
}

static void
test_config_missing_required_keys_are_refused(void **state)
{
	expect_error("namespaces:\n  - name: test\n    replication-factor: 1\n",
	    "bad.yaml:2: namespaces[0]: missing required key storage-engine");
	expect_error("namespaces:\n  - storage-engine: { type: memory, data-size: 1G }\n",
	    "bad.yaml:2: namespaces[0]: missing required key name");
	expect_error("namespaces:\n  - name: x\n    storage-engine:\n      files: [ /a ]\n",
	    "bad.yaml:4: namespaces[0].storage-engine: missing required key type");
	expect_error("namespaces:\n  - name: x\n    storage-engine:\n      type: device\n",
	    "bad.yaml:4: namespaces[0].storage-engine: device engine needs files or devices");
	expect_error("namespaces:\n  - name: x\n    storage-engine:\n      type: memory\n",
	    "bad.yaml:4: namespaces[0].storage-engine: memory engine needs data-size");
}

static void
test_config_inconsistent_namespace_is_refused(void **state)
{
	expect_error(MINIMAL_NS "      devices: [ /dev/sdb ]\n",
	    "bad.yaml:6: namespaces[0].storage-engine: files and devices cannot both be given");
	expect_error(MINIMAL_NS "      write-block-size: 256K\n      max-record-size: 512K\n",
	    "bad.yaml:7: namespaces[0].storage-engine.max-record-size: 512K is larger than write-block-size 256K");
	expect_error(MINIMAL_NS "      data-size: 1G\n",
	    "bad.yaml:6: namespaces[0].storage-engine.data-size: only used by the memory engine");
	expect_error("namespaces:\n  - name: m\n    storage-engine:\n      type: memory\n"
	    "      data-size: 4G\n      files: [ /a ]\n      filesize: 1G\n",
	    "bad.yaml:7: namespaces[0].storage-engine.filesize: 1 shadow file(s) of 1G cannot hold data-size 4G");
	expect_error(MINIMAL_NS "    default-ttl: 60\n    nsup-period: 0\n",
	    "bad.yaml:6: namespaces[0].default-ttl: a default-ttl of 60 needs nsup-period > 0");
	expect_error("namespaces:\n  - name: x\n    storage-engine:\n      type: device\n      files: [ relative.dat ]\n",
	    "bad.yaml:5: namespaces[0].storage-engine.files: \"relative.dat\" is not an absolute path");
	expect_error("network:\n  seeds: [ \"a:1\" ]\n" MINIMAL_NS,
	    "bad.yaml:2: network.seeds: seeds need a cluster-secret-file");
	expect_error("network:\n  seeds: [ nohost ]\n" MINIMAL_NS, "bad.yaml:2: network.seeds: \"nohost\" is not host:port");
	/* TLS: all three files or none, absolute paths */
	expect_error("network:\n  tls: { certificate: /c.pem, ca: /ca.pem }\n" MINIMAL_NS,
	    "bad.yaml:2: network.tls.key: not set: network.tls needs certificate, key and ca");
	expect_error("network:\n  tls:\n    key: /k.pem\n" MINIMAL_NS,
	    "bad.yaml:3: network.tls.certificate: not set: network.tls needs certificate, key and ca");
	expect_error("network:\n  tls: { certificate: c.pem, key: /k.pem, ca: /ca.pem }\n" MINIMAL_NS,
	    "bad.yaml:2: network.tls.certificate: \"c.pem\" is not an absolute path");
	expect_error("logging:\n  file: log.txt\n" MINIMAL_NS, "bad.yaml:2: logging.file: \"log.txt\" is not stderr");
}

static void
test_config_syntax_error_names_line(void **state)
{
	expect_error("service:\n  ticker-interval: 10\n bad indent: 1\n" MINIMAL_NS, "bad.yaml:3: syntax error:");
	expect_error(MINIMAL_NS "      files: [ /a, /b\n", "bad.yaml:7: syntax error:");
	expect_error("namespaces: *nothing\n", "bad.yaml:1: syntax error:");
	expect_error(MINIMAL_NS "---\nservice: {}\n", "bad.yaml:7: more than one YAML document");
	expect_error("fuse: { threads: \"1\\x00\" }\n" MINIMAL_NS, "bad.yaml:1: fuse.threads: NUL byte in value");
	expect_error("fuse:\n  threads: \xc3\x28\n", "bad.yaml:2: syntax error: invalid");
}

/* Errors in a later namespace must not leak what earlier ones allocated. */
static void
test_config_failed_load_releases_partial_state(void **state)
{
	expect_error(
	    "network:\n  seeds: [ \"a:1\", \"b:2\" ]\n  cluster-secret-file: /s\n"
	    MINIMAL_NS
	    "  - name: second\n"
	    "    storage-engine:\n"
	    "      type: device\n"
	    "      files: [ /x/1, /x/2, /x/3 ]\n"
	    "      bogus: 1\n",
	    "bad.yaml:13: namespaces[1].storage-engine.bogus: unknown key");
}

/* ---- sizes ---- */

static void
test_config_parse_size_accepts_suffixes(void **state)
{
	static const struct { const char *text; uint64_t value; } ok[] = {
		{ "0", 0 }, { "1024", 1024 }, { "128K", 128 << 10 }, { "128k", 128 << 10 },
		{ "1M", 1 << 20 }, { "64m", 64 << 20 }, { "4G", 4ULL << 30 }, { "2T", 2ULL << 40 },
		{ "16777216", 16 << 20 }, { "18446744073709551615", UINT64_MAX },
	};
	static const char *const bad[] = {
		"", "K", "1KB", "1.5M", "-1", " 1M", "1M ", "1X", "0x10", "16777216T", "18446744073709551616",
	};
	uint64_t v;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		v = 7;
		assert_int_equal(config_parse_size(ok[i].text, &v), 0);
		assert_int_equal(v, ok[i].value);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (config_parse_size(bad[i], &v) != -EINVAL)
			fail_msg("\"%s\" accepted", bad[i]);
	}
	assert_int_equal(config_parse_size(NULL, &v), -EINVAL);
}

/* ---- /.info/config ---- */

static void
test_config_set_text_changes_dynamic_params(void **state)
{
	struct recfs_config cfg;
	char buf[64], err[256];

	load_ok(&cfg, spec_example);
	assert_int_equal(config_set_text(&cfg, 0, CONFIG_STORAGE, "defrag-lwm-pct", "30\n", err, sizeof(err)), 0);
	assert_int_equal(cfg.ns[0].storage.defrag_lwm_pct, 30);
	assert_int_equal(config_get_text(&cfg, 0, CONFIG_STORAGE, "defrag-lwm-pct", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "30");
	assert_int_equal(config_set_text(&cfg, 1, CONFIG_STORAGE, "max-write-cache", "128M", err, sizeof(err)), 0);
	assert_int_equal(cfg.ns[1].storage.max_write_cache, 128 << 20);
	assert_int_equal(cfg.ns[0].storage.max_write_cache, 64 << 20);
	assert_int_equal(config_set_text(&cfg, 0, CONFIG_NAMESPACE, "default-ttl", "3600", err, sizeof(err)), 0);
	assert_int_equal(cfg.ns[0].default_ttl, 3600);
	assert_int_equal(config_set_text(&cfg, 0, CONFIG_SERVICE, "ticker-interval", "0", err, sizeof(err)), 0);
	assert_int_equal(cfg.ticker_interval, 0);

	/* the logger follows the level */
	assert_int_equal(config_set_text(&cfg, 0, CONFIG_LOGGING, "level", "debug", err, sizeof(err)), 0);
	assert_string_equal(cfg.log_level, "debug");
	assert_int_equal(log_current_level, LOG_LEVEL_DEBUG);
	assert_int_equal(config_set_text(&cfg, 0, CONFIG_LOGGING, "level", "info", err, sizeof(err)), 0);
	assert_int_equal(log_current_level, LOG_LEVEL_INFO);
	config_free(&cfg);
}

static void
test_config_set_text_refuses_static_bad_and_unknown(void **state)
{
	struct recfs_config cfg;
	char buf[64], err[256];

	load_ok(&cfg, spec_example);
	assert_int_equal(config_set_text(&cfg, 0, CONFIG_STORAGE, "write-block-size", "2M", err, sizeof(err)), -EACCES);
	assert_int_equal(cfg.ns[0].storage.write_block_size, 1 << 20);
	assert_non_null(strstr(err, "write-block-size: static"));
	assert_int_equal(config_set_text(&cfg, 0, CONFIG_STORAGE, "files", "/x", err, sizeof(err)), -EACCES);

	assert_int_equal(config_set_text(&cfg, 0, CONFIG_STORAGE, "defrag-lwm-pct", "150", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "defrag-lwm-pct: 150 above maximum 100");
	assert_int_equal(cfg.ns[0].storage.defrag_lwm_pct, 50);
	assert_int_equal(config_set_text(&cfg, 0, CONFIG_STORAGE, "flush-max-ms", "soon", err, sizeof(err)), -EINVAL);
	assert_int_equal(cfg.ns[0].storage.flush_max_ms, 1000);
	assert_int_equal(config_set_text(&cfg, 0, CONFIG_LOGGING, "level", "loud", err, sizeof(err)), -EINVAL);
	assert_string_equal(cfg.log_level, "info");
	/* cross-field rules hold at runtime too */
	cfg.ns[0].storage.write_block_size = 8 << 20;
	assert_int_equal(config_set_text(&cfg, 0, CONFIG_STORAGE, "max-write-cache", "4M", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "max-write-cache: 4M is smaller than write-block-size 8M");
	assert_int_equal(cfg.ns[0].storage.max_write_cache, 64 << 20);
	cfg.ns[0].storage.write_block_size = 1 << 20;
	assert_int_equal(config_set_text(&cfg, 0, CONFIG_NAMESPACE, "default-ttl", "60", err, sizeof(err)), 0);
	assert_int_equal(config_set_text(&cfg, 0, CONFIG_NAMESPACE, "nsup-period", "0", err, sizeof(err)), -EINVAL);
	assert_int_equal(cfg.ns[0].nsup_period, 120);

	assert_int_equal(config_set_text(&cfg, 0, CONFIG_STORAGE, "no-such", "1", err, sizeof(err)), -ENOENT);
	assert_int_equal(config_set_text(&cfg, 0, CONFIG_SERVICE, "defrag-lwm-pct", "1", err, sizeof(err)), -ENOENT);
	assert_int_equal(config_set_text(&cfg, 2, CONFIG_STORAGE, "defrag-lwm-pct", "1", err, sizeof(err)), -ENOENT);
	assert_int_equal(config_set_text(&cfg, -1, CONFIG_STORAGE, "defrag-lwm-pct", "1", err, sizeof(err)), -ENOENT);
	assert_int_equal(config_get_text(&cfg, 5, CONFIG_NAMESPACE, "name", buf, sizeof(buf)), -ENOENT);
	assert_int_equal(config_get_text(&cfg, 0, CONFIG_NAMESPACE, "nope", buf, sizeof(buf)), -ENOENT);
	config_free(&cfg);
}

static void
test_config_get_text_formats_values(void **state)
{
	struct recfs_config cfg;
	char buf[256], tiny[4];

	load_ok(&cfg, spec_example);
	assert_int_equal(config_get_text(&cfg, 0, CONFIG_STORAGE, "filesize", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "4G");
	assert_int_equal(config_get_text(&cfg, 1, CONFIG_STORAGE, "type", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "memory");
	assert_int_equal(config_get_text(&cfg, 0, CONFIG_FUSE, "file-mode", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "0644");
	assert_int_equal(config_get_text(&cfg, 0, CONFIG_FUSE, "attr-timeout", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "1.0");
	assert_int_equal(config_get_text(&cfg, 0, CONFIG_NETWORK, "fabric.port", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "3001");
	assert_int_equal(config_get_text(&cfg, 0, CONFIG_NETWORK, "seeds", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "127.0.0.1:3011");
	assert_int_equal(config_get_text(&cfg, 0, CONFIG_STORAGE, "devices", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
	assert_int_equal(config_get_text(&cfg, 0, CONFIG_STORAGE, "commit-to-device", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "false");
	assert_int_equal(config_get_text(&cfg, 0, CONFIG_STORAGE, "files", tiny, sizeof(tiny)), -ERANGE);
	assert_int_equal(config_get_text(&cfg, 0, CONFIG_SERVICE, "cluster-name", tiny, sizeof(tiny)), -ERANGE);
	config_free(&cfg);
}

/* ---- docs ---- */

static void
test_config_markdown_documents_every_param(void **state)
{
	char *text = NULL;
	size_t len = 0, n;
	FILE *f = open_memstream(&text, &len);
	const struct config_param *params = config_params(&n);

	assert_non_null(f);
	config_write_markdown(f);
	assert_int_equal(fclose(f), 0);
	assert_non_null(strstr(text, "# Configuration"));
	assert_non_null(strstr(text, "```yaml\n"));
	for (size_t i = 0; i < n; i++) {
		char cell[96];
		snprintf(cell, sizeof(cell), "| `%s` |", params[i].name);
		if (strstr(text, cell) == NULL)
			fail_msg("%s missing from docs", params[i].name);
	}
	assert_non_null(strstr(text, "| 128K..8M, power of 2 |"));
	assert_non_null(strstr(text, "| device\\|memory |"));
	free(text);
}

static void
test_config_free_twice_is_harmless(void **state)
{
	struct recfs_config cfg;

	load_ok(&cfg, spec_example);
	config_free(&cfg);
	config_free(&cfg);
	config_free(NULL);
	assert_int_equal(cfg.n_namespaces, 0);
	assert_int_equal(cfg.n_seeds, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_default_is_one_device_namespace_test),
		cmocka_unit_test(test_config_default_work_directory_follows_user),
		cmocka_unit_test(test_config_defaults_match_table),
		cmocka_unit_test(test_config_dynamic_params_are_the_documented_ones),
		cmocka_unit_test(test_config_spec_example_loads),
		cmocka_unit_test(test_config_doc_example_loads),
		cmocka_unit_test(test_config_file_without_namespaces_is_refused),
		cmocka_unit_test(test_config_minimal_file_takes_defaults),
		cmocka_unit_test(test_config_devices_and_nested_network_load),
		cmocka_unit_test(test_config_load_file_reads_and_names_the_file),
		cmocka_unit_test(test_config_print_load_round_trip),
		cmocka_unit_test(test_config_unknown_key_names_line_and_path),
		cmocka_unit_test(test_config_wrong_type_is_refused),
		cmocka_unit_test(test_config_out_of_range_is_refused),
		cmocka_unit_test(test_config_write_block_size_must_be_power_of_2),
		cmocka_unit_test(test_config_bad_names_are_refused),
		cmocka_unit_test(test_config_duplicates_are_refused),
		cmocka_unit_test(test_config_file_chunk_size_must_fit_a_record),
		cmocka_unit_test(test_config_missing_required_keys_are_refused),
		cmocka_unit_test(test_config_inconsistent_namespace_is_refused),
		cmocka_unit_test(test_config_syntax_error_names_line),
		cmocka_unit_test(test_config_failed_load_releases_partial_state),
		cmocka_unit_test(test_config_parse_size_accepts_suffixes),
		cmocka_unit_test(test_config_set_text_changes_dynamic_params),
		cmocka_unit_test(test_config_set_text_refuses_static_bad_and_unknown),
		cmocka_unit_test(test_config_get_text_formats_values),
		cmocka_unit_test(test_config_markdown_documents_every_param),
		cmocka_unit_test(test_config_free_twice_is_harmless),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
