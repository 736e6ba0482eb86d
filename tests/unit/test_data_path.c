/*
 * test_data_path.c - the data path between nodes (src/txn/remote.c), two
 * real nodes in one process: node_open, txn_network_start on 127.0.0.1,
 * replication-factor 2.  What the integration tests cannot force at will:
 *   - a record written through one node is read through the other, and
 *     each node's counters show the proxied operations and replica writes;
 *   - a replica write of a version the replica already has is kept (not
 *     stored again) and answered OK (replica_writes_kept_older);
 *   - a proxied operation sent to a node that does not master the record
 *     is answered "not master" (proxy_rerouted at the caller);
 *   - with all but the spare workers of the master busy on proxied writes
 *     (their record lock held here), one more is answered busy and sent
 *     again (proxy_busy), and every one of them succeeds once the lock is
 *     released;
 *   - on memory storage a proxied read and a replica write are served on
 *     the fabric thread (rpc_requests_inline) unless their record lock is
 *     held; then a worker serves them, and the fabric thread goes on;
 *   - on memory storage a proxied write is stored and sent to the replica
 *     on the master's fabric thread and answered when the replica's ack is
 *     read there (rpc_requests_pending, rpc_calls_async): no worker runs
 *     or waits for it; its record lock stays held until then, so writes of
 *     one record from several threads are applied in one order on both
 *     nodes, and the fabric thread goes on meanwhile;
 *   - on memory storage a proxied write whose other replica is its caller
 *     gets its version back in the master's answer and the caller stores
 *     it (replica_writes_returned at the master, replica_writes_received
 *     at the caller): no replica write message, no pending request; a
 *     caller that cannot store it (stop-writes) fails with EIO and the
 *     master keeps its copy;
 *   - a master waiting for its replica write holds up only its own record:
 *     another master's write of a record in the same record-lock stripe,
 *     replicated to it meanwhile, completes;
 *   - a node whose network stops: the other's proxied write to a record it
 *     mastered and its replica write to it fail fast (proxy_failed,
 *     replica_writes_failed), wait for the table without it, and succeed;
 *   - a node without a cluster yet (an orphan) makes an operation wait for
 *     one, up to transaction-max-ms, then EIO, logged with that reason;
 *   - on device files a delete leaves a tombstone on both replicas;
 *   - on memory storage in a cluster a delete leaves a tombstone on both
 *     replicas too, which the tomb raider reclaims only once it is
 *     tomb-raider-eligible-age old; detached, a delete keeps none;
 *   - a set made by a write alone, its records on one node (RF 1), is
 *     known to the other node too, and gone on both with its last record;
 *   - an rmdir during which the other node dies (after its check, before
 *     the removal reached it) succeeds once the cluster is without it, and
 *     the node back takes the removal;
 *   - the checks before an rmdir or a mkdir asked of a node that has no
 *     node attached yet (a process just started) wait for it within
 *     transaction-max-ms and answer what it says (ENOTEMPTY, EEXIST, 0),
 *     never EAGAIN; EIO past the deadline; and a restart of the other
 *     node during an rmdir does not fail it;
 *   - a listing whose other master has no node attached yet, or dies,
 *     is asked again (routed again once the cluster is without the dead
 *     node) and lists every record, never fewer; EIO past the bound;
 *   - an rmdir or a mkdir whose check was sent to a node that dies just
 *     before succeeds once the cluster is without it, exactly once;
 *   - mkdir's name check waits for a working master of the name's
 *     partition (EEXIST once there is one; EIO, no set made, if none
 *     comes within transaction-max-ms), never skips the check;
 *   - a write that waited for its record lock at its master while another
 *     node became the master runs at the new master, not at the old one;
 *   - migration messages (and PARTS sections, each answered for itself)
 *     for another cluster key or a partition not expected from the sender
 *     are refused and counted, others that do not decode or name no
 *     namespace here refused;
 *   - a final master's takeover notice to a member that cannot take it at
 *     once is sent again until it does (three nodes);
 *   - a delete, a create-only write, a write or a rename whose master ran
 *     it and went down before answering, routed again to the new master,
 *     is not run again there and answers 0 (retries_applied_before); the
 *     table keeps the last 4 operations of a record; replica writes with a
 *     malformed operation id are refused.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "cluster/partition.h"
#include "cluster/rpc.h"
#include "fabric/fabric.h"
#include "txn/migrate_msg.h"
#include "txn/remote.h"
#include "txn/txn.h"
#include "txn/txn_i.h"

struct tnode {
	struct recfs_config cfg;
	struct node *node;
	struct txn_network *net;
	struct namespace *ns;
	uint64_t id;
	uint16_t port;
};

static struct tnode A, B;
static char secret_path[64];

static uint16_t
free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* The storage-engine lines of the nodes tnode_up starts (memory unless set). */
static char engine_yaml[256] = "      type: memory\n      data-size: 16M\n";
/* The replication-factor of the nodes tnode_up starts. */
static unsigned node_rf = 2;
/* The heartbeat timeout-count of the nodes tnode_up starts (50 ms pulses). */
static unsigned node_hb_count = 6;

static void
tnode_up_tmax(struct tnode *t, uint64_t id, uint16_t port, uint16_t seed_port, unsigned tmax)
{
	char yaml[1536], err[256];

	snprintf(yaml, sizeof(yaml),
	    "service:\n  node-id: %016llx\n  transaction-max-ms: %u\n"
	    "namespaces:\n  - name: test\n    replication-factor: %u\n"
	    "    storage-engine:\n%s"
	    "      write-block-size: 128K\n"
	    "network:\n  fabric: { address: 127.0.0.1, port: %u }\n"
	    "  seeds: [ 127.0.0.1:%u ]\n"
	    "  heartbeat: { interval-ms: 50, timeout-count: %u }\n"
	    "  cluster-secret-file: %s\n", (unsigned long long)id, tmax, node_rf, engine_yaml, port,
	    seed_port, node_hb_count, secret_path);
	assert_int_equal(config_load_string(&t->cfg, yaml, "test", err, sizeof(err)), 0);
	t->id = id;
	t->port = port;
	assert_int_equal(node_open(&t->node, &t->cfg), 0);
	txn_node_id_set(t->node, id);
	assert_int_equal(txn_network_start(&t->cfg, id, &t->net), 0);
	assert_non_null(t->net);
	txn_node_network_set(t->node, t->net);
	t->ns = node_namespace_find(t->node, "test", 4);
	assert_non_null(t->ns);
}

static void
tnode_up(struct tnode *t, uint64_t id, uint16_t port, uint16_t seed_port)
{
	tnode_up_tmax(t, id, port, seed_port, 1000);
}

static void
tnode_net_down(struct tnode *t)
{
	if (t->net == NULL)
		return;
	txn_node_network_set(t->node, NULL);
	txn_network_stop(t->net);
	t->net = NULL;
}

/* As a node that dies: the others are not told (only silence). */
static void
tnode_net_crash(struct tnode *t)
{
	if (t->net == NULL)
		return;
	txn_node_network_set(t->node, NULL);
	txn_network_stop_silently(t->net);
	t->net = NULL;
}

static void
tnode_down(struct tnode *t)
{
	tnode_net_down(t);
	if (t->node != NULL)
		node_close(t->node, false);
	t->node = NULL;
	config_free(&t->cfg);
}

static unsigned
cluster_size(struct tnode *t)
{
	struct txn_cluster c;

	return txn_node_cluster(t->node, &c) && c.cluster_key != 0 ? c.size : 0;
}

static uint64_t
fabric_value(struct tnode *t, unsigned row)
{
	uint64_t v[STAT_FABRIC_COUNT];

	txn_node_fabric_values(t->node, v);
	return v[row];
}
#define FV(t, name) fabric_value(&(t), STAT_FABRIC_##name)

/* Waits (10 s at most) until x and y both see a cluster of 2. */
static void
wait_pair(struct tnode *x, struct tnode *y)
{
	uint64_t t0 = clock_mono_ns();

	while (cluster_size(x) != 2 || cluster_size(y) != 2) {
		if (clock_mono_ns() - t0 > 10000000000ull)
			fail_msg("no cluster of 2 within 10 s");
		sleep_ms(10);
	}
}

static void
wait_for_size(unsigned n)
{
	uint64_t t0 = clock_mono_ns();

	while (cluster_size(&A) != n || cluster_size(&B) != n) {
		if (clock_mono_ns() - t0 > 10000000000ull)
			fail_msg("no cluster of %u within 10 s", n);
		sleep_ms(10);
	}
}

static int
setup(void **state)
{
	uint16_t pa = free_port(), pb = free_port();
	FILE *f;

	(void)state;
	snprintf(secret_path, sizeof(secret_path), "/tmp/test_data_path.%d.secret", (int)getpid());
	f = fopen(secret_path, "w");
	assert_non_null(f);
	fputs("a test secret for the data path unit test\n", f);
	fclose(f);
	chmod(secret_path, 0600);
	while (pb == pa)
		pb = free_port();
	memset(&A, 0, sizeof(A));
	memset(&B, 0, sizeof(B));
	tnode_up(&A, 0xa1, pa, pb);
	tnode_up(&B, 0xb2, pb, pa);
	wait_for_size(2);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	tnode_down(&A);
	tnode_down(&B);
	unlink(secret_path);
	return 0;
}

static struct txn_key
key_of(const char *k)
{
	return (struct txn_key){ .key = k, .key_len = strlen(k) };
}

static int
put(struct tnode *t, const char *k, const char *content)
{
	struct txn_key key = key_of(k);
	struct txn_write w = { .set_file = true, .file_data = content, .file_len = strlen(content) };

	return txn_write(t->ns, &key, &w, NULL);
}

/* The first name k<i> whose partition t masters (want_master) or not. */
static void
name_mastered(struct tnode *t, bool want_master, char *out, size_t cap)
{
	for (unsigned i = 0;; i++) {
		struct txn_partition p;
		struct digest d;

		snprintf(out, cap, "k%u", i);
		digest_compute(&d, NULL, 0, out, strlen(out));
		assert_int_equal(txn_partition_get(t->ns, digest_partition(&d), &p), 0);
		if (p.am_master == want_master)
			return;
	}
}

/* Two nodes agree on every partition's working master and have nothing
 * left to migrate (after a cluster forms or a network is attached again,
 * the nodes exchange versions and rebalance: docs/cluster.md, "Rebalance
 * and migration"; until then the last working master serves). */
static void
settled_pair(struct tnode *x, struct tnode *y)
{
	for (int tries = 0; tries < 500; tries++) {
		bool ok = true;
		uint64_t va[STAT_NS_COUNT], vb[STAT_NS_COUNT];

		txn_namespace_values(x->ns, va);
		txn_namespace_values(y->ns, vb);
		ok = va[STAT_NS_migrate_tx_partitions_remaining] + va[STAT_NS_migrate_rx_partitions_remaining] +
		    vb[STAT_NS_migrate_tx_partitions_remaining] + vb[STAT_NS_migrate_rx_partitions_remaining] == 0;
		for (uint32_t pid = 0; ok && pid < PARTITION_COUNT; pid++) {
			struct txn_partition pa, pb;

			ok = txn_partition_get(x->ns, pid, &pa) == 0 && txn_partition_get(y->ns, pid, &pb) == 0 &&
			    pa.master != 0 && pa.master == pb.master && pa.am_master != pb.am_master;
		}
		if (ok)
			return;
		sleep_ms(10);
	}
	fail_msg("the two nodes did not settle on one working master per partition within 5 s");
}

static void
settled(void)
{
	settled_pair(&A, &B);
}

static void
test_write_on_one_read_on_the_other(void **state)
{
	char k[16], content[64];

	(void)state;
	for (int i = 0; i < 50; i++) {
		snprintf(k, sizeof(k), "r%d", i);
		snprintf(content, sizeof(content), "record %d", i);
		assert_int_equal(put(&A, k, content), 0);
	}
	for (int i = 0; i < 50; i++) {
		struct txn_key key;
		struct txn_record rec;

		snprintf(k, sizeof(k), "r%d", i);
		snprintf(content, sizeof(content), "record %d", i);
		key = key_of(k);
		assert_int_equal(txn_read(B.ns, &key, &rec), 0);
		assert_non_null(rec.file_bin);
		assert_int_equal(rec.file_bin->v.bytes.len, strlen(content));
		assert_memory_equal(rec.file_bin->v.bytes.data, content, strlen(content));
		assert_int_equal(rec.attr.size, strlen(content));
		txn_record_release(&rec);
	}
	/* RF 2 of 2: every write went to both; A proxied about half. */
	assert_true(FV(A, proxy_sent) > 10 && FV(A, proxy_completed) == FV(A, proxy_sent));
	assert_true(FV(B, proxy_received) >= FV(A, proxy_completed));
	assert_true(FV(A, replica_writes_sent) > 10);
	assert_int_equal(FV(A, replica_writes_acked), FV(A, replica_writes_sent));
	assert_true(FV(B, replica_writes_applied) >= FV(A, replica_writes_acked));
	assert_int_equal(FV(A, proxy_failed) + FV(A, proxy_timed_out), 0);
	assert_int_equal(FV(A, replica_writes_failed) + FV(A, replica_writes_timed_out), 0);
	/* Deletes through B; then each node, detached from the network (it
	 * serves what it stores), holds every record: RF 2 of 2. */
	for (int i = 0; i < 10; i++) {
		struct txn_key key;

		snprintf(k, sizeof(k), "r%d", i);
		key = key_of(k);
		assert_int_equal(txn_delete(B.ns, &key), 0);
	}
	struct tnode *both[2] = { &A, &B };

	for (int j = 0; j < 2; j++) {
		txn_node_network_set(both[j]->node, NULL);
		for (int i = 0; i < 50; i++) {
			struct txn_key key;
			struct txn_record rec;

			snprintf(k, sizeof(k), "r%d", i);
			snprintf(content, sizeof(content), "record %d", i);
			key = key_of(k);
			if (i < 10) {
				assert_int_equal(txn_read(both[j]->ns, &key, &rec), -ENOENT);
			} else {
				assert_int_equal(txn_read(both[j]->ns, &key, &rec), 0);
				assert_int_equal(rec.file_bin->v.bytes.len, strlen(content));
				assert_memory_equal(rec.file_bin->v.bytes.data, content, strlen(content));
			}
			txn_record_release(&rec);
		}
		txn_node_network_set(both[j]->node, both[j]->net);
	}
	settled();
	/* and the rpc histogram counts the answered calls */
	struct histogram_snapshot lat[STAT_LAT_FABRIC_COUNT];

	txn_node_fabric_latencies(A.node, lat);
	assert_true(lat[STAT_LAT_FABRIC_rpc].count >= FV(A, proxy_completed));
}

static void
test_replica_keeps_a_version_it_has(void **state)
{
	char k[16];
	struct txn_key key;
	struct txn_record rec;
	uint8_t *flat, body[4096];
	struct fabric_msg_writer w;
	struct rpc_answer ans = { 0 };
	size_t n;

	(void)state;
	name_mastered(&A, true, k, sizeof(k));
	assert_int_equal(put(&A, k, "a version B already has"), 0);
	key = key_of(k);
	assert_int_equal(txn_read(A.ns, &key, &rec), 0);
	n = record_flat_size(&rec.rec);
	flat = malloc(n);
	assert_true(record_flat_encode(&rec.rec, flat, n) > 0);
	txn_record_release(&rec);
	fabric_msg_writer_init(&w, body, sizeof(body), TXN_MSG_REPLICA);
	fabric_msg_put_bytes(&w, TXN_RF_NS, "test", 4);
	fabric_msg_put_u32(&w, TXN_RF_DURABLE, 0);
	fabric_msg_put_bytes(&w, TXN_RF_RECORD, flat, n);
	assert_int_equal(w.err, 0);
	uint64_t kept = FV(B, replica_writes_kept_older), applied = FV(B, replica_writes_applied);

	assert_int_equal(rpc_call(txn_network_rpc(A.net), B.id, RPC_OP_TXN_REPLICA, body, w.len, 0,
	    &ans), 0);
	assert_int_equal(ans.err, 0);   /* answered OK */
	rpc_answer_release(&ans);
	assert_int_equal(FV(B, replica_writes_kept_older), kept + 1);
	assert_int_equal(FV(B, replica_writes_applied), applied);
	/* a malformed one is refused, nothing stored */
	flat[n / 2] ^= 0xff;
	fabric_msg_writer_init(&w, body, sizeof(body), TXN_MSG_REPLICA);
	fabric_msg_put_bytes(&w, TXN_RF_NS, "test", 4);
	fabric_msg_put_u32(&w, TXN_RF_DURABLE, 0);
	fabric_msg_put_bytes(&w, TXN_RF_RECORD, flat, n);
	assert_int_equal(rpc_call(txn_network_rpc(A.net), B.id, RPC_OP_TXN_REPLICA, body, w.len, 0,
	    &ans), 0);
	assert_int_equal(ans.err, -EBADMSG);
	rpc_answer_release(&ans);
	flat[n / 2] ^= 0xff;
	/* so is one whose operation id is not 16 bytes with a counter */
	for (int i = 0; i < 3; i++) {
		static const uint8_t id[17] = { 1, 0, 0, 0, 0, 0, 0, 0, 5 };

		fabric_msg_writer_init(&w, body, sizeof(body), TXN_MSG_REPLICA);
		fabric_msg_put_bytes(&w, TXN_RF_NS, "test", 4);
		fabric_msg_put_u32(&w, TXN_RF_DURABLE, 0);
		if (i == 2)
			fabric_msg_put_bytes(&w, TXN_RF_OP_ID, (const uint8_t[16]){ 1 }, 16);
		else
			fabric_msg_put_bytes(&w, TXN_RF_OP_ID, id, i == 0 ? 15 : 17);
		fabric_msg_put_bytes(&w, TXN_RF_RECORD, flat, n);
		assert_int_equal(rpc_call(txn_network_rpc(A.net), B.id, RPC_OP_TXN_REPLICA, body, w.len,
		    0, &ans), 0);
		assert_int_equal(ans.err, -EBADMSG);
		rpc_answer_release(&ans);
	}
	/* and one that claims to lack its file content (only a version handed
	 * back in a write's answer may) */
	fabric_msg_writer_init(&w, body, sizeof(body), TXN_MSG_REPLICA);
	fabric_msg_put_bytes(&w, TXN_RF_NS, "test", 4);
	fabric_msg_put_u32(&w, TXN_RF_DURABLE, 0);
	fabric_msg_put_u32(&w, TXN_RF_CONTENT_AT, 64);
	fabric_msg_put_bytes(&w, TXN_RF_RECORD, flat, n);
	assert_int_equal(rpc_call(txn_network_rpc(A.net), B.id, RPC_OP_TXN_REPLICA, body, w.len, 0,
	    &ans), 0);
	assert_int_equal(ans.err, -EBADMSG);
	rpc_answer_release(&ans);
	assert_int_equal(FV(B, replica_writes_kept_older), kept + 1);
	assert_int_equal(FV(B, replica_writes_applied), applied);
	free(flat);
}

static void
test_not_master_is_rerouted(void **state)
{
	char k[16];
	struct txn_target t = { .ns = A.ns };
	struct txn_write w = { .set_file = true, .file_data = "x", .file_len = 1 };
	struct txn_op op = { .kind = TXN_OP_WRITE, .w = &w };
	uint64_t rerouted = FV(A, proxy_rerouted);

	(void)state;
	/* A record A masters, sent by A to B as if B were its master. */
	name_mastered(&A, true, k, sizeof(k));
	t.k = key_of(k);
	digest_compute(&t.digest, NULL, 0, k, strlen(k));
	t.partition = digest_partition(&t.digest);
	assert_int_equal(txn_remote_proxy(txn_network_remote(A.net), B.id, &t, &op), TXN_ENOTMASTER);
	assert_int_equal(FV(A, proxy_rerouted), rerouted + 1);
}

struct bg_put {
	pthread_t th;
	char key[16];
	int rc;
};

static void *
bg_put(void *arg)
{
	struct bg_put *b = arg;

	b->rc = put(&A, b->key, "written while the master was busy");
	return NULL;
}

static void
test_busy_master_is_asked_again(void **state)
{
	enum { N = TXN_REMOTE_WORKERS - 4 + 2 };
	struct bg_put bg[N];
	char k[16];
	struct digest d;
	uint64_t busy = FV(A, proxy_busy);

	(void)state;
	/* One record B masters; its record lock held on B. */
	name_mastered(&A, false, k, sizeof(k));
	digest_compute(&d, NULL, 0, k, strlen(k));
	index_record_lock(B.ns->index, &d);
	for (int i = 0; i < N; i++) {
		snprintf(bg[i].key, sizeof(bg[i].key), "%s", k);
		assert_int_equal(pthread_create(&bg[i].th, NULL, bg_put, &bg[i]), 0);
	}
	/* 12 run (blocked on the lock), the others are answered busy. */
	for (int i = 0; i < 100 && FV(A, proxy_busy) < busy + 2; i++)
		sleep_ms(5);
	assert_true(FV(A, proxy_busy) >= busy + 2);
	index_record_unlock(B.ns->index, &d);
	for (int i = 0; i < N; i++) {
		pthread_join(bg[i].th, NULL);
		assert_int_equal(bg[i].rc, 0);
	}
}

struct bg_read {
	pthread_t th;
	char key[16];
	int rc;
	int done;   /* atomic */
};

static void *
bg_read(void *arg)
{
	struct bg_read *b = arg;
	struct txn_key key = key_of(b->key);
	struct txn_record rec;

	b->rc = txn_read(A.ns, &key, &rec);
	if (b->rc == 0)
		txn_record_release(&rec);
	__atomic_store_n(&b->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void *
bg_put_done(void *arg)
{
	struct bg_read *b = arg;

	b->rc = put(&A, b->key, "replicated while the replica's lock was held");
	__atomic_store_n(&b->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* A ping from A to B answers within 500 ms: B's fabric thread is not blocked. */
static void
assert_b_fabric_answers(void)
{
	struct rpc_answer ans = { 0 };
	uint64_t t0 = clock_mono_ns();

	assert_int_equal(rpc_call(txn_network_rpc(A.net), B.id, RPC_OP_PING, "p", 1, 500, &ans), 0);
	rpc_answer_release(&ans);
	assert_true(clock_mono_ns() - t0 < 500000000ull);
}

/* Migration messages a node does not expect are refused and counted
 * (migrate_msgs_refused): another cluster key, a partition it does not
 * receive from that node, a namespace it does not have, bytes that do not
 * decode; nothing is applied. */
static uint64_t
ns_stat(struct tnode *t, int stat)
{
	uint64_t v[STAT_NS_COUNT];

	txn_namespace_values(t->ns, v);
	return v[stat];
}

static int
migrate_call(const uint8_t *body, size_t len)
{
	struct rpc_answer ans = { 0 };
	int rc = rpc_call(txn_network_rpc(A.net), B.id, RPC_OP_MIGRATE, body, len, 0, &ans);

	if (rc == 0)
		rc = ans.err;
	rpc_answer_release(&ans);
	return rc;
}

/* A PARTS of one section (partition pid, flags, one junk record unless
 * LAST alone) to B: the call's error, or the section's result. */
static int
migrate_call_part(uint64_t key, uint32_t pid, uint8_t flags)
{
	static uint8_t body[256];
	struct rpc_answer ans = { 0 };
	size_t count_off, n_off;
	int off, rc, res[1];

	off = migrate_msg_encode_parts(body, sizeof(body), key, "test", &count_off);
	assert_true(off > 0);
	rc = migrate_msg_encode_part_head(body + off, sizeof(body) - (size_t)off, pid, flags, &n_off);
	assert_int_equal(rc, 9);
	n_off += (size_t)off;
	off += rc;
	if (flags != MIGRATE_MSG_PART_LAST) {
		off += migrate_msg_encode_record(body + off, sizeof(body) - (size_t)off, (const uint8_t *)"junk", 4);
		migrate_msg_insert_count(body, n_off, 1);
	}
	migrate_msg_parts_count(body, count_off, 1);
	rc = rpc_call(txn_network_rpc(A.net), B.id, RPC_OP_MIGRATE_DATA, body, (size_t)off, 0, &ans);
	if (rc == 0)
		rc = ans.err;
	if (rc == 0)
		rc = migrate_msg_decode_parts_answer(ans.body, ans.len, 1, res) == 0 ? res[0] : -EBADMSG;
	rpc_answer_release(&ans);
	return rc;
}

static void
test_migration_refuses_bad_input(void **state)
{
	static uint8_t body[4096];
	struct txn_cluster tc;
	size_t count_off;
	int len, off;
	uint64_t refused = ns_stat(&B, STAT_NS_migrate_msgs_refused);
	uint64_t received = ns_stat(&B, STAT_NS_migrate_records_received);

	(void)state;
	settled();
	assert_true(txn_node_cluster(A.node, &tc));
	/* a batch for another cluster key */
	off = migrate_msg_encode_insert(body, sizeof(body), tc.cluster_key ^ 1, "test", 5, &count_off);
	assert_true(off > 0);
	len = migrate_msg_encode_record(body + off, sizeof(body) - (size_t)off, (const uint8_t *)"junk", 4);
	migrate_msg_insert_count(body, count_off, 1);
	assert_int_equal(migrate_call(body, (size_t)(off + len)), -ESTALE);
	/* the right key, a partition B does not receive from A */
	off = migrate_msg_encode_insert(body, sizeof(body), tc.cluster_key, "test", 5, &count_off);
	len = migrate_msg_encode_record(body + off, sizeof(body) - (size_t)off, (const uint8_t *)"junk", 4);
	migrate_msg_insert_count(body, count_off, 1);
	assert_int_equal(migrate_call(body, (size_t)(off + len)), -EPROTO);
	len = migrate_msg_encode_pid(body, sizeof(body), MIGRATE_MSG_START, tc.cluster_key, "test", 5);
	assert_int_equal(migrate_call(body, (size_t)len), -EPROTO);
	assert_int_equal(ns_stat(&B, STAT_NS_migrate_msgs_refused), refused + 3);
	/* PARTS sections: each answered for itself, the refused ones counted */
	assert_int_equal(migrate_call_part(tc.cluster_key ^ 1, 5, MIGRATE_MSG_PART_FIRST | MIGRATE_MSG_PART_LAST),
	    -ESTALE);
	assert_int_equal(migrate_call_part(tc.cluster_key, 5, MIGRATE_MSG_PART_FIRST | MIGRATE_MSG_PART_LAST),
	    -EPROTO);
	assert_int_equal(migrate_call_part(tc.cluster_key, 5, MIGRATE_MSG_PART_FIRST), -EPROTO);
	assert_int_equal(migrate_call_part(tc.cluster_key, 5, 0), -EPROTO);
	assert_int_equal(migrate_call_part(tc.cluster_key, 5, MIGRATE_MSG_PART_LAST), -EPROTO);
	assert_int_equal(ns_stat(&B, STAT_NS_migrate_msgs_refused), refused + 8);
	refused += 5;
	/* a namespace B does not have; bytes that do not decode: refused, not counted */
	len = migrate_msg_encode_pid(body, sizeof(body), MIGRATE_MSG_START, tc.cluster_key, "nope", 5);
	assert_int_equal(migrate_call(body, (size_t)len), -ENOENT);
	assert_int_equal(migrate_call(body, (size_t)len - 1), -EBADMSG);
	assert_int_equal(ns_stat(&B, STAT_NS_migrate_msgs_refused), refused + 3);
	assert_int_equal(ns_stat(&B, STAT_NS_migrate_records_received), received);
}

/*
 * Records of a migration batch are checked one by one: a record that fails
 * its checks and a record of another partition than the batch's are
 * refused and counted (migrate_records_refused), the batch's other records
 * are applied and the batch is answered OK.  B comes back empty and
 * expects partition P from A, whose sending is paused (migrate-threads 0)
 * while the test sends A's START and one INSERT itself.
 */
static void
test_migration_refuses_bad_records_one_by_one(void **state)
{
	static uint8_t body[8192];
	char kp[16], kq[16];
	uint32_t P = UINT32_MAX, Q = UINT32_MAX;
	uint8_t *fp = NULL, *fq = NULL;
	uint32_t lp, lq;
	struct txn_cluster tc;
	struct txn_key key;
	size_t count_off;
	uint64_t t0, refused, received, msgs_refused;
	int off, len;

	(void)state;
	for (unsigned i = 0; Q == UINT32_MAX; i++) {
		struct digest d;
		char k[16];

		snprintf(k, sizeof(k), "bad%u", i);
		digest_compute(&d, NULL, 0, k, strlen(k));
		if (P == UINT32_MAX) {
			P = digest_partition(&d);
			memcpy(kp, k, sizeof(k));
		} else if (digest_partition(&d) != P) {
			Q = digest_partition(&d);
			memcpy(kq, k, sizeof(k));
		}
	}
	__atomic_store_n(&A.cfg.migrate_threads, 0, __ATOMIC_RELAXED);
	tnode_down(&B);
	t0 = clock_mono_ns();
	while (cluster_size(&A) != 1) {
		if (clock_mono_ns() - t0 > 10000000000ull)
			fail_msg("A not alone within 10 s");
		sleep_ms(10);
	}
	assert_int_equal(put(&A, kp, "in P"), 0);
	assert_int_equal(put(&A, kq, "in Q"), 0);
	key = key_of(kp);
	assert_int_equal(txn_dup_copy(A.ns, &key, false, &fp, &lp), 0);
	key = key_of(kq);
	assert_int_equal(txn_dup_copy(A.ns, &key, false, &fq, &lq), 0);
	assert_non_null(fp);
	assert_non_null(fq);
	tnode_up(&B, 0xb2, B.port, A.port);
	wait_for_size(2);
	/* B has rebalanced: it expects partitions from A */
	t0 = clock_mono_ns();
	while (ns_stat(&B, STAT_NS_migrate_rx_partitions_remaining) == 0) {
		if (clock_mono_ns() - t0 > 10000000000ull)
			fail_msg("B expects nothing from A within 10 s");
		sleep_ms(10);
	}
	assert_true(txn_node_cluster(A.node, &tc));
	refused = ns_stat(&B, STAT_NS_migrate_records_refused);
	received = ns_stat(&B, STAT_NS_migrate_records_received);
	msgs_refused = ns_stat(&B, STAT_NS_migrate_msgs_refused);
	len = migrate_msg_encode_pid(body, sizeof(body), MIGRATE_MSG_START, tc.cluster_key, "test", P);
	assert_int_equal(migrate_call(body, (size_t)len), 0);
	off = migrate_msg_encode_insert(body, sizeof(body), tc.cluster_key, "test", P, &count_off);
	assert_true(off > 0);
	len = migrate_msg_encode_record(body + off, sizeof(body) - (size_t)off, (const uint8_t *)"junk", 4);
	assert_true(len > 0);
	off += len;
	len = migrate_msg_encode_record(body + off, sizeof(body) - (size_t)off, fq, lq);   /* of Q */
	assert_true(len > 0);
	off += len;
	fp[lp - 1] ^= 0x5a;   /* a damaged copy of P's record */
	len = migrate_msg_encode_record(body + off, sizeof(body) - (size_t)off, fp, lp);
	assert_true(len > 0);
	off += len;
	fp[lp - 1] ^= 0x5a;
	len = migrate_msg_encode_record(body + off, sizeof(body) - (size_t)off, fp, lp);   /* good */
	assert_true(len > 0);
	off += len;
	migrate_msg_insert_count(body, count_off, 4);
	assert_int_equal(migrate_call(body, (size_t)off), 0);
	assert_int_equal(ns_stat(&B, STAT_NS_migrate_records_refused), refused + 3);
	assert_int_equal(ns_stat(&B, STAT_NS_migrate_records_received), received + 1);
	assert_int_equal(ns_stat(&B, STAT_NS_migrate_msgs_refused), msgs_refused);
	free(fp);
	free(fq);
	__atomic_store_n(&A.cfg.migrate_threads, 1, __ATOMIC_RELAXED);
	settled();
	/* and B ends with both, from A's own migration */
	txn_node_network_set(B.node, NULL);
	{
		struct txn_record rec;

		key = key_of(kp);
		assert_int_equal(txn_read(B.ns, &key, &rec), 0);
		txn_record_release(&rec);
		key = key_of(kq);
		assert_int_equal(txn_read(B.ns, &key, &rec), 0);
		txn_record_release(&rec);
	}
	txn_node_network_set(B.node, B.net);
}

/* B's migrate_partitions_remaining (.info/cluster). */
static uint64_t
remaining(struct tnode *t)
{
	struct txn_cluster c;

	return txn_node_cluster(t->node, &c) ? c.migrate_partitions_remaining : 0;
}

struct bg_block {
	pthread_t th;
	char key[16];
};

static void *
bg_put_b(void *arg)
{
	struct bg_block *b = arg;

	(void)put(&B, b->key, "its replica write waits for A's record lock");
	return NULL;
}

/*
 * migrate_partitions_remaining reaches 0 only once the final master has
 * taken over from the acting master (TAKEOVER answered), not when the last
 * record arrived.  B comes back empty: A, the acting master of every
 * partition with data, sends them (paused until every one of A's 16 rpc
 * workers is taken by a replica write from B waiting for a record lock the
 * test holds on A), so B's TAKEOVERs get no answer in time.  While that
 * lasts B has received everything yet counts the hand-overs as remaining;
 * once A's workers are free again B takes over each partition it is final
 * master of (asked again with backoff) and only then shows 0.  Before,
 * B showed 0 after the last DONE and the partitions whose TAKEOVER had
 * timed out stayed with A until the next cluster change.
 */
static void
test_remaining_counts_the_hand_over(void **state)
{
	enum { BLOCK = TXN_REMOTE_WORKERS };
	struct bg_block bg[BLOCK];
	struct digest d[BLOCK];
	unsigned n = 0, mine = 0;
	uint64_t t0, left;
	bool taken, received;

	(void)state;
	settled();
	__atomic_store_n(&A.cfg.migrate_threads, 0, __ATOMIC_RELAXED);
	tnode_down(&B);
	t0 = clock_mono_ns();
	while (cluster_size(&A) != 1) {
		if (clock_mono_ns() - t0 > 10000000000ull)
			fail_msg("A not alone within 10 s");
		sleep_ms(10);
	}
	for (unsigned i = 0; i < 64; i++) {   /* what A alone holds, B will receive */
		char k[16];

		snprintf(k, sizeof(k), "ho%u", i);
		assert_int_equal(put(&A, k, "written while B was away"), 0);
	}
	tnode_up(&B, 0xb2, B.port, A.port);
	wait_for_size(2);
	t0 = clock_mono_ns();
	while (ns_stat(&B, STAT_NS_migrate_rx_partitions_remaining) == 0) {
		if (clock_mono_ns() - t0 > 10000000000ull)
			fail_msg("B expects nothing from A within 10 s");
		sleep_ms(10);
	}
	/* Names in partitions B masters already (no data anywhere: fresh),
	 * their locks held on A: B's writes of them replicate to A, and each
	 * takes one of A's rpc workers, waiting. */
	for (unsigned i = 0; n < BLOCK; i++) {
		struct txn_partition p;
		char *k = bg[n].key;

		snprintf(k, sizeof(bg[n].key), "hold%u", i);
		digest_compute(&d[n], NULL, 0, k, strlen(k));
		if (txn_partition_get(B.ns, digest_partition(&d[n]), &p) != 0 || !p.am_master)
			continue;
		index_record_lock(A.ns->index, &d[n]);
		n++;
	}
	for (unsigned i = 0; i < BLOCK; i++)
		assert_int_equal(pthread_create(&bg[i].th, NULL, bg_put_b, &bg[i]), 0);
	/* From here every check is taken before the locks go, then asserted:
	 * a failure never leaves A's workers blocked (teardown would hang). */
	t0 = clock_mono_ns();
	while (FV(A, rpc_requests_in_progress) < BLOCK && clock_mono_ns() - t0 < 5000000000ull)
		sleep_ms(10);
	taken = FV(A, rpc_requests_in_progress) >= BLOCK;
	__atomic_store_n(&A.cfg.migrate_threads, 1, __ATOMIC_RELAXED);
	t0 = clock_mono_ns();
	while (ns_stat(&B, STAT_NS_migrate_rx_partitions_remaining) != 0 &&
	    clock_mono_ns() - t0 < 20000000000ull)
		sleep_ms(10);
	received = ns_stat(&B, STAT_NS_migrate_rx_partitions_remaining) == 0;
	sleep_ms(1500);   /* longer than transaction-max-ms: a TAKEOVER timed out */
	left = remaining(&B);
	for (uint32_t pid = 0; pid < PARTITION_COUNT; pid++) {
		struct txn_partition p;

		if (txn_partition_get(B.ns, pid, &p) == 0)
			mine += p.replicas[0] == B.id && !p.am_master;
	}
	for (unsigned i = 0; i < BLOCK; i++)
		index_record_unlock(A.ns->index, &d[i]);
	for (unsigned i = 0; i < BLOCK; i++)
		pthread_join(bg[i].th, NULL);
	assert_true(taken);      /* A's 16 rpc workers were all waiting */
	assert_true(received);   /* B had received everything */
	assert_true(left > 0);   /* ... and still counted the hand-overs */
	assert_true(mine > 0);   /* B is final master of some not handed over yet */
	t0 = clock_mono_ns();
	while (remaining(&B) != 0 || remaining(&A) != 0) {
		if (clock_mono_ns() - t0 > 20000000000ull)
			fail_msg("the hand-overs did not end within 20 s");
		sleep_ms(10);
	}
	/* 0: every partition B is final master of is served by B */
	for (uint32_t pid = 0; pid < PARTITION_COUNT; pid++) {
		struct txn_partition p;

		assert_int_equal(txn_partition_get(B.ns, pid, &p), 0);
		if (p.replicas[0] == B.id && !p.am_master)
			fail_msg("partition %u: B is its final master, not serving, with 0 remaining", pid);
	}
	settled();
}

/*
 * Memory storage: a proxied read and a replica write are served on the
 * fabric thread when their record lock is free (rpc_requests_inline); when
 * it is held (here, as a master holds it while its replicas answer) they go
 * to a worker and wait there, while the fabric thread goes on serving (a
 * ping answers), and each is counted once.
 */
/*
 * A partition larger than a message: 40 records of 100 KiB in one
 * partition are about 4 PARTS messages of 1 MiB, more than the 3 an
 * emigration thread keeps in flight (docs/cluster.md, "Migration
 * protocol"): its FIRST section is waited for, the middle ones stream, a
 * message buffer is filled again after its call was answered, and the
 * LAST goes once all of them are acknowledged.  B is stopped, A alone
 * stores them, B comes back empty and receives all of them, each intact.
 */
#define BIG_N 40
#define BIG_LEN (100 * 1024)

static void
test_migration_of_a_partition_larger_than_the_window(void **state)
{
	static char names[BIG_N][16];
	char *data = malloc(BIG_LEN);
	uint32_t pid = UINT32_MAX;
	unsigned n = 0;
	uint64_t t0;

	(void)state;
	assert_non_null(data);
	for (unsigned i = 0; n < BIG_N; i++) {
		struct digest d;
		char k[16];

		snprintf(k, sizeof(k), "big%u", i);
		digest_compute(&d, NULL, 0, k, strlen(k));
		if (pid == UINT32_MAX)
			pid = digest_partition(&d);
		if (digest_partition(&d) == pid)
			memcpy(names[n++], k, sizeof(k));
	}
	tnode_down(&B);
	t0 = clock_mono_ns();
	while (cluster_size(&A) != 1) {
		if (clock_mono_ns() - t0 > 10000000000ull)
			fail_msg("A not alone within 10 s");
		sleep_ms(10);
	}
	for (unsigned i = 0; i < BIG_N; i++) {
		struct txn_key key = key_of(names[i]);
		struct txn_write w = { .set_file = true, .file_data = data, .file_len = BIG_LEN };

		memset(data, 'a' + (int)(i % 26), BIG_LEN);
		assert_int_equal(txn_write(A.ns, &key, &w, NULL), 0);
	}
	tnode_up(&B, 0xb2, free_port(), A.port);
	wait_for_size(2);
	settled();
	assert_true(ns_stat(&B, STAT_NS_migrate_records_received) >= BIG_N);
	txn_node_network_set(B.node, NULL);   /* B alone: what it stores */
	for (unsigned i = 0; i < BIG_N; i++) {
		struct txn_key key = key_of(names[i]);
		struct txn_record rec;

		memset(data, 'a' + (int)(i % 26), BIG_LEN);
		assert_int_equal(txn_read(B.ns, &key, &rec), 0);
		assert_int_equal(rec.file_bin->v.bytes.len, BIG_LEN);
		assert_memory_equal(rec.file_bin->v.bytes.data, data, BIG_LEN);
		txn_record_release(&rec);
	}
	txn_node_network_set(B.node, B.net);
	free(data);
}

static void
test_reads_and_replica_writes_inline_unless_their_lock_is_held(void **state)
{
	char k[16], kr[16];
	struct digest d;
	struct bg_read bg;
	uint64_t inl = FV(B, rpc_requests_inline), recv = FV(B, proxy_received);
	uint64_t rrecv = FV(B, replica_writes_received);

	(void)state;
	name_mastered(&A, false, k, sizeof(k));   /* B masters it */
	assert_int_equal(put(&A, k, "read through A at B"), 0);
	inl = FV(B, rpc_requests_inline);
	recv = FV(B, proxy_received);
	memset(&bg, 0, sizeof(bg));
	snprintf(bg.key, sizeof(bg.key), "%s", k);
	bg_read(&bg);
	assert_int_equal(bg.rc, 0);
	assert_int_equal(FV(B, rpc_requests_inline), inl + 1);
	assert_int_equal(FV(B, proxy_received), recv + 1);

	/* its lock held on B: deferred to a worker, which waits for it */
	digest_compute(&d, NULL, 0, k, strlen(k));
	index_record_lock(B.ns->index, &d);
	memset(&bg, 0, sizeof(bg));
	snprintf(bg.key, sizeof(bg.key), "%s", k);
	assert_int_equal(pthread_create(&bg.th, NULL, bg_read, &bg), 0);
	sleep_ms(100);
	assert_int_equal(__atomic_load_n(&bg.done, __ATOMIC_ACQUIRE), 0);
	assert_b_fabric_answers();
	index_record_unlock(B.ns->index, &d);
	pthread_join(bg.th, NULL);
	assert_int_equal(bg.rc, 0);
	assert_int_equal(FV(B, proxy_received), recv + 2);
	assert_int_equal(FV(B, rpc_requests_inline), inl + 2);   /* the ping */

	/* a replica write: inline when free, by a worker when held */
	name_mastered(&A, true, kr, sizeof(kr));   /* A masters it, B is its replica */
	rrecv = FV(B, replica_writes_received);
	assert_int_equal(put(&A, kr, "replicated inline"), 0);
	assert_int_equal(FV(B, rpc_requests_inline), inl + 3);
	assert_int_equal(FV(B, replica_writes_received), rrecv + 1);
	digest_compute(&d, NULL, 0, kr, strlen(kr));
	index_record_lock(B.ns->index, &d);
	memset(&bg, 0, sizeof(bg));
	snprintf(bg.key, sizeof(bg.key), "%s", kr);
	assert_int_equal(pthread_create(&bg.th, NULL, bg_put_done, &bg), 0);
	sleep_ms(100);
	assert_int_equal(__atomic_load_n(&bg.done, __ATOMIC_ACQUIRE), 0);
	assert_b_fabric_answers();
	index_record_unlock(B.ns->index, &d);
	pthread_join(bg.th, NULL);
	assert_int_equal(bg.rc, 0);
	assert_int_equal(FV(B, replica_writes_received), rrecv + 2);
	assert_int_equal(FV(B, rpc_requests_inline), inl + 4);   /* the ping */
}

/* This node's own stored copy of k (whatever its role): generation,
 * last-update time (lut NULL: not wanted), content. */
static void
own_version(struct tnode *t, const char *k, uint16_t *gen, uint64_t *lut, char *content, size_t cap)
{
	struct txn_key key = key_of(k);
	struct record r;
	const struct bin *b;
	uint8_t *flat = NULL;
	uint32_t len = 0;

	assert_int_equal(txn_dup_copy(t->ns, &key, false, &flat, &len), 0);
	assert_non_null(flat);
	assert_int_equal(record_flat_decode(flat, len, &r), 0);
	*gen = r.generation;
	if (lut != NULL)
		*lut = r.last_update_ms;
	b = record_bin_find(&r, t->ns->cfg->file_bin, strlen(t->ns->cfg->file_bin));
	assert_non_null(b);
	assert_true(b->v.bytes.len < cap);
	memcpy(content, b->v.bytes.data, b->v.bytes.len);
	content[b->v.bytes.len] = '\0';
	record_release(&r);
	free(flat);
}

/* Whether t's and u's own copies of k have the same generation and file
 * content, and that content is want (len bytes). */
static bool
same_own_copies(struct tnode *t, struct tnode *u, const char *k, const void *want, size_t len)
{
	struct txn_key key = key_of(k);
	struct tnode *n[2] = { t, u };
	uint16_t gen[2] = { 0, 0 };
	bool same = true;

	for (int i = 0; i < 2; i++) {
		struct record r;
		const struct bin *b;
		uint8_t *flat = NULL;
		uint32_t flen = 0;

		assert_int_equal(txn_dup_copy(n[i]->ns, &key, false, &flat, &flen), 0);
		assert_int_equal(record_flat_decode(flat, flen, &r), 0);
		gen[i] = r.generation;
		b = record_bin_find(&r, n[i]->ns->cfg->file_bin, strlen(n[i]->ns->cfg->file_bin));
		same = same && b != NULL && b->v.bytes.len == len &&
		    memcmp(b->v.bytes.data, want, len) == 0;
		record_release(&r);
		free(flat);
	}
	return same && gen[0] == gen[1];
}

/* The same without the last-update time. */
static void
own_copy(struct tnode *t, const char *k, uint16_t *gen, char *content, size_t cap)
{
	own_version(t, k, gen, NULL, content, cap);
}

struct bg_writer {
	pthread_t th;
	char key[16];
	unsigned id, n;
	int failed;
};

static void *
bg_writer(void *arg)
{
	struct bg_writer *b = arg;
	char content[64];

	for (unsigned i = 0; i < b->n; i++) {
		snprintf(content, sizeof(content), "writer %u write %u", b->id, i);
		if (put(&A, b->key, content) != 0)
			b->failed++;
	}
	return NULL;
}

/*
 * A proxied write on memory storage at RF 2 (B masters the name, A is its
 * replica and the caller), A not asking for the version back (so B sends
 * it as a replica write, as to a third node): B's fabric thread stores it,
 * sends the version to A and leaves the request pending; the ack, read on B's fabric thread,
 * releases the record lock and answers A there - no worker of B runs or
 * waits for it.  With A's copy of the record locked (the replica write then
 * waits for A's worker), the write stays pending holding B's record lock:
 * a second write of the record waits for it while B's fabric thread goes
 * on, and both land in order.  Writes of one record from 4 threads at once
 * end with the same generation and content on both nodes, one generation
 * per write.
 */
static void
test_proxied_write_ends_on_the_thread_that_reads_the_replica_ack(void **state)
{
	char k[16], ca[64], cb[64];
	uint16_t ga, gb, g0;
	struct digest d;
	struct bg_read bg;
	struct bg_writer w[4];
	uint64_t recv, inl, pend, asy, wr;

	(void)state;
	settled();
	atomic_store_relaxed(&txn_remote_take_version, 0);
	name_mastered(&A, false, k, sizeof(k));   /* B masters it, A is its replica */
	recv = FV(B, rpc_requests_received);
	inl = FV(B, rpc_requests_inline);
	pend = FV(B, rpc_requests_pending);
	asy = FV(B, rpc_calls_async);
	for (unsigned i = 0; i < 20; i++) {
		snprintf(ca, sizeof(ca), "proxied write %u", i);
		assert_int_equal(put(&A, k, ca), 0);
	}
	/* every request B received was served on its fabric thread */
	assert_int_equal(FV(B, rpc_requests_received) - recv, 20);
	assert_int_equal(FV(B, rpc_requests_inline) - inl, 20);
	assert_int_equal(FV(B, rpc_requests_pending) - pend, 20);
	assert_int_equal(FV(B, rpc_calls_async) - asy, 20);
	own_copy(&A, k, &ga, ca, sizeof(ca));
	own_copy(&B, k, &gb, cb, sizeof(cb));
	assert_int_equal(ga, gb);
	assert_string_equal(ca, "proxied write 19");
	assert_string_equal(cb, "proxied write 19");
	g0 = gb;

	/* A's copy locked: the replica write waits on A's worker; B's write
	 * stays pending with its record lock, the next one waits for it */
	digest_compute(&d, NULL, 0, k, strlen(k));
	index_record_lock(A.ns->index, &d);
	wr = FV(A, rpc_requests_received);
	memset(&bg, 0, sizeof(bg));
	snprintf(bg.key, sizeof(bg.key), "%s", k);
	assert_int_equal(pthread_create(&bg.th, NULL, bg_put_done, &bg), 0);
	memset(w, 0, sizeof(w));
	snprintf(w[0].key, sizeof(w[0].key), "%s", k);
	w[0].n = 1;
	w[0].id = 9;
	/* the first one reached A (counted there once it is applied) */
	for (unsigned i = 0; FV(A, rpc_requests_received) == wr; i++) {
		if (i == 2500)
			fail_msg("B's replica write did not reach A within 5 s");
		sleep_ms(2);
	}
	assert_int_equal(pthread_create(&w[0].th, NULL, bg_writer, &w[0]), 0);
	sleep_ms(100);
	assert_int_equal(__atomic_load_n(&bg.done, __ATOMIC_ACQUIRE), 0);
	assert_b_fabric_answers();
	index_record_unlock(A.ns->index, &d);
	pthread_join(bg.th, NULL);
	pthread_join(w[0].th, NULL);
	assert_int_equal(bg.rc, 0);
	assert_int_equal(w[0].failed, 0);
	own_copy(&A, k, &ga, ca, sizeof(ca));
	own_copy(&B, k, &gb, cb, sizeof(cb));
	assert_int_equal(gb, g0 + 2);
	assert_int_equal(ga, gb);
	assert_string_equal(ca, "writer 9 write 0");   /* the second one is the last */
	assert_string_equal(cb, ca);

	/* 4 writers of the record at once: one order on both nodes */
	g0 = gb;
	for (unsigned i = 0; i < 4; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		snprintf(w[i].key, sizeof(w[i].key), "%s", k);
		w[i].id = i;
		w[i].n = 25;
		assert_int_equal(pthread_create(&w[i].th, NULL, bg_writer, &w[i]), 0);
	}
	for (unsigned i = 0; i < 4; i++) {
		pthread_join(w[i].th, NULL);
		assert_int_equal(w[i].failed, 0);
	}
	own_copy(&A, k, &ga, ca, sizeof(ca));
	own_copy(&B, k, &gb, cb, sizeof(cb));
	assert_int_equal(gb, g0 + 100);
	assert_int_equal(ga, gb);
	assert_string_equal(ca, cb);
	atomic_store_relaxed(&txn_remote_take_version, 1);
}

/*
 * The same proxied write, A asking for its version back (the default): B
 * stores it on its fabric thread and answers at once with the version,
 * which A stores as B's replica write would have been stored - one round
 * trip instead of B -> A -> B inside A -> B -> A, nothing pending at B, no
 * replica write sent.  Writes of one record from 4 threads at once still
 * end with one generation per write and the same copy on both nodes (A
 * keeps the newer version where two cross).  A in stop-writes cannot store
 * the version: the write fails with EIO and B keeps it (as when a replica
 * refuses a replica write); out of stop-writes the next write lands on
 * both.
 */
static void
test_proxied_write_hands_its_version_back_to_its_replica(void **state)
{
	char k[16], ca[64], cb[64];
	uint16_t ga, gb, g0;
	struct bg_writer w[4];
	uint64_t recv, inl, pend, asy, sent, ret, arecv, aappl;

	(void)state;
	settled();
	name_mastered(&A, false, k, sizeof(k));   /* B masters it, A is its replica */
	recv = FV(B, rpc_requests_received);
	inl = FV(B, rpc_requests_inline);
	pend = FV(B, rpc_requests_pending);
	asy = FV(B, rpc_calls_async);
	sent = FV(B, replica_writes_sent);
	ret = FV(B, replica_writes_returned);
	arecv = FV(A, replica_writes_received);
	aappl = FV(A, replica_writes_applied);
	for (unsigned i = 0; i < 20; i++) {
		snprintf(ca, sizeof(ca), "handed back %u", i);
		assert_int_equal(put(&A, k, ca), 0);
		/* A holds the version as soon as the write returned */
		own_copy(&A, k, &ga, cb, sizeof(cb));
		assert_string_equal(cb, ca);
	}
	assert_int_equal(FV(B, rpc_requests_received) - recv, 20);
	assert_int_equal(FV(B, rpc_requests_inline) - inl, 20);
	assert_int_equal(FV(B, rpc_requests_pending) - pend, 0);
	assert_int_equal(FV(B, rpc_calls_async) - asy, 0);
	assert_int_equal(FV(B, replica_writes_sent) - sent, 0);
	assert_int_equal(FV(B, replica_writes_returned) - ret, 20);
	assert_int_equal(FV(A, replica_writes_received) - arecv, 20);
	assert_int_equal(FV(A, replica_writes_applied) - aappl, 20);
	own_copy(&A, k, &ga, ca, sizeof(ca));
	own_copy(&B, k, &gb, cb, sizeof(cb));
	assert_int_equal(ga, gb);
	assert_string_equal(ca, "handed back 19");
	assert_string_equal(cb, ca);

	/* 4 writers of the record at once */
	g0 = gb;
	for (unsigned i = 0; i < 4; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		snprintf(w[i].key, sizeof(w[i].key), "%s", k);
		w[i].id = i;
		w[i].n = 25;
		assert_int_equal(pthread_create(&w[i].th, NULL, bg_writer, &w[i]), 0);
	}
	for (unsigned i = 0; i < 4; i++) {
		pthread_join(w[i].th, NULL);
		assert_int_equal(w[i].failed, 0);
	}
	own_copy(&A, k, &ga, ca, sizeof(ca));
	own_copy(&B, k, &gb, cb, sizeof(cb));
	assert_int_equal(gb, g0 + 100);
	assert_int_equal(ga, gb);
	assert_string_equal(ca, cb);

	/* A cannot store it: EIO, B's copy stays, A's is the one before */
	g0 = gb;
	ret = FV(B, replica_writes_returned);
	atomic_store_relaxed(&txn_namespace_of(A.ns)->stop_writes, true);
	assert_int_equal(put(&A, k, "stored on B only"), -EIO);
	atomic_store_relaxed(&txn_namespace_of(A.ns)->stop_writes, false);
	assert_int_equal(FV(B, replica_writes_returned) - ret, 1);
	own_copy(&B, k, &gb, cb, sizeof(cb));
	assert_int_equal(gb, g0 + 1);
	assert_string_equal(cb, "stored on B only");
	own_copy(&A, k, &ga, ca, sizeof(ca));
	assert_int_equal(ga, g0);
	assert_string_not_equal(ca, cb);
	assert_int_equal(put(&A, k, "on both again"), 0);
	own_copy(&A, k, &ga, ca, sizeof(ca));
	own_copy(&B, k, &gb, cb, sizeof(cb));
	assert_int_equal(ga, g0 + 2);
	assert_int_equal(gb, ga);
	assert_string_equal(ca, "on both again");
	assert_string_equal(cb, ca);

	/* Large content: handed back without it (A has it), A's copy the
	 * same bytes as B's; less than 16 KiB reached A per 64 KiB write */
	{
		static char big[65536];
		uint64_t rx = FV(A, fabric_received_bytes);
		struct txn_key key = key_of(k);

		for (unsigned i = 0; i < 10; i++) {
			struct txn_write wr = { .set_file = true, .file_data = big,
			    .file_len = sizeof(big) };

			memset(big, 'a' + (int)i, sizeof(big));
			big[i * 1000] = 'Z';
			assert_int_equal(txn_write(A.ns, &key, &wr, NULL), 0);
		}
		assert_true(FV(A, fabric_received_bytes) - rx < 10 * 16384);
		assert_int_equal(FV(B, replica_writes_returned) - ret, 12);
		assert_true(same_own_copies(&A, &B, k, big, sizeof(big)));
	}
}

/* The record-lock stripe bits of k's digest (the low 14 bits of bytes 4-5:
 * two names equal here share a stripe however many stripes there are, up
 * to 16384). */
static uint32_t
stripe_bits(const char *k)
{
	struct digest d;

	digest_compute(&d, NULL, 0, k, strlen(k));
	return ((uint32_t)d.bytes[4] | ((uint32_t)d.bytes[5] << 8)) & 16383;
}

struct bg_put_on {
	pthread_t th;
	struct tnode *t;
	char key[16];
	int rc;
	int done;   /* atomic */
};

static void *
bg_put_on(void *arg)
{
	struct bg_put_on *b = arg;

	b->rc = put(b->t, b->key, "written while another master waits for its replica");
	__atomic_store_n(&b->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static bool
wait_done(const int *done, unsigned ms)
{
	uint64_t t0 = clock_mono_ns();

	while (__atomic_load_n(done, __ATOMIC_ACQUIRE) == 0) {
		if (clock_mono_ns() - t0 > (uint64_t)ms * 1000000)
			return false;
		sleep_ms(5);
	}
	return true;
}

/*
 * Two masters waiting for each other's replica writes: A's write of ka
 * waits (its record locked) for B's replica write, while B's write of kb,
 * another record whose record lock shares ka's stripe, needs a replica
 * write at A.  When a stripe's mutex was the record lock, B's kb waited for
 * ka's stripe there and A's replica write of kb for ka's at A: both writes
 * failed with EIO at their deadline (the embedded cluster benchmark, 2
 * writers).  Here B's replica write of ka is held (its record locked by the
 * test), so A's write of ka stays waiting; B's write of kb must still
 * complete, replicated to A, before it.
 */
static void
test_a_master_waiting_for_replicas_holds_only_its_record(void **state)
{
	char ka[16], kb[16];
	struct digest da;
	struct bg_put_on ta = { .t = &A }, tb = { .t = &B };
	uint64_t sent = FV(A, replica_writes_sent), rrecv = FV(A, replica_writes_received);
	bool b_done_first, a_done_early;

	(void)state;
	settled();
	name_mastered(&A, true, ka, sizeof(ka));   /* A masters it, B is its replica */
	for (unsigned i = 0;; i++) {
		struct txn_partition p;
		struct digest d;

		assert_true(i < 1000000);
		snprintf(kb, sizeof(kb), "s%u", i);
		digest_compute(&d, NULL, 0, kb, strlen(kb));
		assert_int_equal(txn_partition_get(B.ns, digest_partition(&d), &p), 0);
		if (p.am_master && stripe_bits(kb) == stripe_bits(ka))
			break;
	}
	/* A's write may wait for B this long: only the test ends it */
	__atomic_store_n(&A.cfg.transaction_max_ms, 20000, __ATOMIC_RELAXED);
	digest_compute(&da, NULL, 0, ka, strlen(ka));
	index_record_lock(B.ns->index, &da);
	snprintf(ta.key, sizeof(ta.key), "%s", ka);
	assert_int_equal(pthread_create(&ta.th, NULL, bg_put_on, &ta), 0);
	/* A stored ka and sent its replica write to B, where it waits */
	for (int i = 0; i < 1000 && FV(A, replica_writes_sent) == sent; i++)
		sleep_ms(5);
	snprintf(tb.key, sizeof(tb.key), "%s", kb);
	assert_int_equal(pthread_create(&tb.th, NULL, bg_put_on, &tb), 0);
	b_done_first = wait_done(&tb.done, 5000);
	a_done_early = __atomic_load_n(&ta.done, __ATOMIC_ACQUIRE) != 0;
	index_record_unlock(B.ns->index, &da);
	pthread_join(ta.th, NULL);
	pthread_join(tb.th, NULL);
	__atomic_store_n(&A.cfg.transaction_max_ms, 1000, __ATOMIC_RELAXED);
	assert_true(FV(A, replica_writes_sent) > sent);
	assert_true(b_done_first);
	assert_false(a_done_early);
	assert_int_equal(tb.rc, 0);
	assert_int_equal(ta.rc, 0);
	assert_true(FV(A, replica_writes_received) > rrecv);   /* kb's */
}

static void
test_node_down_fails_fast_then_goes_on(void **state)
{
	char km[16], kr[16];
	uint64_t pf = FV(A, proxy_failed), rf = FV(A, replica_writes_failed);

	(void)state;
	name_mastered(&A, false, km, sizeof(km));  /* B masters it */
	name_mastered(&A, true, kr, sizeof(kr));   /* A masters it, B is its replica */
	tnode_net_crash(&B);   /* told, A would drop B from its table before the writes */
	/* Both fail fast, wait for the table without B (heartbeat 300 ms + quiet
	 * period), then succeed. */
	uint64_t t0 = clock_mono_ns();

	struct bg_put b[2];

	snprintf(b[0].key, sizeof(b[0].key), "%s", km);
	snprintf(b[1].key, sizeof(b[1].key), "%s", kr);
	for (int i = 0; i < 2; i++)   /* at once: both before the table changes */
		assert_int_equal(pthread_create(&b[i].th, NULL, bg_put, &b[i]), 0);
	for (int i = 0; i < 2; i++) {
		pthread_join(b[i].th, NULL);
		assert_int_equal(b[i].rc, 0);
	}
	assert_true(FV(A, proxy_failed) >= pf + 1);
	assert_true(FV(A, replica_writes_failed) >= rf + 1);
	assert_true(clock_mono_ns() - t0 < 5000000000ull);
	struct txn_key key = key_of(km);
	struct record_attr a;

	assert_int_equal(txn_stat(A.ns, &key, &a), 0);
	assert_int_equal(a.size, strlen("written while the master was busy"));
}

/*
 * On a persistent engine a delete is a tombstone on the master and on the
 * replica, and a durable write is durable on both: two nodes with device
 * files, a durable write through one, a delete through the other, each
 * node then detached holds the same (the tombstone hides the deleted one).
 */
static void
test_persistent_replicas(void **state)
{
	struct tnode c, d;
	uint16_t pc = free_port(), pd = free_port();
	char fc[64], fd[64];
	struct txn_key k1 = key_of("kept"), k2 = key_of("deleted");
	struct txn_write w = { .flags = TXN_DURABLE, .set_file = true, .file_data = "durable",
	    .file_len = 7 };

	(void)state;
	while (pd == pc)
		pd = free_port();
	snprintf(fc, sizeof(fc), "/tmp/test_data_path.%d.c.dat", (int)getpid());
	snprintf(fd, sizeof(fd), "/tmp/test_data_path.%d.d.dat", (int)getpid());
	unlink(fc);
	unlink(fd);
	memset(&c, 0, sizeof(c));
	memset(&d, 0, sizeof(d));
	snprintf(engine_yaml, sizeof(engine_yaml),
	    "      type: device\n      files: [ %s ]\n      filesize: 16M\n", fc);
	tnode_up(&c, 0xc3, pc, pd);
	snprintf(engine_yaml, sizeof(engine_yaml),
	    "      type: device\n      files: [ %s ]\n      filesize: 16M\n", fd);
	tnode_up(&d, 0xd4, pd, pc);
	snprintf(engine_yaml, sizeof(engine_yaml), "      type: memory\n      data-size: 16M\n");
	wait_pair(&c, &d);
	assert_int_equal(txn_write(c.ns, &k1, &w, NULL), 0);
	assert_int_equal(txn_write(c.ns, &k2, &w, NULL), 0);
	assert_int_equal(txn_delete(d.ns, &k2), 0);
	struct tnode *both[2] = { &c, &d };

	for (int j = 0; j < 2; j++) {
		struct txn_record rec;
		uint64_t v[STAT_NS_COUNT];

		txn_node_network_set(both[j]->node, NULL);
		assert_int_equal(txn_read(both[j]->ns, &k1, &rec), 0);
		assert_memory_equal(rec.file_bin->v.bytes.data, "durable", 7);
		txn_record_release(&rec);
		assert_int_equal(txn_read(both[j]->ns, &k2, &rec), -ENOENT);
		txn_record_release(&rec);
		txn_namespace_values(both[j]->ns, v);
		assert_int_equal(v[STAT_NS_tombstones], 1);
	}
	tnode_down(&c);
	tnode_down(&d);
	unlink(fc);
	unlink(fd);
}

static uint64_t
ns_value(struct tnode *t, unsigned row)
{
	uint64_t v[STAT_NS_COUNT];

	txn_namespace_values(t->ns, v);
	return v[row];
}

/*
 * On a memory engine in a cluster a delete keeps a tombstone on the master
 * and the replica (else a node that was away would bring the record back
 * through a migration).  The tomb raider (a pass every second here) keeps
 * it while it is younger than tomb-raider-eligible-age, and reclaims it on
 * both once the age is lowered below its own.  A node detached deletes
 * without a tombstone, as a single node does.
 */
static void
test_memory_tombstones_in_a_cluster(void **state)
{
	struct tnode c, d;
	uint16_t pc = free_port(), pd = free_port();
	struct txn_key k1 = key_of("kept"), k2 = key_of("deleted"), k3 = key_of("alone");
	struct tnode *both[2] = { &c, &d };
	uint64_t t0;

	(void)state;
	while (pd == pc)
		pd = free_port();
	memset(&c, 0, sizeof(c));
	memset(&d, 0, sizeof(d));
	snprintf(engine_yaml, sizeof(engine_yaml), "      type: memory\n      data-size: 16M\n"
	    "      tomb-raider-period: 1\n");
	tnode_up(&c, 0xc5, pc, pd);
	tnode_up(&d, 0xd6, pd, pc);
	snprintf(engine_yaml, sizeof(engine_yaml), "      type: memory\n      data-size: 16M\n");
	wait_pair(&c, &d);
	assert_int_equal(c.cfg.ns[0].storage.tomb_raider_eligible_age, 86400);   /* the default */
	assert_int_equal(put(&c, "kept", "a"), 0);
	assert_int_equal(put(&c, "deleted", "b"), 0);
	assert_int_equal(txn_delete(d.ns, &k2), 0);
	for (int j = 0; j < 2; j++) {
		struct txn_record rec;

		assert_int_equal(txn_read(both[j]->ns, &k2, &rec), -ENOENT);
		txn_record_release(&rec);
		assert_int_equal(ns_value(both[j], STAT_NS_tombstones), 1);
		assert_int_equal(ns_value(both[j], STAT_NS_objects), 1);
	}
	/* Three passes each: the tombstone is younger than a day, it stays. */
	uint64_t pc0 = atomic_load_relaxed(&c.ns->raider_passes);
	uint64_t pd0 = atomic_load_relaxed(&d.ns->raider_passes);

	t0 = clock_mono_ns();
	while (atomic_load_relaxed(&c.ns->raider_passes) < pc0 + 3 ||
	    atomic_load_relaxed(&d.ns->raider_passes) < pd0 + 3) {
		if (clock_mono_ns() - t0 > 15000000000ull)
			fail_msg("no 3 tomb raider passes within 15 s");
		sleep_ms(50);
	}
	for (int j = 0; j < 2; j++) {
		assert_int_equal(ns_value(both[j], STAT_NS_tombstones), 1);
		assert_int_equal(ns_value(both[j], STAT_NS_tombstones_reclaimed), 0);
	}
	/* Older than the age now (dynamic): reclaimed on both, the master
	 * asking the replica. */
	uint64_t data0[2];

	for (int j = 0; j < 2; j++)
		data0[j] = ns_value(both[j], STAT_NS_data_used_bytes);
	sleep_ms(1100);
	for (int j = 0; j < 2; j++)
		atomic_store_relaxed(&both[j]->cfg.ns[0].storage.tomb_raider_eligible_age, 1);
	t0 = clock_mono_ns();
	while (ns_value(&c, STAT_NS_tombstones) + ns_value(&d, STAT_NS_tombstones) != 0) {
		if (clock_mono_ns() - t0 > 15000000000ull)
			fail_msg("the tombstones were not reclaimed within 15 s past the age");
		sleep_ms(50);
	}
	for (int j = 0; j < 2; j++) {
		struct txn_record rec;

		assert_int_equal(ns_value(both[j], STAT_NS_tombstones_reclaimed), 1);
		/* What the tombstone cost (docs/cluster.md): its copy, a 64-byte
		 * header, the 7-byte key and an 8-byte trailer rounded up to 16,
		 * (and one index entry, which index_used_bytes, counting whole
		 * arena slabs, does not give back one by one). */
		assert_int_equal(data0[j] - ns_value(both[j], STAT_NS_data_used_bytes), 80);
		assert_int_equal(txn_read(both[j]->ns, &k1, &rec), 0);
		txn_record_release(&rec);
	}
	/* Detached: a delete keeps no tombstone. */
	txn_node_network_set(c.node, NULL);
	assert_int_equal(put(&c, "alone", "c"), 0);
	assert_int_equal(txn_delete(c.ns, &k3), 0);
	assert_int_equal(ns_value(&c, STAT_NS_tombstones), 0);
	tnode_down(&c);
	tnode_down(&d);
}

/*
 * A node just started is an orphan (cluster key 0) until it forms its
 * first cluster after the quiet period (50 ms x (6 + 2) = 400 ms here):
 * its operations wait for it, up to transaction-max-ms.  With 1000 ms the
 * write waits and succeeds; with 50 ms it fails with EIO and stores
 * nothing.
 */
static void
test_orphan_waits_for_a_cluster(void **state)
{
	struct tnode c, d;
	struct record_attr a;
	struct txn_key k = key_of("orphan");
	uint64_t t0, elapsed;
	char log_path[64], line[512];
	bool found = false;
	FILE *f;
	int rc, saved_err, log_fd;

	(void)state;
	memset(&c, 0, sizeof(c));
	memset(&d, 0, sizeof(d));
	/* seeds that nobody answers: each node forms a cluster alone */
	tnode_up_tmax(&c, 0xc3, free_port(), free_port(), 1000);
	t0 = clock_mono_ns();
	assert_int_equal(put(&c, "orphan", "waited"), 0);
	assert_true(clock_mono_ns() - t0 > 100000000ull);   /* it did wait */
	assert_int_equal(cluster_size(&c), 1);
	tnode_up_tmax(&d, 0xd4, free_port(), free_port(), 50);
	/* the EIO is logged with its reason (the log is stderr here: that
	 * file while the write runs, the log itself left as it is) */
	snprintf(log_path, sizeof(log_path), "/tmp/test_data_path.%d.log", (int)getpid());
	unlink(log_path);
	txn_eio_log_reset();
	fflush(stderr);
	saved_err = dup(2);
	log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(saved_err >= 0 && log_fd >= 0);
	assert_int_equal(dup2(log_fd, 2), 2);
	t0 = clock_mono_ns();
	rc = put(&d, "orphan", "too early");
	elapsed = clock_mono_ns() - t0;
	assert_int_equal(dup2(saved_err, 2), 2);
	close(saved_err);
	close(log_fd);
	assert_int_equal(rc, -EIO);
	assert_true(elapsed < 400000000ull);
	f = fopen(log_path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL)
		found = found || (strstr(line, "WARN txn: {test} an operation on partition") != NULL &&
		    strstr(line, "failed (EIO): this node is in no cluster (an orphan) and joined none "
		    "within transaction-max-ms (50 ms)") != NULL);
	fclose(f);
	unlink(log_path);
	assert_true(found);
	tnode_net_down(&d);   /* alone again: serves everything itself */
	assert_int_equal(txn_stat(d.ns, &k, &a), -ENOENT);
	tnode_down(&c);
	tnode_down(&d);
}

/* Waits (10 s at most) until the partition tables of x and y both come
 * from one cluster (the table is rebuilt a moment after the cluster forms). */
static void
wait_tables(struct tnode *x, struct tnode *y)
{
	uint64_t t0 = clock_mono_ns();

	for (;;) {
		struct txn_partition px, py;

		if (txn_partition_get(x->ns, 0, &px) == 0 && txn_partition_get(y->ns, 0, &py) == 0 &&
		    px.cluster_key != 0 && px.cluster_key == py.cluster_key)
			return;
		if (clock_mono_ns() - t0 > 10000000000ull)
			fail_msg("no common partition table within 10 s");
		sleep_ms(10);
	}
}

struct set_seen {
	const char *name;
	unsigned times;
	uint64_t objects;
};

static int
set_seen_one(void *arg, const struct txn_set_info *info)
{
	struct set_seen *w = arg;

	if (strcmp(info->name, w->name) == 0) {
		w->times++;
		w->objects = info->objects;
	}
	return 0;
}

/* How many times txn_set_foreach on t lists set name. */
static unsigned
set_listed(struct tnode *t, const char *name, uint64_t *objects)
{
	struct set_seen w = { .name = name };

	assert_int_equal(txn_set_foreach(t->ns, set_seen_one, &w), 0);
	if (objects != NULL)
		*objects = w.objects;
	return w.times;
}

/* Waits up to 3 s for txn_set_exists(t, name) to return want. */
static int
set_exists_within(struct tnode *t, const char *name, int want)
{
	uint64_t t0 = clock_mono_ns();
	int rc;

	while ((rc = txn_set_exists(t->ns, name, strlen(name))) != want &&
	    clock_mono_ns() - t0 < 3000000000ull)
		sleep_ms(10);
	return rc;
}

/*
 * A set made by a write alone (no txn_set_create: the embedded API may do
 * that) whose records are all on one node: at RF 1 the other node holds
 * none of them, yet lists the set, stats it and shows its statistics
 * (this node's counts: none).  Once its last record is deleted it is gone
 * on both.
 */
static void
test_set_of_records_only_is_known_everywhere(void **state)
{
	struct tnode c, d;
	uint16_t pc = free_port(), pd = free_port();
	char k[16];
	struct txn_key key = { .set = "solo", .set_len = 4 };
	struct txn_write w = { .set_file = true, .file_data = "alone", .file_len = 5 };
	struct txn_set_info si;
	struct record_attr a;
	uint64_t objects, t0;

	(void)state;
	while (pd == pc)
		pd = free_port();
	memset(&c, 0, sizeof(c));
	memset(&d, 0, sizeof(d));
	node_rf = 1;
	tnode_up(&c, 0xc3, pc, pd);
	tnode_up(&d, 0xd4, pd, pc);
	node_rf = 2;
	wait_pair(&c, &d);
	wait_tables(&c, &d);
	/* until the rebalance is done, d (alone before) still serves the
	 * partitions it had: the write must reach c */
	settled_pair(&c, &d);
	/* a key of set solo that c masters: at RF 1 only c stores it */
	for (unsigned i = 0;; i++) {
		struct txn_partition p;
		struct digest dg;

		snprintf(k, sizeof(k), "k%u", i);
		digest_compute(&dg, "solo", 4, k, strlen(k));
		assert_int_equal(txn_partition_get(c.ns, digest_partition(&dg), &p), 0);
		if (p.am_master)
			break;
	}
	key.key = k;
	key.key_len = strlen(k);
	{
		/* d's table may be rebuilt a moment after c's: wait until it
		 * agrees that c masters the key (bounded) */
		struct txn_partition p;
		struct digest dg;

		digest_compute(&dg, "solo", 4, k, strlen(k));
		t0 = clock_mono_ns();
		while (txn_partition_get(d.ns, digest_partition(&dg), &p) != 0 || p.am_master) {
			if (clock_mono_ns() - t0 > 3000000000ull)
				fail_msg("d's table does not give the partition to c");
			sleep_ms(10);
		}
	}
	assert_int_equal(txn_set_exists(d.ns, "solo", 4), -ENOENT);
	assert_int_equal(txn_write(d.ns, &key, &w, NULL), 0);   /* proxied to c */
	assert_int_equal(set_exists_within(&d, "solo", 0), 0);
	assert_int_equal(txn_set_stat(d.ns, "solo", 4, &a), 0);
	assert_int_equal(txn_set_info(d.ns, "solo", 4, &si), 0);
	assert_string_equal(si.name, "solo");
	assert_int_equal(si.objects, 0);          /* per node: none here */
	assert_int_equal(set_listed(&d, "solo", &objects), 1);
	assert_int_equal(objects, 0);
	assert_int_equal(set_listed(&c, "solo", &objects), 1);
	assert_int_equal(objects, 1);
	assert_int_equal(txn_set_exists(d.ns, "other", 5), -ENOENT);
	/* the last record goes: the set goes on both */
	assert_int_equal(txn_delete(d.ns, &key), 0);
	assert_int_equal(txn_set_exists(c.ns, "solo", 4), -ENOENT);
	assert_int_equal(set_exists_within(&d, "solo", -ENOENT), -ENOENT);
	assert_int_equal(set_listed(&d, "solo", NULL), 0);
	tnode_down(&c);
	tnode_down(&d);
}

/* The node txn_sets_merge_test_hook stops (once): as a node that dies
 * between the check of an rmdir and the removal's broadcast. */
static struct tnode *sets_victim;

static void
crash_sets_victim(void)
{
	struct tnode *v = sets_victim;

	sets_victim = NULL;
	if (v != NULL)
		tnode_net_crash(v);
}

/* ... or restarts it: stopped now (the first copy is sent to a process
 * that is gone), started again 100 ms later on the same address, before
 * the copy is sent again (RPC_RETRY_MS) and within the fabric's grace: the
 * new process refuses that copy (-ESTALE, "may have run"). */
static pthread_t restart_thread;
static bool restart_started;

static void *
restart_main(void *arg)
{
	struct tnode *v = arg;

	sleep_ms(100);
	if (txn_network_start(&v->cfg, v->id, &v->net) == 0)
		txn_node_network_set(v->node, v->net);
	return NULL;
}

static void
restart_sets_victim(void)
{
	struct tnode *v = sets_victim;

	sets_victim = NULL;
	if (v == NULL)
		return;
	tnode_net_crash(v);
	restart_started = pthread_create(&restart_thread, NULL, restart_main, v) == 0;
}

/*
 * rmdir of a set while the other node dies after answering its check and
 * before taking the removal: the set is removed here, the send to the dead
 * node fails once it is reported down; the rmdir waits for the cluster
 * without it and succeeds (it failed with EIO before, although the set was
 * removed, and the caller's rmdir again then said ENOENT for its own
 * rmdir).  The node back (its network again, still holding the set) takes
 * the removal from the set tables, and does not bring the set back here.
 */
static void
test_rmdir_done_when_a_node_dies_meanwhile(void **state)
{
	struct tnode c, d;
	uint16_t pc = free_port(), pd = free_port();
	uint64_t v[STAT_NS_COUNT], failed0, t0, took, restarted0;
	int rc;

	(void)state;
	while (pd == pc)
		pd = free_port();
	memset(&c, 0, sizeof(c));
	memset(&d, 0, sizeof(d));
	tnode_up(&c, 0xc3, pc, pd);
	tnode_up(&d, 0xd4, pd, pc);
	wait_pair(&c, &d);
	wait_tables(&c, &d);
	assert_int_equal(txn_set_create(c.ns, "gone", 4, NULL), 0);
	assert_int_equal(txn_set_exists(d.ns, "gone", 4), 0);
	txn_namespace_values(c.ns, v);
	failed0 = v[STAT_NS_set_changes_failed];
	sets_victim = &d;
	atomic_store_relaxed(&txn_sets_merge_test_hook, crash_sets_victim);
	t0 = clock_mono_ns();
	rc = txn_set_remove(c.ns, "gone", 4);
	took = (clock_mono_ns() - t0) / 1000000;
	atomic_store_relaxed(&txn_sets_merge_test_hook, NULL);
	print_message("rmdir with the other node dying meanwhile: %d after %llu ms\n", rc,
	    (unsigned long long)took);
	assert_null(sets_victim);            /* the hook ran: d died mid-rmdir */
	assert_int_equal(rc, 0);
	assert_true(cluster_size(&c) <= 1);     /* c waited for the cluster without d */
	assert_true(took < 5000);               /* heartbeat 300 ms + quiet period + 1 s */
	txn_namespace_values(c.ns, v);
	assert_true(v[STAT_NS_set_changes_failed] > failed0);
	assert_int_equal(txn_set_exists(c.ns, "gone", 4), -ENOENT);
	assert_int_equal(txn_set_exists(d.ns, "gone", 4), 0);   /* d never took it */
	/* d back: it takes the removal, c keeps it */
	assert_int_equal(txn_network_start(&d.cfg, d.id, &d.net), 0);
	txn_node_network_set(d.node, d.net);
	wait_pair(&c, &d);
	assert_int_equal(set_exists_within(&d, "gone", -ENOENT), -ENOENT);
	assert_int_equal(txn_set_exists(c.ns, "gone", 4), -ENOENT);
	/* d restarts during a mkdir: the copy sent to the old process may or
	 * may not have run there; the new one is sent it again (merging it
	 * twice changes nothing) */
	wait_tables(&c, &d);
	restarted0 = FV(c, rpc_calls_peer_restarted);
	sets_victim = &d;
	atomic_store_relaxed(&txn_sets_merge_test_hook, restart_sets_victim);
	t0 = clock_mono_ns();
	rc = txn_set_create(c.ns, "back", 4, NULL);
	took = (clock_mono_ns() - t0) / 1000000;
	atomic_store_relaxed(&txn_sets_merge_test_hook, NULL);
	assert_true(restart_started);
	pthread_join(restart_thread, NULL);
	assert_non_null(d.net);
	print_message("mkdir with the other node restarting meanwhile: %d after %llu ms (calls to a "
	    "restarted node: %llu)\n", rc, (unsigned long long)took,
	    (unsigned long long)(FV(c, rpc_calls_peer_restarted) - restarted0));
	assert_null(sets_victim);
	assert_int_equal(rc, 0);
	assert_int_equal(set_exists_within(&d, "back", 0), 0);
	tnode_down(&c);
	tnode_down(&d);
}

/* Attaches node v to its network's sets handlers again after hold_ms: the
 * handlers answer -EAGAIN meanwhile, as those of a process just started
 * that has no node attached yet. */
struct sets_hold {
	pthread_t th;
	struct tnode *v;
	unsigned hold_ms;
};

static void *
sets_hold_main(void *arg)
{
	struct sets_hold *h = arg;

	sleep_ms(h->hold_ms);
	txn_sets_attach(txn_network_sets(h->v->net), h->v->node);
	return NULL;
}

static void
sets_hold_start(struct sets_hold *h, struct tnode *v, unsigned hold_ms)
{
	h->v = v;
	h->hold_ms = hold_ms;
	txn_sets_attach(txn_network_sets(v->net), NULL);
	assert_int_equal(pthread_create(&h->th, NULL, sets_hold_main, h), 0);
}

/* Restarts v's network (a new process on the same address, SIGKILLed the
 * one before) and attaches it to v's node only hold_ms later. */
static void *
restart_held_main(void *arg)
{
	struct sets_hold *h = arg;
	struct txn_network *net = NULL;

	if (txn_network_start(&h->v->cfg, h->v->id, &net) != 0)
		return NULL;
	sleep_ms(h->hold_ms);
	h->v->net = net;
	txn_node_network_set(h->v->node, net);
	return NULL;
}

/*
 * The checks before a set change (rmdir's emptiness check at every node,
 * mkdir's name check at the master of the null-set record of that name)
 * asked of a node whose handlers answer that it has no node attached yet
 * (-EAGAIN: a process just started): the check waits for it, within
 * transaction-max-ms, and the user gets the answer that node gives -
 * ENOTEMPTY, EEXIST, 0 - where it got EAGAIN before, an errno rmdir and
 * mkdir do not document.  A node that is not attached by the deadline:
 * EIO, nothing changed.  Then a real restart: d's network SIGKILLed and
 * started again, attached 300 ms later; an rmdir on c meanwhile succeeds.
 * Two nodes at RF 1 (a record is only at its master).
 */
/* Two nodes c and d of their own (ids 0xc7, 0xd8: d is the principal) at
 * replication-factor rf, clustered, with one working master per
 * partition. */
static void
pair_up(struct tnode *c, struct tnode *d, unsigned rf)
{
	uint16_t pc = free_port(), pd = free_port();

	while (pd == pc)
		pd = free_port();
	memset(c, 0, sizeof(*c));
	memset(d, 0, sizeof(*d));
	node_rf = rf;
	tnode_up(c, 0xc7, pc, pd);
	tnode_up(d, 0xd8, pd, pc);
	node_rf = 2;
	wait_pair(c, d);
	wait_tables(c, d);
	settled_pair(c, d);
}

static void
test_set_checks_wait_for_a_node_just_started(void **state)
{
	struct tnode c, d;
	struct sets_hold h;
	struct txn_key key = { .set = "full", .set_len = 4 };
	char k[16], clash[16];
	uint64_t t0, took;
	int rc;

	(void)state;
	pair_up(&c, &d, 1);
	assert_int_equal(txn_set_create(c.ns, "full", 4, NULL), 0);
	assert_int_equal(txn_set_create(c.ns, "empty", 5, NULL), 0);
	assert_int_equal(txn_set_create(c.ns, "never", 5, NULL), 0);
	assert_int_equal(txn_set_create(c.ns, "later", 5, NULL), 0);
	/* a record of "full" that d masters: at RF 1 only d holds it */
	for (unsigned i = 0;; i++) {
		struct txn_partition p;
		struct digest dg;

		snprintf(k, sizeof(k), "r%u", i);
		digest_compute(&dg, "full", 4, k, strlen(k));
		assert_int_equal(txn_partition_get(c.ns, digest_partition(&dg), &p), 0);
		if (!p.am_master)
			break;
	}
	key.key = k;
	key.key_len = strlen(k);
	{
		struct txn_write w = { .set_file = true, .file_data = "kept", .file_len = 4 };

		assert_int_equal(txn_write(c.ns, &key, &w, NULL), 0);   /* proxied to d */
	}
	/* a null-set record that d masters */
	name_mastered(&c, false, clash, sizeof(clash));
	assert_int_equal(put(&c, clash, "a file"), 0);

	/* rmdir of a set d holds a record of: ENOTEMPTY once d answers */
	sets_hold_start(&h, &d, 300);
	t0 = clock_mono_ns();
	rc = txn_set_remove(c.ns, "full", 4);
	took = (clock_mono_ns() - t0) / 1000000;
	pthread_join(h.th, NULL);
	print_message("rmdir with the other node not attached for 300 ms: %d after %llu ms\n", rc,
	    (unsigned long long)took);
	assert_int_equal(rc, -ENOTEMPTY);
	assert_true(took >= 250 && took < 1000);
	assert_int_equal(txn_set_exists(c.ns, "full", 4), 0);

	/* rmdir of an empty set: removed once d answers, on both */
	sets_hold_start(&h, &d, 300);
	t0 = clock_mono_ns();
	rc = txn_set_remove(c.ns, "empty", 5);
	took = (clock_mono_ns() - t0) / 1000000;
	pthread_join(h.th, NULL);
	print_message("rmdir of an empty set, the same: %d after %llu ms\n", rc,
	    (unsigned long long)took);
	assert_int_equal(rc, 0);
	assert_true(took >= 250 && took < 1000);
	assert_int_equal(txn_set_exists(c.ns, "empty", 5), -ENOENT);
	assert_int_equal(set_exists_within(&d, "empty", -ENOENT), -ENOENT);

	/* mkdir of the null-set record's name, d its master: EEXIST */
	sets_hold_start(&h, &d, 300);
	t0 = clock_mono_ns();
	rc = txn_set_create(c.ns, clash, strlen(clash), NULL);
	took = (clock_mono_ns() - t0) / 1000000;
	pthread_join(h.th, NULL);
	print_message("mkdir over a file at the other node not attached for 300 ms: %d after %llu ms\n",
	    rc, (unsigned long long)took);
	assert_int_equal(rc, -EEXIST);
	assert_true(took >= 250 && took < 1000);
	assert_int_equal(txn_set_exists(c.ns, clash, strlen(clash)), -ENOENT);

	/* not attached within transaction-max-ms (1000 ms): EIO, nothing
	 * removed anywhere */
	sets_hold_start(&h, &d, 1500);
	t0 = clock_mono_ns();
	rc = txn_set_remove(c.ns, "never", 5);
	took = (clock_mono_ns() - t0) / 1000000;
	pthread_join(h.th, NULL);
	print_message("rmdir with the other node not attached for 1500 ms: %d after %llu ms\n", rc,
	    (unsigned long long)took);
	assert_int_equal(rc, -EIO);
	assert_true(took >= 900 && took < 1500);
	assert_int_equal(txn_set_exists(c.ns, "never", 5), 0);
	assert_int_equal(txn_set_exists(d.ns, "never", 5), 0);

	/* a real restart: d's process SIGKILLed and started again on its
	 * address at once, its node attached 300 ms later; an rmdir on c
	 * 50 ms after the kill */
	tnode_net_crash(&d);
	h.v = &d;
	h.hold_ms = 300;
	assert_int_equal(pthread_create(&h.th, NULL, restart_held_main, &h), 0);
	sleep_ms(50);
	t0 = clock_mono_ns();
	rc = txn_set_remove(c.ns, "later", 5);
	took = (clock_mono_ns() - t0) / 1000000;
	pthread_join(h.th, NULL);
	print_message("rmdir with the other node restarting: %d after %llu ms\n", rc,
	    (unsigned long long)took);
	assert_non_null(d.net);
	assert_int_equal(rc, 0);
	assert_int_equal(txn_set_exists(c.ns, "later", 5), -ENOENT);
	wait_pair(&c, &d);
	assert_int_equal(set_exists_within(&d, "later", -ENOENT), -ENOENT);
	tnode_down(&c);
	tnode_down(&d);
}

/* The records txn_list on t gives for set (every page), or its first
 * error. */
static int
list_count(struct tnode *t, const char *set)
{
	struct txn_cursor cur = { 0 };
	struct txn_entry *e = malloc(64 * sizeof(*e));
	int n, total = 0;

	assert_non_null(e);
	while ((n = txn_list(t->ns, set, strlen(set), &cur, e, 64)) > 0)
		total += n;
	free(e);
	return n < 0 ? n : total;
}

/*
 * A listing whose other master cannot answer yet: a page is gathered from
 * every partition's master, and one that answered that it has no node
 * attached yet (a process just started) or was reported down failed the
 * whole listing with EIO at once (ls: "Input/output error" for a node
 * restarting).  Now the page is asked again - routed again once the
 * cluster is without a node that went down - and the listing is whole:
 * every one of the 40 records, never fewer.  Two nodes at RF 2, so the
 * survivor holds every record.
 */
static void
test_listing_waits_for_a_node_just_started_or_gone(void **state)
{
	struct tnode c, d;
	struct sets_hold h;
	struct txn_key key = { .set = "ls", .set_len = 2 };
	struct txn_write w = { .set_file = true, .file_data = "listed", .file_len = 6 };
	unsigned on_d = 0;
	char k[16];
	uint64_t t0, took;
	int rc;

	(void)state;
	pair_up(&c, &d, 2);
	assert_int_equal(txn_set_create(c.ns, "ls", 2, NULL), 0);
	for (unsigned i = 0; i < 40; i++) {
		struct txn_partition p;
		struct digest dg;

		snprintf(k, sizeof(k), "f%u", i);
		key.key = k;
		key.key_len = strlen(k);
		assert_int_equal(txn_write(c.ns, &key, &w, NULL), 0);
		digest_compute(&dg, "ls", 2, k, strlen(k));
		assert_int_equal(txn_partition_get(c.ns, digest_partition(&dg), &p), 0);
		on_d += !p.am_master;
	}
	assert_true(on_d > 0 && on_d < 40);   /* both nodes master some */
	assert_int_equal(list_count(&c, "ls"), 40);

	/* d's handlers answer "no node attached" for 300 ms */
	sets_hold_start(&h, &d, 300);
	t0 = clock_mono_ns();
	rc = list_count(&c, "ls");
	took = (clock_mono_ns() - t0) / 1000000;
	pthread_join(h.th, NULL);
	print_message("listing with the other node not attached for 300 ms: %d after %llu ms\n", rc,
	    (unsigned long long)took);
	assert_int_equal(rc, 40);
	assert_true(took >= 250 && took < 1000);

	/* not attached within transaction-max-ms (1000 ms): EIO, not fewer */
	sets_hold_start(&h, &d, 1500);
	t0 = clock_mono_ns();
	rc = list_count(&c, "ls");
	took = (clock_mono_ns() - t0) / 1000000;
	pthread_join(h.th, NULL);
	print_message("listing with the other node not attached for 1500 ms: %d after %llu ms\n", rc,
	    (unsigned long long)took);
	assert_int_equal(rc, -EIO);
	assert_true(took >= 900 && took < 1500);

	/* d dies (the others only hear silence, then its connection close):
	 * the listing waits for the cluster without d and lists everything
	 * from c, which holds every record at RF 2 */
	tnode_net_crash(&d);
	t0 = clock_mono_ns();
	rc = list_count(&c, "ls");
	took = (clock_mono_ns() - t0) / 1000000;
	print_message("listing with the other node just killed: %d after %llu ms\n", rc,
	    (unsigned long long)took);
	assert_int_equal(rc, 40);
	assert_true(took < 5000);   /* heartbeat 300 ms + quiet period + 1 s */
	assert_true(cluster_size(&c) <= 1);
	tnode_down(&c);
	tnode_down(&d);
}

/*
 * A set check whose node dies just before it: rmdir's emptiness check at
 * every other node and mkdir's name check at the master of the null-set
 * record of that name.  The check was asked again until transaction-max-ms
 * and failed with EIO although the node was on its way out of the cluster;
 * now a node reported down is waited for until it leaves the succession
 * (as a write waits for a master that went down), then the check goes on
 * without it (rmdir) or is asked of the partition's next master (mkdir):
 * the call succeeds once, and again says ENOENT / EEXIST.
 */
static void
test_set_checks_go_on_without_a_node_that_died(void **state)
{
	struct tnode c, d;
	char name[16];
	uint64_t t0, took;
	int rc;

	(void)state;
	pair_up(&c, &d, 1);
	assert_int_equal(txn_set_create(c.ns, "dies", 4, NULL), 0);
	assert_int_equal(set_exists_within(&d, "dies", 0), 0);
	tnode_net_crash(&d);
	t0 = clock_mono_ns();
	rc = txn_set_remove(c.ns, "dies", 4);
	took = (clock_mono_ns() - t0) / 1000000;
	print_message("rmdir with the other node just killed: %d after %llu ms\n", rc,
	    (unsigned long long)took);
	assert_int_equal(rc, 0);
	assert_true(took < 5000);   /* heartbeat 300 ms + quiet period + 1 s */
	assert_int_equal(txn_set_exists(c.ns, "dies", 4), -ENOENT);
	assert_int_equal(txn_set_remove(c.ns, "dies", 4), -ENOENT);

	/* d back; then a name whose null-set record d masters, and d dies
	 * just before mkdir of it */
	assert_int_equal(txn_network_start(&d.cfg, d.id, &d.net), 0);
	txn_node_network_set(d.node, d.net);
	wait_pair(&c, &d);
	wait_tables(&c, &d);
	settled_pair(&c, &d);
	name_mastered(&c, false, name, sizeof(name));
	tnode_net_crash(&d);
	t0 = clock_mono_ns();
	rc = txn_set_create(c.ns, name, strlen(name), NULL);
	took = (clock_mono_ns() - t0) / 1000000;
	print_message("mkdir checked at the other node just killed: %d after %llu ms\n", rc,
	    (unsigned long long)took);
	assert_int_equal(rc, 0);
	assert_true(took < 5000);
	assert_int_equal(txn_set_exists(c.ns, name, strlen(name)), 0);
	assert_int_equal(txn_set_create(c.ns, name, strlen(name), NULL), -EEXIST);
	tnode_down(&c);
	tnode_down(&d);
}

/* Gives partition pid of t's table the working master wm after delay_ms
 * (the rebalance of the current table naming it), and wakes the waiters. */
struct working_later {
	pthread_t th;
	struct tnode *t;
	uint32_t pid;
	uint64_t wm;
	unsigned delay_ms;
};

static void *
working_later_main(void *arg)
{
	struct working_later *l = arg;
	struct partition_table *tbl = txn_namespace_of(l->t->ns)->partitions;
	struct partition_rsv r;

	sleep_ms(l->delay_ms);
	partition_reserve(tbl, l->pid, &r);
	partition_release(&r);
	(void)partition_set_working(tbl, l->pid, r.cluster_key, l->wm, r.state);
	txn_partitions_changed(l->t->ns);
	return NULL;
}

/*
 * mkdir of a set named like a null-set record: EEXIST, decided by that
 * record's master.  With no working master for its partition (the
 * rebalance of a change pending) the check was skipped and the set made
 * over the name.  Now the check waits for a working master as an
 * operation does (300 ms here: EEXIST), and none within
 * transaction-max-ms is EIO with nothing made.  Two nodes at RF 1, the
 * record only at d; c's table without a working master for its partition.
 */
static void
test_mkdir_name_check_waits_for_a_working_master(void **state)
{
	struct tnode c, d;
	struct working_later l;
	struct partition_rsv r;
	struct digest dg;
	char clash[16];
	uint64_t t0, took;
	int rc;

	(void)state;
	pair_up(&c, &d, 1);
	name_mastered(&c, false, clash, sizeof(clash));
	assert_int_equal(put(&c, clash, "a file"), 0);   /* stored at d only */
	digest_compute(&dg, NULL, 0, clash, strlen(clash));
	l = (struct working_later){ .t = &c, .pid = digest_partition(&dg), .wm = d.id,
	    .delay_ms = 300 };
	partition_reserve(txn_namespace_of(c.ns)->partitions, l.pid, &r);
	partition_release(&r);
	assert_int_equal(r.master, d.id);
	assert_int_equal(partition_set_working(txn_namespace_of(c.ns)->partitions, l.pid,
	    r.cluster_key, 0, r.state), 0);
	assert_int_equal(pthread_create(&l.th, NULL, working_later_main, &l), 0);
	t0 = clock_mono_ns();
	rc = txn_set_create(c.ns, clash, strlen(clash), NULL);
	took = (clock_mono_ns() - t0) / 1000000;
	pthread_join(l.th, NULL);
	print_message("mkdir over a file, its partition without a working master for 300 ms: %d "
	    "after %llu ms\n", rc, (unsigned long long)took);
	assert_int_equal(rc, -EEXIST);
	assert_true(took >= 250 && took < 1000);
	assert_int_equal(txn_set_exists(c.ns, clash, strlen(clash)), -ENOENT);

	/* none within transaction-max-ms: EIO, no set made */
	assert_int_equal(partition_set_working(txn_namespace_of(c.ns)->partitions, l.pid,
	    r.cluster_key, 0, r.state), 0);
	l.delay_ms = 1500;
	assert_int_equal(pthread_create(&l.th, NULL, working_later_main, &l), 0);
	t0 = clock_mono_ns();
	rc = txn_set_create(c.ns, clash, strlen(clash), NULL);
	took = (clock_mono_ns() - t0) / 1000000;
	print_message("the same, no working master for 1500 ms: %d after %llu ms\n", rc,
	    (unsigned long long)took);
	assert_int_equal(rc, -EIO);
	assert_true(took >= 900 && took < 1500);
	assert_int_equal(txn_set_exists(c.ns, clash, strlen(clash)), -ENOENT);
	assert_int_equal(txn_set_exists(d.ns, clash, strlen(clash)), -ENOENT);
	pthread_join(l.th, NULL);
	assert_int_equal(txn_set_create(c.ns, clash, strlen(clash), NULL), -EEXIST);
	tnode_down(&c);
	tnode_down(&d);
}

struct bg_write {
	pthread_t th;
	struct namespace *ns;
	struct txn_key key;
	int rc;
};

static void *
bg_write_main(void *arg)
{
	struct bg_write *b = arg;
	struct txn_write w = { .set_file = true, .file_data = "new", .file_len = 3 };

	b->rc = txn_write(b->ns, &b->key, &w, NULL);
	return NULL;
}

/*
 * Two masters at once: a write waits for its record's lock on its master
 * (held here, as a write waiting for its replicas holds it) while the
 * succession changes and another node becomes the master.  Once it has
 * the lock it must not store its version at the old master beside the
 * new one: it is routed again, runs at the new master, and the old one
 * stores nothing.
 */
static void
test_write_waiting_through_a_master_change_runs_at_the_new_master(void **state)
{
	struct tnode c, d;
	uint16_t pc = free_port(), pd = free_port();
	char k[16];
	struct digest dg;
	struct bg_write bg;
	struct txn_record rec;
	uint64_t recv0, only_d;

	(void)state;
	while (pd == pc)
		pd = free_port();
	memset(&c, 0, sizeof(c));
	memset(&d, 0, sizeof(d));
	tnode_up(&c, 0xc3, pc, pd);
	tnode_up(&d, 0xd4, pd, pc);
	wait_pair(&c, &d);
	wait_tables(&c, &d);
	/* a record c masters, its lock held on c; a write through c waits */
	name_mastered(&c, true, k, sizeof(k));
	digest_compute(&dg, NULL, 0, k, strlen(k));
	index_record_lock(c.ns->index, &dg);
	memset(&bg, 0, sizeof(bg));
	bg.ns = c.ns;
	bg.key = key_of(k);
	assert_int_equal(pthread_create(&bg.th, NULL, bg_write_main, &bg), 0);
	sleep_ms(100);
	/* the succession changes: d alone masters everything (both tables) */
	recv0 = FV(d, proxy_received);
	only_d = d.id;
	txn_node_partitions_rebuild(c.node, &only_d, 1, 0x5eed);
	txn_node_partitions_rebuild(d.node, &only_d, 1, 0x5eed);
	/* the rebalance's outcome, as migration would set it: d works it */
	(void)partition_set_working(txn_namespace_of(c.ns)->partitions, digest_partition(&dg), 0x5eed,
	    d.id, PARTITION_STATE_ABSENT);
	(void)partition_set_working(txn_namespace_of(d.ns)->partitions, digest_partition(&dg), 0x5eed,
	    d.id, PARTITION_STATE_SYNC);
	txn_partitions_changed(c.ns);
	txn_partitions_changed(d.ns);
	index_record_unlock(c.ns->index, &dg);
	pthread_join(bg.th, NULL);
	assert_int_equal(bg.rc, 0);
	/* it ran at d (proxied there), and c stored nothing */
	assert_int_equal(FV(d, proxy_received), recv0 + 1);
	txn_node_network_set(d.node, NULL);
	assert_int_equal(txn_read(d.ns, &bg.key, &rec), 0);
	assert_int_equal(rec.file_bin->v.bytes.len, 3);
	assert_memory_equal(rec.file_bin->v.bytes.data, "new", 3);
	txn_record_release(&rec);
	txn_node_network_set(c.node, NULL);
	assert_int_equal(txn_read(c.ns, &bg.key, &rec), -ENOENT);
	txn_record_release(&rec);
	txn_node_network_set(c.node, c.net);
	txn_node_network_set(d.node, d.net);
	tnode_down(&c);
	tnode_down(&d);
}

/* Every partition's working master is the same in the tables of the n
 * nodes t[], each has a cluster key, all the same, and none is pending. */
static bool
tables_agree(struct tnode *const *t, unsigned n)
{
	for (uint32_t pid = 0; pid < PARTITION_COUNT; pid++) {
		struct txn_partition p0, p;

		if (txn_partition_get(t[0]->ns, pid, &p0) != 0 || p0.master == 0 || p0.cluster_key == 0)
			return false;
		for (unsigned i = 1; i < n; i++)
			if (txn_partition_get(t[i]->ns, pid, &p) != 0 || p.master != p0.master ||
			    p.cluster_key != p0.cluster_key)
				return false;
	}
	return true;
}

/* Every node of t[] has rebalanced the current change: one cluster key, a
 * working master named for every partition. */
static bool
all_rebalanced(struct tnode *const *t, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		if (cluster_size(t[i]) != n)
			return false;
		for (uint32_t pid = 0; pid < PARTITION_COUNT; pid++) {
			struct txn_partition p, p0;

			if (txn_partition_get(t[i]->ns, pid, &p) != 0 || p.master == 0 ||
			    txn_partition_get(t[0]->ns, pid, &p0) != 0 || p.cluster_key != p0.cluster_key)
				return false;
		}
	}
	return true;
}

/* t's cluster key as its table of partition 0 says (0: none). */
static uint64_t
table_key(struct tnode *t)
{
	struct txn_partition p;

	return txn_partition_get(t->ns, 0, &p) == 0 ? p.cluster_key : 0;
}

/*
 * Waits (10 s at most) until all_rebalanced(t, n) - and, rx_of not NULL,
 * rx_of still expecting partitions - has held with one cluster key for
 * 600 ms (a clustering quantum here is 400 ms: 50 ms x (6 + 2)).  A
 * cluster just formed is at times formed again with the same nodes (a
 * member went orphan, "principal moved to another cluster key", and the
 * principal proposed again a quantum later), and a test that reads the
 * tables once must read those of the cluster that stays, not of the
 * first one seen.
 */
static void
wait_settled(struct tnode *const *t, unsigned n, struct tnode *rx_of)
{
	uint64_t t0 = clock_mono_ns(), since = t0, key = 0;

	for (;;) {
		uint64_t now = clock_mono_ns(), k = 0;

		if (all_rebalanced(t, n) &&
		    (rx_of == NULL || ns_stat(rx_of, STAT_NS_migrate_rx_partitions_remaining) != 0))
			k = table_key(t[0]);
		if (k == 0 || k != key) {
			key = k;
			since = now;
		} else if (now - since >= 600000000ull) {
			return;
		}
		if (now - t0 > 10000000000ull)
			fail_msg("no settled cluster of %u within 10 s", n);
		sleep_ms(10);
	}
}

struct bg_hold {
	pthread_t th;
	struct namespace *ns;
	char key[16];
};

static void *
bg_put_hold(void *arg)
{
	struct bg_hold *b = arg;
	struct txn_key k = key_of(b->key);
	struct txn_write w = { .set_file = true, .file_data = "x", .file_len = 1 };

	(void)txn_write(b->ns, &k, &w, NULL);
	return NULL;
}

/*
 * The final master tells every member that it took a partition over; a
 * member that does not take the notice (not rebalanced yet: answered
 * busy; its workers busy; not connected) is told again until it does.
 * Before, the notice was sent once and its answers ignored: that member
 * kept sending the partition's operations to the old acting master, which
 * answered "not master" twice, and they failed with EIO until the next
 * cluster change (the fault-injection test's full schedule, seed 2: a
 * name read EIO through one node after all migrations were done).
 * p and q hold 64 names (RF 2), r joins empty; migrations paused, then
 * only p's run (q's stay paused, so no TAKEOVER is sent to q itself), while
 * every rpc worker of q waits for a record lock the test holds on q
 * (replica writes from p): r takes over from p, q cannot take the notice.
 * Once q's workers are free, all three must name the same working master
 * of every partition, and a name r took over reads through q.
 */
static void
test_takeover_notice_reaches_a_busy_member(void **state)
{
	enum { BLOCK = TXN_REMOTE_WORKERS };
	struct tnode p, q, r;
	struct tnode *const all[3] = { &p, &q, &r };
	struct tnode *ps = &p, *qs = &q;    /* p and q, or q and p (below) */
	struct bg_hold bg[BLOCK];
	struct digest d[BLOCK];
	uint16_t pp = free_port(), pq = free_port(), pr = free_port();
	bool *from_p = calloc(PARTITION_COUNT, sizeof(bool));
	char moved[16] = "";
	unsigned n = 0;
	uint64_t t0, again0;
	bool taken, took_one, agree;

	(void)state;
	assert_non_null(from_p);
	while (pq == pp)
		pq = free_port();
	while (pr == pp || pr == pq)
		pr = free_port();
	memset(&p, 0, sizeof(p));
	memset(&q, 0, sizeof(q));
	memset(&r, 0, sizeof(r));
	/* No node goes down here: a heartbeat timeout of 1.2 s, not 300 ms,
	 * for a stall of this process (5 nodes' threads; a loaded machine)
	 * not to end the cluster midway - every node "departed: no pulse for
	 * 300 ms" at once, the cluster formed again from orphans, and its
	 * tables or migrations no longer those the steps below expect (moved,
	 * took_one, the notices told again: each failed so, a 200-800 ms
	 * SIGSTOP of the test process after r started). */
	node_hb_count = 24;
	tnode_up(&p, 0xc3, pp, pq);
	tnode_up(&q, 0xd4, pq, pp);
	t0 = clock_mono_ns();
	while (!all_rebalanced(all, 2)) {
		if (clock_mono_ns() - t0 > 10000000000ull)
			fail_msg("no cluster of 2 within 10 s");
		sleep_ms(10);
	}
	for (unsigned i = 0; i < 64; i++) {
		char k[16];

		snprintf(k, sizeof(k), "tk%u", i);
		assert_int_equal(put(&p, k, "held by p and q"), 0);
	}
	__atomic_store_n(&p.cfg.migrate_threads, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&q.cfg.migrate_threads, 0, __ATOMIC_RELAXED);
	tnode_up(&r, 0xe5, pr, pp);
	node_hb_count = 6;
	/* the partitions r is final master of and p works now: r takes
	 * them over from p, q learns it from r's notice only.  Read in a
	 * cluster that stays (wait_settled), again if it changed meanwhile.
	 * A cluster formed from orphans (a stall of this process past the
	 * heartbeat timeout: every node "departed", then all came back) may
	 * have q work every partition r takes over and p none: then q and p
	 * swap parts (ps works them and goes on, qs is the busy member). */
	for (unsigned tries = 0;; tries++) {
		uint64_t key;

		wait_settled(all, 3, &r);
		key = table_key(&p);
		for (unsigned side = 0; side < 2; side++) {
			ps = side == 0 ? &p : &q;
			qs = side == 0 ? &q : &p;
			for (uint32_t pid = 0; pid < PARTITION_COUNT; pid++) {
				struct txn_partition tp;

				assert_int_equal(txn_partition_get(ps->ns, pid, &tp), 0);
				from_p[pid] = tp.replicas[0] == r.id && tp.am_master && tp.cluster_key == key;
			}
			moved[0] = '\0';
			for (unsigned i = 0; i < 64 && moved[0] == '\0'; i++) {
				struct digest dg;

				snprintf(moved, sizeof(moved), "tk%u", i);
				digest_compute(&dg, NULL, 0, moved, strlen(moved));
				if (!from_p[digest_partition(&dg)])
					moved[0] = '\0';
			}
			if (moved[0] != '\0')
				break;
		}
		if ((moved[0] != '\0' && table_key(&p) == key) || tries == 2)
			break;
	}
	if (ps != &p)
		print_message("q works the partitions r takes over, p none: they swap parts\n");
	if (moved[0] == '\0') {
		/* who works the partitions r is final master of, as each says */
		unsigned works[3] = { 0, 0, 0 }, finals = 0;

		for (uint32_t pid = 0; pid < PARTITION_COUNT; pid++) {
			struct txn_partition tp;

			if (txn_partition_get(r.ns, pid, &tp) != 0 || tp.replicas[0] != r.id)
				continue;
			finals++;
			for (unsigned i = 0; i < 3; i++)
				if (txn_partition_get(all[i]->ns, pid, &tp) == 0 && tp.am_master)
					works[i]++;
		}
		print_message("r final master of %u partitions; p works %u, q %u, r %u (keys %016" PRIx64
		    " %016" PRIx64 " %016" PRIx64 ")\n", finals, works[0], works[1], works[2],
		    table_key(&p), table_key(&q), table_key(&r));
	}
	assert_true(moved[0] != '\0');
	/* names p works and q is a replica of, their locks held on q: p's
	 * writes of them replicate to q, each taking one of q's workers */
	for (unsigned i = 0; n < BLOCK; i++) {
		struct txn_partition tp;
		char *k = bg[n].key;

		snprintf(k, sizeof(bg[n].key), "tkh%u", i);
		digest_compute(&d[n], NULL, 0, k, strlen(k));
		if (txn_partition_get(ps->ns, digest_partition(&d[n]), &tp) != 0 || !tp.am_master ||
		    (tp.replicas[0] != qs->id && tp.replicas[1] != qs->id))
			continue;
		bg[n].ns = ps->ns;
		index_record_lock(qs->ns->index, &d[n]);
		n++;
	}
	for (unsigned i = 0; i < BLOCK; i++)
		assert_int_equal(pthread_create(&bg[i].th, NULL, bg_put_hold, &bg[i]), 0);
	/* From here every check is taken before the locks go, then asserted:
	 * a failure never leaves q's workers blocked. */
	t0 = clock_mono_ns();
	while (FV(*qs, rpc_requests_in_progress) < BLOCK && clock_mono_ns() - t0 < 5000000000ull)
		sleep_ms(10);
	taken = FV(*qs, rpc_requests_in_progress) >= BLOCK;
	again0 = ns_stat(&r, STAT_NS_migrate_takeover_notices_again);
	__atomic_store_n(&ps->cfg.migrate_threads, 1, __ATOMIC_RELAXED);
	/* r takes over a partition from p ... */
	took_one = false;
	t0 = clock_mono_ns();
	while (!took_one && clock_mono_ns() - t0 < 10000000000ull) {
		for (uint32_t pid = 0; pid < PARTITION_COUNT && !took_one; pid++) {
			struct txn_partition tp;

			took_one = from_p[pid] && txn_partition_get(r.ns, pid, &tp) == 0 && tp.am_master;
		}
		if (!took_one)
			sleep_ms(10);
	}
	/* ... and its notice to q is not answered in time */
	sleep_ms(1500);
	for (unsigned i = 0; i < BLOCK; i++)
		index_record_unlock(qs->ns->index, &d[i]);
	for (unsigned i = 0; i < BLOCK; i++)
		pthread_join(bg[i].th, NULL);
	__atomic_store_n(&qs->cfg.migrate_threads, 1, __ATOMIC_RELAXED);
	t0 = clock_mono_ns();
	while (remaining(&p) + remaining(&q) + remaining(&r) != 0 && clock_mono_ns() - t0 < 30000000000ull)
		sleep_ms(10);
	assert_true(taken);      /* q's rpc workers were all waiting */
	assert_true(took_one);   /* r took over from p meanwhile */
	assert_int_equal(remaining(&p) + remaining(&q) + remaining(&r), 0);
	agree = tables_agree(all, 3);
	if (!agree)
		for (uint32_t pid = 0; pid < PARTITION_COUNT; pid++) {
			struct txn_partition tq, tr;

			if (txn_partition_get(qs->ns, pid, &tq) == 0 && txn_partition_get(r.ns, pid, &tr) == 0 &&
			    tq.master != tr.master) {
				print_message("partition %u: q sends to %" PRIx64 ", r to %" PRIx64 "\n", pid,
				    tq.master, tr.master);
				break;
			}
		}
	assert_true(agree);
	/* q was told again, and an operation through q reaches r */
	assert_true(ns_stat(&r, STAT_NS_migrate_takeover_notices_again) > again0);
	{
		struct txn_key k = key_of(moved);
		struct txn_record rec;

		assert_int_equal(txn_read(qs->ns, &k, &rec), 0);
		txn_record_release(&rec);
	}
	free(from_p);
	tnode_down(&r);
	tnode_down(&q);
	tnode_down(&p);
}

/*
 * A delete whose master ran it, replicated its tombstone and went down
 * before its answer arrived is routed again to the new master - the former
 * replica, holding the tombstone - and succeeds, as the delete it is: it
 * does not answer ENOENT as if the file had never been there (the fault
 * test's STALE: "delete answered ENOENT after acknowledged value", a
 * master SIGKILLed mid-answer).  The lost answer is a hook at the caller:
 * the first attempt's result becomes "master down" and the master's
 * network goes.
 */
static struct tnode *lose_master;
static struct namespace *lose_at;      /* the caller's namespace */
static enum txn_op_kind lose_kind;     /* the operation whose answer is lost */
static int lost_answers, lost_rc;
static struct txn_op_id lost_id;       /* the id the lost attempt carried */
/* At the lost answer: the copy the first attempt left on this node (the
 * replica), key lose_key: its generation, last-update time, content. */
static struct tnode *lose_copy_at;
static const char *lose_key;
static uint16_t lost_gen;
static uint64_t lost_lut, lost_pending;   /* and the master's rpc_requests_pending */
static uint64_t lost_returned;            /* and its replica_writes_returned */
static char lost_content[64];

static int
lose_answer(const struct txn_target *t, const struct txn_op *op, int rc)
{
	if (op->kind != lose_kind || op->retry || lose_master == NULL || t->ns != lose_at)
		return rc;
	lost_answers++;
	lost_rc = rc;
	lost_id = op->id;
	if (lose_copy_at != NULL)
		own_version(lose_copy_at, lose_key, &lost_gen, &lost_lut, lost_content,
		    sizeof(lost_content));
	lost_pending = FV(*lose_master, rpc_requests_pending);
	lost_returned = FV(*lose_master, replica_writes_returned);
	tnode_net_down(lose_master);
	lose_master = NULL;
	return -EHOSTDOWN;
}

/* The answer of the next op_kind proxied from caller to master is lost and
 * master's network goes; copy_at's copy of k is taken first. */
static void
lose_next_answer(enum txn_op_kind kind, struct tnode *caller, struct tnode *master,
    struct tnode *copy_at, const char *k)
{
	lost_answers = 0;
	lost_rc = 1;
	lose_kind = kind;
	lose_at = caller->ns;
	lose_copy_at = copy_at;
	lose_key = k;
	lose_master = master;
	atomic_store_relaxed(&txn_proxy_result_test_hook, lose_answer);
}

static void
test_delete_routed_again_after_its_master_went_down(void **state)
{
	struct tnode c, d;
	uint16_t pc = free_port(), pd = free_port();
	struct record_attr a;
	struct txn_key key;
	char k[16];
	uint64_t r0;
	int rc;

	(void)state;
	while (pd == pc)
		pd = free_port();
	memset(&c, 0, sizeof(c));
	memset(&d, 0, sizeof(d));
	tnode_up(&c, 0xc5, pc, pd);
	tnode_up(&d, 0xd6, pd, pc);
	wait_pair(&c, &d);
	wait_tables(&c, &d);
	settled_pair(&c, &d);
	/* d masters it, c is its replica (RF 2 of 2) */
	name_mastered(&c, false, k, sizeof(k));
	key = key_of(k);
	assert_int_equal(put(&c, k, "to be deleted"), 0);
	r0 = ns_value(&c, STAT_NS_retries_applied_before);
	lose_next_answer(TXN_OP_DELETE, &c, &d, NULL, NULL);
	rc = txn_delete(c.ns, &key);
	atomic_store_relaxed(&txn_proxy_result_test_hook, NULL);
	assert_int_equal(lost_answers, 1);
	assert_int_equal(lost_rc, 0);          /* d ran it and c applied its tombstone */
	assert_int_equal(rc, 0);               /* c, master now, knew it for this delete */
	assert_int_equal(ns_value(&c, STAT_NS_retries_applied_before), r0 + 1);
	assert_int_equal(txn_stat(c.ns, &key, &a), -ENOENT);
	/* another delete of the name finds nothing, as ever */
	assert_int_equal(txn_delete(c.ns, &key), -ENOENT);
	tnode_down(&c);
	tnode_down(&d);
}

/*
 * A write whose master stored it, replicated it and went down before its
 * answer arrived is routed again to the new master - the former replica,
 * holding that version - and is not applied a second time: a create-only
 * write (open O_EXCL, mkdir in a set) answers 0, not EEXIST as if someone
 * else had made the file, and any write keeps the generation and
 * last-update time of its one application.  Before, the attempt routed
 * again ran again: EEXIST, or a second generation for one write.
 * d masters the name, c is its replica; the caller is c itself (two
 * nodes: the attempt routed again runs at c) or a third node e (it is
 * proxied to c, marked as routed again).  On memory the first attempt is
 * stored on d's fabric thread and applied on c's (the inline paths); on
 * device files by workers.
 */
static void
write_routed_again(bool create_only, bool three, bool devices)
{
	struct tnode c, d, e;
	struct tnode *const all[3] = { &c, &d, &e };
	struct tnode *caller = three ? &e : &c;
	uint16_t pc = free_port(), pd = free_port(), pe = free_port();
	char files[3][64], k[16], content[64];
	struct record_attr a;
	struct txn_key key;
	struct txn_write w = { .set_file = true, .file_data = "written once", .file_len = 12 };
	uint64_t r0, pend0, ret0, lut;
	uint16_t gen;
	int rc;

	while (pd == pc)
		pd = free_port();
	while (pe == pc || pe == pd)
		pe = free_port();
	memset(&c, 0, sizeof(c));
	memset(&d, 0, sizeof(d));
	memset(&e, 0, sizeof(e));
	for (unsigned i = 0; i < 3; i++) {
		snprintf(files[i], sizeof(files[i]), "/tmp/test_data_path.%d.%u.dat", (int)getpid(), i);
		unlink(files[i]);
	}
	for (unsigned i = 0; i < (three ? 3u : 2u); i++) {
		if (devices)
			snprintf(engine_yaml, sizeof(engine_yaml),
			    "      type: device\n      files: [ %s ]\n      filesize: 16M\n", files[i]);
		tnode_up(all[i], 0xc7 + i, i == 0 ? pc : i == 1 ? pd : pe, i == 0 ? pd : pc);
	}
	snprintf(engine_yaml, sizeof(engine_yaml), "      type: memory\n      data-size: 16M\n");
	wait_settled(all, three ? 3 : 2, NULL);
	/* a name d masters and c is the other replica of */
	for (unsigned i = 0;; i++) {
		struct txn_partition p;
		struct digest dg;

		snprintf(k, sizeof(k), "w%u", i);
		digest_compute(&dg, NULL, 0, k, strlen(k));
		assert_int_equal(txn_partition_get(caller->ns, digest_partition(&dg), &p), 0);
		if (p.master == d.id && p.n_replicas == 2 && p.replicas[0] == d.id &&
		    p.replicas[1] == c.id)
			break;
	}
	key = key_of(k);
	if (create_only)
		w.flags = TXN_CREATE_ONLY;
	else
		assert_int_equal(put(caller, k, "the first content"), 0);
	r0 = ns_value(&c, STAT_NS_retries_applied_before);
	pend0 = FV(d, rpc_requests_pending);
	ret0 = FV(d, replica_writes_returned);
	lose_next_answer(TXN_OP_WRITE, caller, &d, &c, k);
	memset(&a, 0, sizeof(a));
	rc = txn_write(caller->ns, &key, &w, &a);
	atomic_store_relaxed(&txn_proxy_result_test_hook, NULL);
	assert_int_equal(lost_answers, 1);
	assert_int_equal(lost_rc, 0);          /* d stored it and c applied it */
	/* on memory d stored it on its fabric thread: with c the caller it
	 * handed the version back in its answer (c stored it before the
	 * answer was "lost"), else it waited for c's ack (pending) */
	assert_int_equal(lost_pending - pend0, devices || !three ? 0 : 1);
	assert_int_equal(lost_returned - ret0, !devices && !three ? 1 : 0);
	assert_string_equal(lost_content, "written once");
	assert_int_equal(lost_gen, create_only ? 1 : 2);
	/* c, master now, knew it: answered as the first attempt, not applied again */
	assert_int_equal(rc, 0);
	own_version(&c, k, &gen, &lut, content, sizeof(content));
	assert_int_equal(gen, lost_gen);
	assert_int_equal(lut, lost_lut);
	assert_string_equal(content, "written once");
	assert_int_equal(a.generation, lost_gen);
	assert_int_equal(a.last_update_ms, lost_lut);
	assert_int_equal(a.size, 12);
	assert_int_equal(ns_value(&c, STAT_NS_retries_applied_before), r0 + 1);
	if (create_only) {
		/* Another create of the name is refused as ever, and only the
		 * attempt of this very write routed again is taken for it: the
		 * same request served at c, the new master, with another id, or
		 * not marked as routed again, or of another name, is EEXIST. */
		struct txn_proxy_req q = { .kind = TXN_PROXY_WRITE, .ns = "test", .ns_len = 4,
		    .k = key, .has_write = true, .w = w, .id = lost_id, .retry = true };
		struct txn_record rec;
		char other[16];

		memset(&rec, 0, sizeof(rec));
		record_init(&rec.rec);
		assert_int_equal(txn_write(caller->ns, &key, &w, NULL), -EEXIST);
		assert_true(lost_id.seq != 0);
		q.id.seq++;
		assert_int_equal(txn_proxy_serve(c.ns, &q, &a, &rec), -EEXIST);
		q.id = lost_id;
		q.retry = false;
		assert_int_equal(txn_proxy_serve(c.ns, &q, &a, &rec), -EEXIST);
		q.retry = true;
		for (unsigned i = 0;; i++) {
			struct txn_partition p;
			struct digest dg;

			snprintf(other, sizeof(other), "%s-%u", k, i);
			digest_compute(&dg, NULL, 0, other, strlen(other));
			assert_int_equal(txn_partition_get(c.ns, digest_partition(&dg), &p), 0);
			if (p.am_master)
				break;
		}
		assert_int_equal(put(&c, other, "another file"), 0);
		q.k = key_of(other);
		assert_int_equal(txn_proxy_serve(c.ns, &q, &a, &rec), -EEXIST);
		assert_int_equal(ns_value(&c, STAT_NS_retries_applied_before), r0 + 1);
		/* and that attempt again is still known (served by a worker) */
		q.k = key;
		assert_int_equal(txn_proxy_serve(c.ns, &q, &a, &rec), 0);
		assert_int_equal(a.generation, 1);
		assert_int_equal(ns_value(&c, STAT_NS_retries_applied_before), r0 + 2);
	} else {
		/* the next write of the name is applied, as ever */
		assert_int_equal(put(caller, k, "then another"), 0);
		own_version(&c, k, &gen, &lut, content, sizeof(content));
		assert_int_equal(gen, lost_gen + 1);
		assert_string_equal(content, "then another");
	}
	for (unsigned i = three ? 3 : 2; i-- > 0;)
		tnode_down(all[i]);
	for (unsigned i = 0; i < 3; i++)
		unlink(files[i]);
}

static void
test_create_routed_again_after_its_master_went_down(void **state)
{
	(void)state;
	write_routed_again(true, false, false);
	write_routed_again(true, true, true);
}

static void
test_write_routed_again_after_its_master_went_down(void **state)
{
	(void)state;
	write_routed_again(false, true, false);
	write_routed_again(false, false, true);
}

/* The first name p<i>, from i0 on, whose partition t masters (want_master) or not. */
static unsigned
name_mastered_from(struct tnode *t, bool want_master, unsigned i0, char *out, size_t cap)
{
	for (unsigned i = i0;; i++) {
		struct txn_partition p;
		struct digest d;

		snprintf(out, cap, "p%u", i);
		digest_compute(&d, NULL, 0, out, strlen(out));
		assert_int_equal(txn_partition_get(t->ns, digest_partition(&d), &p), 0);
		if (p.am_master == want_master)
			return i;
	}
}

/*
 * A rename whose master ran it and went down before answering, routed
 * again to the new master (the former replica, holding the new name and
 * the old one's tombstone), answers 0: `mv` does not fail with ENOENT as
 * if the file had gone, and the new name is written once (generation 1).
 * Across masters (the old name's master c, the new one's d: the new name's
 * write, "rename-in", is what goes to d) a rename with RENAME_NOREPLACE
 * whose rename-in is routed again does not fail with EEXIST over its own
 * first attempt.  Two nodes, c the caller.
 */
static void
test_rename_routed_again_after_its_master_went_down(void **state)
{
	struct tnode c, d;
	uint16_t pc = free_port(), pd = free_port();
	char from[16], to[16], content[64];
	struct txn_key kf, kt;
	struct record_attr a;
	uint64_t r0, lut;
	uint16_t gen;
	unsigned i;

	(void)state;
	for (int across = 0; across < 2; across++) {
		while (pd == pc)
			pd = free_port();
		memset(&c, 0, sizeof(c));
		memset(&d, 0, sizeof(d));
		tnode_up(&c, 0xca, pc, pd);
		tnode_up(&d, 0xdb, pd, pc);
		wait_pair(&c, &d);
		wait_tables(&c, &d);
		settled_pair(&c, &d);
		/* d masters the new name; the old one too, or c */
		i = name_mastered_from(&c, across != 0, 0, from, sizeof(from));
		name_mastered_from(&c, false, i + 1, to, sizeof(to));
		kf = key_of(from);
		kt = key_of(to);
		assert_int_equal(put(&c, from, "renamed once"), 0);
		r0 = ns_value(&c, STAT_NS_retries_applied_before);
		lose_next_answer(across ? TXN_OP_RENAME_IN : TXN_OP_RENAME, &c, &d, NULL, NULL);
		assert_int_equal(txn_rename(c.ns, &kf, &kt, across ? TXN_RENAME_NOREPLACE : 0), 0);
		atomic_store_relaxed(&txn_proxy_result_test_hook, NULL);
		assert_int_equal(lost_answers, 1);
		assert_int_equal(lost_rc, 0);
		assert_int_equal(ns_value(&c, STAT_NS_retries_applied_before), r0 + 1);
		assert_int_equal(txn_stat(c.ns, &kf, &a), -ENOENT);
		own_version(&c, to, &gen, &lut, content, sizeof(content));
		assert_int_equal(gen, 1);
		assert_string_equal(content, "renamed once");
		tnode_down(&c);
		tnode_down(&d);
		pc = free_port();
		pd = free_port();
	}
}

/*
 * The table of recent operations keeps the last 4 operations of one record
 * (writers of one name through several nodes): an attempt routed again of
 * any of them answers 0 without running again, and one that 4 later ones
 * pushed out runs again (the limit docs/cluster.md, Proxy, states).  One
 * node alone, served as a master serves a proxied write (txn_proxy_serve).
 */
static void
test_recent_operations_keep_the_last_four_of_a_record(void **state)
{
	struct recfs_config cfg;
	struct node *node;
	struct namespace *ns;
	struct record_attr a;
	struct txn_record rec;
	uint64_t v[STAT_NS_COUNT], r0;
	char err[256];
	struct txn_proxy_req q = { .kind = TXN_PROXY_WRITE, .ns = "test", .ns_len = 4,
	    .k = key_of("hot"), .has_write = true,
	    .w = { .set_file = true, .file_data = "x", .file_len = 1 } };

	(void)state;
	assert_int_equal(config_load_string(&cfg, "namespaces:\n  - name: test\n"
	    "    storage-engine:\n      type: memory\n      data-size: 16M\n"
	    "      write-block-size: 128K\n", "test", err, sizeof(err)), 0);
	assert_int_equal(node_open(&node, &cfg), 0);
	txn_node_id_set(node, 0xab1);   /* alone: it masters every partition */
	ns = node_namespace_find(node, "test", 4);
	assert_non_null(ns);
	memset(&rec, 0, sizeof(rec));
	record_init(&rec.rec);
	for (uint64_t i = 1; i <= 5; i++) {
		q.id = (struct txn_op_id){ .node = 0xabc, .seq = i };
		assert_int_equal(txn_proxy_serve(ns, &q, &a, &rec), 0);
		assert_int_equal(a.generation, i);
	}
	txn_namespace_values(ns, v);
	r0 = v[STAT_NS_retries_applied_before];
	q.retry = true;
	for (uint64_t i = 5; i >= 2; i--) {
		q.id.seq = i;
		assert_int_equal(txn_proxy_serve(ns, &q, &a, &rec), 0);
		assert_int_equal(a.generation, 5);
	}
	txn_namespace_values(ns, v);
	assert_int_equal(v[STAT_NS_retries_applied_before], r0 + 4);
	q.id.seq = 1;      /* pushed out by 2..5: runs again */
	assert_int_equal(txn_proxy_serve(ns, &q, &a, &rec), 0);
	assert_int_equal(a.generation, 6);
	txn_namespace_values(ns, v);
	assert_int_equal(v[STAT_NS_retries_applied_before], r0 + 4);
	node_close(node, false);
	config_free(&cfg);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_write_on_one_read_on_the_other),
		cmocka_unit_test(test_replica_keeps_a_version_it_has),
		cmocka_unit_test(test_not_master_is_rerouted),
		cmocka_unit_test(test_busy_master_is_asked_again),
		cmocka_unit_test(test_reads_and_replica_writes_inline_unless_their_lock_is_held),
		cmocka_unit_test(test_proxied_write_ends_on_the_thread_that_reads_the_replica_ack),
		cmocka_unit_test(test_proxied_write_hands_its_version_back_to_its_replica),
		cmocka_unit_test(test_migration_refuses_bad_input),
		cmocka_unit_test(test_migration_refuses_bad_records_one_by_one),
		cmocka_unit_test(test_remaining_counts_the_hand_over),
		cmocka_unit_test(test_migration_of_a_partition_larger_than_the_window),
		cmocka_unit_test(test_a_master_waiting_for_replicas_holds_only_its_record),
		cmocka_unit_test(test_node_down_fails_fast_then_goes_on),
		cmocka_unit_test(test_orphan_waits_for_a_cluster),
		cmocka_unit_test(test_persistent_replicas),
		cmocka_unit_test(test_memory_tombstones_in_a_cluster),
		cmocka_unit_test(test_set_of_records_only_is_known_everywhere),
		cmocka_unit_test(test_rmdir_done_when_a_node_dies_meanwhile),
		cmocka_unit_test(test_set_checks_wait_for_a_node_just_started),
		cmocka_unit_test(test_listing_waits_for_a_node_just_started_or_gone),
		cmocka_unit_test(test_set_checks_go_on_without_a_node_that_died),
		cmocka_unit_test(test_mkdir_name_check_waits_for_a_working_master),
		cmocka_unit_test(test_write_waiting_through_a_master_change_runs_at_the_new_master),
		cmocka_unit_test(test_takeover_notice_reaches_a_busy_member),
		cmocka_unit_test(test_delete_routed_again_after_its_master_went_down),
		cmocka_unit_test(test_create_routed_again_after_its_master_went_down),
		cmocka_unit_test(test_write_routed_again_after_its_master_went_down),
		cmocka_unit_test(test_rename_routed_again_after_its_master_went_down),
		cmocka_unit_test(test_recent_operations_keep_the_last_four_of_a_record),
	};

	signal(SIGPIPE, SIG_IGN);
	if (argc > 1)
		cmocka_set_test_filter(argv[1]);   /* one test, by name: to loop it */
	return cmocka_run_group_tests(tests, setup, teardown);
}
