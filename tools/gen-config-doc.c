/*
 * gen-config-doc - print docs/configuration.md from the parameter table.
 *
 * The document is generated rather than written so that it cannot drift
 * from the table in src/config/config.c; tests/check_docs.sh fails `make
 * check` when the committed file differs from this program's output.
 * Regenerate with:  tools/gen-config-doc > docs/configuration.md
 * Rejected: generating the file at build time only (it would then be
 * missing from the source tree where people read it).
 */
#include <stdio.h>

#include "config/config.h"

int
main(int argc, char **argv)
{
	if (argc > 1) {
		fprintf(stderr, "usage: %s > docs/configuration.md\n", argv[0]);
		return 2;
	}
	config_write_markdown(stdout);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		perror("gen-config-doc: stdout");
		return 1;
	}
	return 0;
}
