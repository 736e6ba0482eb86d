/*
 * embedded_member - a cluster member that uses the embedded API (txn_*)
 * in this process, no mount: what t_cluster_sets.sh needs to make a set
 * by a write alone (through a mount a set is always made by mkdir).
 *
 * Usage: embedded_member CONFIG NODE_ID PEER_ID NAMESPACE SET COUNT [NODES]
 *   Joins the cluster CONFIG's seeds lead to as node NODE_ID (16 hex
 *   digits), waits (30 s at most) for a cluster of NODES nodes (default:
 *   at least 2) with PEER_ID in it whose partition table it has - not a
 *   cluster on the way there, whose next change could fail a write (a
 *   change during a write re-routes it once, then EIO) and move the keys
 *   chosen below to other nodes -, then writes COUNT records into SET of
 *   NAMESPACE - no set create before - choosing keys whose partition's
 *   replicas are exactly this node and PEER_ID (so the other nodes hold
 *   none of them), prints "written N" and waits for commands on stdin:
 *     delete   deletes them, prints "deleted N"
 *     (EOF)    leaves: network stopped, storage closed, exit 0.
 * Exit 1 with a message on stderr when anything fails, with the cluster
 * as this node sees it then.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/digest.h"
#include "config/config.h"
#include "txn/txn.h"

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static struct node *the_node;

static int
die(const char *what, int rc)
{
	struct txn_cluster c;

	fprintf(stderr, "embedded_member: %s: %d (%s)\n", what, rc, strerror(rc < 0 ? -rc : rc));
	if (the_node != NULL && txn_node_cluster(the_node, &c))
		fprintf(stderr, "embedded_member: cluster key %016" PRIx64 ", %u nodes, %" PRIu64
		    " changes, the last: %s\n", c.cluster_key, c.size, c.changes, c.cause);
	return 1;
}

int
main(int argc, char **argv)
{
	static struct recfs_config cfg;
	struct node *node = NULL;
	struct txn_network *net = NULL;
	struct namespace *ns;
	char err[1024] = "", line[64], (*keys)[32];
	uint64_t self, peer, t0;
	unsigned count, n = 0, nodes = 0;
	int rc;

	if (argc != 7 && argc != 8) {
		fprintf(stderr, "usage: embedded_member CONFIG NODE_ID PEER_ID NAMESPACE SET COUNT [NODES]\n");
		return 2;
	}
	if (argc == 8)
		nodes = (unsigned)strtoul(argv[7], NULL, 10);
	self = strtoull(argv[2], NULL, 16);
	peer = strtoull(argv[3], NULL, 16);
	count = (unsigned)strtoul(argv[6], NULL, 10);
	keys = calloc(count ? count : 1, sizeof(*keys));
	if (keys == NULL || self == 0 || peer == 0)
		return die("arguments", -EINVAL);
	rc = config_load_file(&cfg, argv[1], err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "embedded_member: %s\n", err);
		return 1;
	}
	rc = node_open(&node, &cfg);
	if (rc != 0)
		return die("node_open", rc);
	the_node = node;
	txn_node_id_set(node, self);
	rc = txn_network_start(&cfg, self, &net);
	if (rc != 0 || net == NULL)
		return die("txn_network_start", rc != 0 ? rc : -EINVAL);
	txn_node_network_set(node, net);
	ns = node_namespace_find(node, argv[4], strlen(argv[4]));
	if (ns == NULL)
		return die("no such namespace", -ENOENT);

	/* a cluster of the nodes asked for with the peer in it, and this
	 * node's table from it */
	t0 = clock_mono_ns();
	for (;;) {
		struct txn_cluster c;
		struct txn_partition p;
		bool peer_in = false;

		if (txn_node_cluster(node, &c) && c.cluster_key != 0 && (nodes == 0 || c.size == nodes)) {
			for (unsigned i = 0; i < c.size; i++)
				peer_in |= c.succession[i] == peer;
			if (peer_in && txn_partition_get(ns, 0, &p) == 0 && p.cluster_key == c.cluster_key)
				break;
		}
		if (clock_mono_ns() - t0 > 30000000000ull)
			return die("no such cluster with the peer within 30 s", -ETIMEDOUT);
		sleep_ms(20);
	}
	for (unsigned i = 0; n < count && i < 1000000; i++) {
		struct txn_partition p;
		struct digest d;
		char k[32];

		snprintf(k, sizeof(k), "r%u", i);
		digest_compute(&d, argv[5], strlen(argv[5]), k, strlen(k));
		if (txn_partition_get(ns, digest_partition(&d), &p) != 0)
			return die("txn_partition_get", -EIO);
		if (p.n_replicas == 2 && ((p.replicas[0] == self && p.replicas[1] == peer) ||
		    (p.replicas[0] == peer && p.replicas[1] == self)))
			memcpy(keys[n++], k, sizeof(k));
	}
	for (unsigned i = 0; i < n; i++) {
		struct txn_key key = { .set = argv[5], .set_len = strlen(argv[5]), .key = keys[i],
		    .key_len = strlen(keys[i]) };
		struct txn_write w = { .set_file = true, .file_data = "written by a member", .file_len = 19 };

		rc = txn_write(ns, &key, &w, NULL);
		if (rc != 0)
			return die("txn_write", rc);
	}
	printf("written %u\n", n);
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin) != NULL) {
		if (strncmp(line, "delete", 6) != 0)
			continue;
		for (unsigned i = 0; i < n; i++) {
			struct txn_key key = { .set = argv[5], .set_len = strlen(argv[5]), .key = keys[i],
			    .key_len = strlen(keys[i]) };

			rc = txn_delete(ns, &key);
			if (rc != 0)
				return die("txn_delete", rc);
		}
		printf("deleted %u\n", n);
		fflush(stdout);
	}
	txn_node_network_set(node, NULL);
	txn_network_stop(net);
	node_close(node, true);
	config_free(&cfg);
	free(keys);
	return 0;
}
