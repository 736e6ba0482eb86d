/*
 * gen-stats-doc - print docs/statistics.md from the statistics table, or
 * the names of one section of it (for the tests).
 *
 * Like gen-config-doc: the document is generated so that it cannot drift
 * from src/base/statistic.h, and tests/check_docs.sh fails `make check`
 * when the committed file differs from this program's output.
 *   tools/gen-stats-doc > docs/statistics.md
 *   tools/gen-stats-doc --names NAMESPACE     one row name per line
 *   tools/gen-stats-doc --metrics NAMESPACE   its rows' Prometheus families
 *                                             (aliases, not in metrics, left out)
 * The integration tests take their lists of names from --names, so a new
 * row is checked for presence in its file without editing a test.
 */
#include <stdio.h>
#include <string.h>

#include "base/statistic.h"

int
main(int argc, char **argv)
{
	if (argc == 3 && (strcmp(argv[1], "--names") == 0 || strcmp(argv[1], "--metrics") == 0)) {
		int s = statistic_section_find(argv[2]);
		size_t n;
		const struct statistic *rows;

		if (s < 0) {
			fprintf(stderr, "%s: no section %s\n", argv[0], argv[2]);
			return 2;
		}
		rows = statistic_rows((enum stat_section)s, &n);
		for (size_t i = 0; i < n; i++) {
			char family[128];

			if (argv[1][2] == 'n') {
				printf("%s\n", rows[i].name);
			} else if (!(rows[i].flags & STAT_F_ALIAS)) {
				statistic_metric_name(&rows[i], statistic_section((enum stat_section)s),
				    family, sizeof(family));
				printf("%s\n", family);
			}
		}
	} else if (argc == 1) {
		statistic_write_markdown(stdout);
	} else {
		fprintf(stderr, "usage: %s > docs/statistics.md\n       %s --names SECTION\n"
		    "       %s --metrics SECTION\n", argv[0], argv[0], argv[0]);
		return 2;
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		perror("gen-stats-doc: stdout");
		return 1;
	}
	return 0;
}
