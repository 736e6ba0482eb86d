/*
 * fuzz_config.c - fuzz target for the configuration loader: YAML text in,
 * through config_load_string (the same parser and validation as
 * config_load_file, which recfsd uses, minus reading the file).
 *
 * Errors are fine; crashes, leaks and hangs are not.  Besides that:
 *   - an error is RECFS_ECONFIG with a message naming the file, never empty;
 *   - a configuration that loads prints (--check-config) as YAML that loads
 *     again and prints the same (but for the first line, naming the
 *     source): what the loader accepted it can show;
 *   - every parameter can be read back as text (/.info/config).
 * Seeds are built here (fuzz_seed): the documented example and a few
 * shapes the loader knows (memory/shadow namespaces, flow and block lists).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/log.h"
#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
size_t fuzz_seed(unsigned i, uint8_t *buf, size_t cap);
const char fuzz_target_name[] = "fuzz_config";

#define fuzz_assert(cond) do { \
		if (!(cond)) { \
			fprintf(stderr, "%s: %s:%d: %s\n", fuzz_target_name, __FILE__, __LINE__, #cond); \
			abort(); \
		} \
	} while (0)

/* The configuration printed as text (malloc'd, NUL-terminated). */
static char *
print_config(const struct recfs_config *cfg)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	fuzz_assert(f != NULL);
	config_print(cfg, f);
	fuzz_assert(fclose(f) == 0);
	return text;
}

static void
read_every_parameter(const struct recfs_config *cfg)
{
	size_t n;
	const struct config_param *params = config_params(&n);
	char buf[8192];

	for (size_t i = 0; i < n; i++) {
		bool per_ns = params[i].section == CONFIG_NAMESPACE || params[i].section == CONFIG_STORAGE;
		int rc;

		if (per_ns && cfg->n_namespaces == 0)
			continue;
		rc = config_get_text(cfg, per_ns ? (int)cfg->n_namespaces - 1 : -1, params[i].section,
		    params[i].name, buf, sizeof(buf));
		fuzz_assert(rc == 0 || rc == -ERANGE);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool quiet;
	static struct recfs_config cfg, again;
	char err[512];
	char *yaml, *text, *text2;
	int rc;

	if (!quiet) {
		quiet = true;
		log_set_level(LOG_LEVEL_ERROR);
	}
	yaml = malloc(size + 1);
	fuzz_assert(yaml != NULL);
	memcpy(yaml, data, size);
	yaml[size] = '\0';
	err[0] = '\0';
	rc = config_load_string(&cfg, yaml, "fuzz.yaml", err, sizeof(err));
	free(yaml);
	if (rc != 0) {
		fuzz_assert(rc == RECFS_ECONFIG || rc == -ENOMEM);
		fuzz_assert(strncmp(err, "fuzz.yaml", 9) == 0);
		config_free(&cfg);
		return 0;
	}
	read_every_parameter(&cfg);
	text = print_config(&cfg);
	config_free(&cfg);
	rc = config_load_string(&again, text, "printed.yaml", err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "%s: the printed configuration does not load: %s\n---\n%s---\n",
		    fuzz_target_name, err, text);
		abort();
	}
	text2 = print_config(&again);
	config_free(&again);
	/* The first line names the source, which differs. */
	if (strcmp(strchr(text, '\n'), strchr(text2, '\n')) != 0) {
		fprintf(stderr, "%s: printed twice, it differs:\n---\n%s---\n%s---\n", fuzz_target_name,
		    text, text2);
		abort();
	}
	free(text);
	free(text2);
	return 0;
}

static const char *const seeds[] = {
	NULL, /* config_example() */
	"namespaces:\n"
	"  - name: cache\n"
	"    storage-engine: { type: memory, data-size: 64M }\n",
	"service:\n"
	"  node-id: 0123456789abcdef\n"
	"  work-directory: /tmp/recfs\n"
	"logging: { file: syslog, level: debug }\n"
	"namespaces:\n"
	"  - name: a\n"
	"    default-ttl: 3600\n"
	"    storage-engine:\n"
	"      type: device\n"
	"      devices:\n"
	"        - /dev/nvme0n1\n"
	"        - /dev/nvme1n1\n"
	"      write-block-size: 128K\n"
	"      max-record-size: 64K\n"
	"  - name: b\n"
	"    file-bin: contents\n"
	"    storage-engine:\n"
	"      type: memory\n"
	"      data-size: 1G\n"
	"      files: [ /srv/b.shadow, /srv/b2.shadow ]\n"
	"      filesize: 512M\n"
	"      commit-to-device: true\n",
	"network:\n"
	"  fabric:\n"
	"    address: 10.0.0.1\n"
	"    port: 3001\n"
	"  seeds:\n"
	"    - 10.0.0.2:3001\n"
	"    - \"10.0.0.3:3001\"\n"
	"  heartbeat: { interval-ms: 100, timeout-count: 3 }\n"
	"fuse: { threads: 4, attr-timeout: 0.5, file-mode: \"0600\" }\n",
	"# anchors, aliases and odd scalars\n"
	"service: &s { cluster-name: 'x y', ticker-interval: 0x10 }\n"
	"logging: *s\n"
	"namespaces: []\n",
};

size_t
fuzz_seed(unsigned i, uint8_t *buf, size_t cap)
{
	const char *s;
	size_t len;

	if (i >= sizeof(seeds) / sizeof(seeds[0]))
		return 0;
	s = seeds[i] != NULL ? seeds[i] : config_example();
	len = strlen(s);
	if (len > cap)
		len = cap;
	memcpy(buf, s, len);
	return len;
}
