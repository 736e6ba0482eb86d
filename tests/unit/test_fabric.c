/*
 * test_fabric.c - the fabric (src/fabric/): the message codec, the secret
 * file, and real fabric instances in one process talking over 127.0.0.1
 * (port 0): messages both ways and in order, refusals of a wrong secret,
 * another cluster-name, another protocol version, garbage, truncated and
 * oversized frames and duplicate node ids (each counted, on both sides
 * where both can tell), back-pressure from a peer that stops reading, and
 * reconnection after a restart.  A raw socket speaks the handshake itself
 * where a misbehaving peer is needed.  Every wait is bounded (WAIT_MS).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/error.h"
#include "fabric/fabric.h"
#include "fabric/fabric_i.h"
#include "net_fixture.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#define FIELD_SEQ 1
#define FIELD_PAD 2
#define FIELD_PATTERN 3   /* present: FIELD_PAD holds pattern_byte(seq, i) */

static uint8_t
pattern_byte(uint64_t seq, size_t i)
{
	return (uint8_t)(seq * 131 + i * 7 + (i >> 11));
}

/* Nodes share net_secret (net_fixture.h); this one is another. */
static const uint8_t secret_b[] = "0123456789abcdef-secret-B";

/* One fabric instance and what it received. */
struct node {
	struct fabric *f;
	uint64_t id;
	pthread_mutex_t lock;
	uint64_t received;        /* FABRIC_MSG_TEST messages */
	uint64_t next_seq[8];     /* per sender (index = node id % 8) */
	uint64_t out_of_order;
	uint64_t bad_pattern;     /* FIELD_PATTERN messages whose pad was not the pattern */
	uint64_t pattern_bytes;   /* pad bytes of FIELD_PATTERN messages received */
	int ups, downs;
};

static void
on_test(void *arg, uint64_t from, const struct fabric_msg *m)
{
	struct node *n = arg;
	uint64_t seq;

	uint32_t pat;
	const uint8_t *pad;
	size_t pad_len = 0;
	bool bad = false;

	assert_int_equal(fabric_msg_get_u64(m, FIELD_SEQ, &seq), 0);
	if (fabric_msg_get_u32(m, FIELD_PATTERN, &pat) == 0) {
		if (fabric_msg_get_bytes(m, FIELD_PAD, &pad, &pad_len) != 0)
			bad = true;
		for (size_t i = 0; i < pad_len && !bad; i++)
			bad = pad[i] != pattern_byte(seq, i);
	}
	pthread_mutex_lock(&n->lock);
	n->bad_pattern += bad;
	n->pattern_bytes += pad_len;
	if (seq != n->next_seq[from % 8])
		n->out_of_order++;
	n->next_seq[from % 8] = seq + 1;
	n->received++;
	pthread_mutex_unlock(&n->lock);
}

static void
on_peer(void *arg, uint64_t node_id, bool up)
{
	struct node *n = arg;

	(void)node_id;
	pthread_mutex_lock(&n->lock);
	if (up)
		n->ups++;
	else
		n->downs++;
	pthread_mutex_unlock(&n->lock);
}

struct node_opts {
	const uint8_t *secret;
	const char *cluster;
	uint8_t version;
	size_t queue_max;
	uint16_t port;
	uint32_t handshake_ms;
	uint32_t ack_timeout_ms;
	const char *tls_cert, *tls_key, *tls_ca;
};

static int
node_start(struct node *n, uint64_t id, const struct node_opts *o)
{
	struct fabric_config cfg = net_fabric_config(id, o->port);
	int rc;

	if (o->cluster != NULL)
		cfg.cluster_name = o->cluster;
	if (o->secret != NULL) {
		cfg.secret = o->secret;
		cfg.secret_len = strlen((const char *)o->secret);
	}
	cfg.send_queue_max = o->queue_max;
	cfg.on_peer = on_peer;
	cfg.arg = n;
	cfg.protocol_version = o->version;
	cfg.handshake_ms = o->handshake_ms;
	cfg.tls_cert_file = o->tls_cert;
	cfg.tls_key_file = o->tls_key;
	cfg.tls_ca_file = o->tls_ca;

	memset(n, 0, sizeof(*n));
	pthread_mutex_init(&n->lock, NULL);
	n->id = id;
	rc = fabric_create(&cfg, &n->f);
	if (rc != 0)
		return rc;
	assert_int_equal(fabric_handler_set(n->f, FABRIC_MSG_TEST, on_test, n), 0);
	if (o->ack_timeout_ms != 0)
		assert_int_equal(fabric_ack_timeout_set(n->f, o->ack_timeout_ms), 0);
	return fabric_start(n->f);
}

static void
node_up(struct node *n, uint64_t id)
{
	static const struct node_opts none;

	assert_int_equal(node_start(n, id, &none), 0);
}

static void
node_stop(struct node *n)
{
	fabric_destroy(n->f);
	n->f = NULL;
	pthread_mutex_destroy(&n->lock);
}

static void
dial(struct node *from, const struct node *to)
{
	char addr[32];

	net_address(to->f, addr, sizeof(addr));
	assert_int_equal(fabric_peer_add(from->f, addr), 0);
}

/* CPU time of the whole process (every thread), in s. */
static double
cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	    (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static struct fabric_stats
stats(const struct node *n)
{
	struct fabric_stats s;

	fabric_stats_get(n->f, &s);
	return s;
}

static bool
connected_to(const struct node *n, uint64_t id)
{
	struct fabric_peer_info p[16];
	unsigned i, k = fabric_peers_get(n->f, p, 16);

	for (i = 0; i < k && i < 16; i++)
		if (p[i].node_id == id)
			return p[i].connected;
	return false;
}

static int
count_of(struct node *n, const int *field)
{
	int v;

	pthread_mutex_lock(&n->lock);
	v = *field;
	pthread_mutex_unlock(&n->lock);
	return v;
}

#define UPS(n) count_of((n), &(n)->ups)
#define DOWNS(n) count_of((n), &(n)->downs)

static uint64_t
received(struct node *n)
{
	uint64_t v;

	pthread_mutex_lock(&n->lock);
	v = n->received;
	pthread_mutex_unlock(&n->lock);
	return v;
}

/* Sends count test messages (seq from first) of pad bytes; retries while the
 * queue is full, bounded. */
static void
send_many(struct node *from, uint64_t to, uint64_t first, unsigned count, size_t pad)
{
	static uint8_t padding[70000];
	uint8_t *buf = malloc(pad + 64);
	unsigned i;

	assert_non_null(buf);
	for (i = 0; i < count; i++) {
		struct fabric_msg_writer w;
		uint64_t t0 = net_now_ms();
		int rc;

		fabric_msg_writer_init(&w, buf, pad + 64, FABRIC_MSG_TEST);
		fabric_msg_put_u64(&w, FIELD_SEQ, first + i);
		fabric_msg_put_bytes(&w, FIELD_PAD, padding, pad);
		while ((rc = fabric_send(from->f, to, &w)) == -ENOBUFS && net_now_ms() - t0 < WAIT_MS)
			net_sleep_ms(1);
		assert_int_equal(rc, 0);
	}
	free(buf);
}

/* Sends messages seq first.. with patterned pads of the given sizes, the pad
 * copied (ref 0), by reference (1: fabric_msg_put_bytes_ref) or by reference
 * in two pieces (2: fabric_msg_put_bytes_ref2, cut at a third); retries
 * while the queue is full, bounded.  Returns the pad bytes sent. */
static uint64_t
send_patterned(struct node *from, uint64_t to, uint64_t first, const size_t *sizes, unsigned count,
    int ref)
{
	uint64_t bytes = 0;

	for (unsigned i = 0; i < count; i++) {
		size_t n = sizes[i];
		uint8_t *pad = malloc(n + 1), *buf = malloc(n + 64);
		struct fabric_msg_writer w;
		uint64_t t0 = net_now_ms();
		int rc;

		assert_true(pad != NULL && buf != NULL);
		for (size_t k = 0; k < n; k++)
			pad[k] = pattern_byte(first + i, k);
		fabric_msg_writer_init(&w, buf, ref ? 64 : n + 64, FABRIC_MSG_TEST);
		fabric_msg_put_u64(&w, FIELD_SEQ, first + i);
		fabric_msg_put_u32(&w, FIELD_PATTERN, 1);
		if (ref == 2)
			fabric_msg_put_bytes_ref2(&w, FIELD_PAD, pad, n / 3, pad + n / 3, n - n / 3);
		else if (ref == 1)
			fabric_msg_put_bytes_ref(&w, FIELD_PAD, pad, n);
		else
			fabric_msg_put_bytes(&w, FIELD_PAD, pad, n);
		assert_int_equal(w.err, 0);
		while ((rc = fabric_send(from->f, to, &w)) == -ENOBUFS && net_now_ms() - t0 < WAIT_MS)
			net_sleep_ms(1);
		assert_int_equal(rc, 0);
		/* the fabric keeps nothing of the caller's: scribbled over at once */
		memset(pad, 0xee, n + 1);
		free(pad);
		free(buf);
		bytes += n;
	}
	return bytes;
}

/* The ids of this process's threads (from /proc/self/task); how many. */
static unsigned
thread_ids(long *out, unsigned max)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	unsigned n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.' && n < max)
			out[n++] = strtol(e->d_name, NULL, 10);
	closedir(d);
	return n;
}

/* Context switches (voluntary + not) of one thread of this process so far. */
static uint64_t
thread_switches(long tid)
{
	char path[64], line[128];
	uint64_t total = 0;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/self/task/%ld/status", tid);
	fp = fopen(path, "r");
	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp) != NULL) {
		unsigned long long v;

		if (sscanf(line, "voluntary_ctxt_switches: %llu", &v) == 1 ||
		    sscanf(line, "nonvoluntary_ctxt_switches: %llu", &v) == 1)
			total += v;
	}
	fclose(fp);
	return total;
}

/* ---- codec ------------------------------------------------------------------ */

static void
test_fabric_msg_fields_roundtrip_and_bad_input_is_refused(void **state)
{
	uint8_t buf[128], small[12];
	struct fabric_msg_writer w;
	struct fabric_msg m;
	const uint8_t *p;
	size_t len;
	uint32_t v32;
	uint64_t v64;

	(void)state;
	fabric_msg_writer_init(&w, buf, sizeof(buf), FABRIC_MSG_TEST);
	fabric_msg_put_u32(&w, 1, 7);
	fabric_msg_put_u64(&w, 2, 0x1122334455667788ULL);
	fabric_msg_put_bytes(&w, 3, "abc", 3);
	/* a field of a type this version does not know: skipped by readers */
	assert_true(w.len + 9 < sizeof(buf));
	fabric_put16(buf + w.len, 9);
	buf[w.len + 2] = 200;
	fabric_put32(buf + w.len + 3, 2);
	w.len += 9;
	assert_int_equal(w.err, 0);
	assert_int_equal(fabric_msg_decode(buf, w.len, &m), 0);
	assert_int_equal(m.type, FABRIC_MSG_TEST);
	assert_int_equal(fabric_msg_get_u32(&m, 1, &v32), 0);
	assert_int_equal(v32, 7);
	assert_int_equal(fabric_msg_get_u64(&m, 2, &v64), 0);
	assert_true(v64 == 0x1122334455667788ULL);
	assert_int_equal(fabric_msg_get_bytes(&m, 3, &p, &len), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(p, "abc", 3);
	assert_int_equal(fabric_msg_get_u32(&m, 4, &v32), -ENOENT);   /* missing */
	assert_int_equal(fabric_msg_get_u64(&m, 1, &v64), -EBADMSG);  /* wrong type */

	/* truncated anywhere: refused, never read past the end */
	for (len = 0; len < w.len; len++) {
		uint8_t *exact = malloc(len + 1);

		memcpy(exact, buf, len);
		/* whole fields end at 2, 13 (u32), 28 (u64), 38 (bytes) */
		bool boundary = len == 2 || len == 13 || len == 28 || len == 38;

		assert_int_equal(fabric_msg_decode(exact, len, &m), boundary ? 0 : -EBADMSG);
		free(exact);
	}
	/* a field twice: the consumer refuses it */
	fabric_msg_writer_init(&w, buf, sizeof(buf), FABRIC_MSG_TEST);
	fabric_msg_put_u64(&w, 1, 1);
	fabric_msg_put_u64(&w, 1, 2);
	assert_int_equal(fabric_msg_decode(buf, w.len, &m), 0);
	assert_int_equal(fabric_msg_get_u64(&m, 1, &v64), -EBADMSG);
	/* a U32 whose length is not 4 */
	fabric_msg_writer_init(&w, buf, sizeof(buf), FABRIC_MSG_TEST);
	fabric_msg_put_u32(&w, 1, 1);
	fabric_put32(buf + 2 + 3, 5);
	buf[w.len++] = 0;
	assert_int_equal(fabric_msg_decode(buf, w.len, &m), -EBADMSG);
	/* the writer stops at its buffer */
	fabric_msg_writer_init(&w, small, sizeof(small), FABRIC_MSG_TEST);
	fabric_msg_put_u64(&w, 1, 1);
	assert_int_equal(w.err, -EMSGSIZE);
}

/* ---- secret file --------------------------------------------------------------- */

/* A field by reference: only its header in the buffer; it must be the last. */
static void
test_fabric_msg_field_by_reference_is_the_last_and_decodes_as_one_message(void **state)
{
	static const uint8_t tail[] = "the value, left where it is";
	uint8_t buf[64], whole[128];
	struct fabric_msg_writer w;
	struct fabric_msg m;
	const uint8_t *p;
	size_t len;
	uint64_t v;

	(void)state;
	fabric_msg_writer_init(&w, buf, sizeof(buf), FABRIC_MSG_TEST);
	fabric_msg_put_u64(&w, FIELD_SEQ, 5);
	fabric_msg_put_bytes_ref(&w, FIELD_PAD, tail, sizeof(tail));
	assert_int_equal(w.err, 0);
	assert_ptr_equal(w.tail, tail);
	assert_int_equal(w.tail_len, sizeof(tail));
	assert_int_equal(w.len, 2 + 7 + 8 + 7);        /* the value is not in buf */
	memcpy(whole, buf, w.len);
	memcpy(whole + w.len, tail, sizeof(tail));
	assert_int_equal(fabric_msg_decode(whole, w.len + sizeof(tail), &m), 0);
	assert_int_equal(fabric_msg_get_u64(&m, FIELD_SEQ, &v), 0);
	assert_int_equal(v, 5);
	assert_int_equal(fabric_msg_get_bytes(&m, FIELD_PAD, &p, &len), 0);
	assert_int_equal(len, sizeof(tail));
	assert_memory_equal(p, tail, len);
	/* nothing may follow it */
	fabric_msg_put_u32(&w, FIELD_PATTERN, 1);
	assert_int_equal(w.err, -EINVAL);
	/* in two pieces: one field of both */
	fabric_msg_writer_init(&w, buf, sizeof(buf), FABRIC_MSG_TEST);
	fabric_msg_put_bytes_ref2(&w, FIELD_PAD, tail, 4, tail + 4, sizeof(tail) - 4);
	assert_int_equal(w.err, 0);
	assert_true(w.tail == tail && w.tail_len == 4 && w.tail2 == tail + 4 &&
	    w.tail2_len == sizeof(tail) - 4);
	memcpy(whole, buf, w.len);
	memcpy(whole + w.len, tail, sizeof(tail));
	assert_int_equal(fabric_msg_decode(whole, w.len + sizeof(tail), &m), 0);
	assert_int_equal(fabric_msg_get_bytes(&m, FIELD_PAD, &p, &len), 0);
	assert_int_equal(len, sizeof(tail));
	/* its header must fit */
	fabric_msg_writer_init(&w, buf, 2 + 6, FABRIC_MSG_TEST);
	fabric_msg_put_bytes_ref(&w, FIELD_PAD, tail, sizeof(tail));
	assert_int_equal(w.err, -EMSGSIZE);
}

static void
test_fabric_secret_file_must_be_private_regular_and_long_enough(void **state)
{
	char path[] = "/tmp/recfs-test-secret.XXXXXX";
	uint8_t out[FABRIC_SECRET_MAX];
	size_t len = 0;
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "0123456789abcdefXYZ\n", 20), 20);
	close(fd);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(fabric_secret_load(path, out, &len), RECFS_ECONFIG);
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(fabric_secret_load(path, out, &len), RECFS_ECONFIG);
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(fabric_secret_load(path, out, &len), 0);
	assert_int_equal(len, 19); /* the newline is not part of it */
	assert_memory_equal(out, "0123456789abcdefXYZ", 19);
	assert_int_equal(chmod(path, 0400), 0);
	assert_int_equal(fabric_secret_load(path, out, &len), 0);
	/* too short */
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(truncate(path, 8), 0);
	assert_int_equal(fabric_secret_load(path, out, &len), RECFS_ECONFIG);
	unlink(path);
	/* missing, a directory */
	assert_int_equal(fabric_secret_load(path, out, &len), RECFS_ECONFIG);
	assert_int_equal(fabric_secret_load("/tmp", out, &len), RECFS_ECONFIG);
}

/* ---- live fabrics ---------------------------------------------------------------- */

static void
test_fabric_messages_flow_both_ways_in_order(void **state)
{
	struct node a, b;
	struct fabric_stats sa, sb;
	struct fabric_peer_info p[4];

	(void)state;
	node_up(&a, 11);
	node_up(&b, 12);
	dial(&a, &b);
	WAIT_FOR(connected_to(&a, 12) && connected_to(&b, 11));
	/* connected and idle: both event threads asleep, no polling */
	{
		double cpu0 = cpu_s();

		net_sleep_ms(300);
		print_message("idle: %.1f ms CPU in 300 ms\n", (cpu_s() - cpu0) * 1000);
		assert_true(cpu_s() - cpu0 < 0.010);
	}
	send_many(&a, 12, 0, 20000, 16);
	send_many(&b, 11, 0, 2000, 1000);
	send_many(&a, 12, 20000, 20, 60000); /* bigger than the write batch */
	WAIT_FOR(received(&b) == 20020 && received(&a) == 2000);
	assert_int_equal(b.out_of_order, 0);
	assert_int_equal(a.out_of_order, 0);
	sa = stats(&a);
	sb = stats(&b);
	assert_int_equal(sa.msgs_sent, 20020);
	assert_int_equal(sb.msgs_received, 20020);
	assert_int_equal(sb.msgs_sent, 2000);
	assert_int_equal(sa.connects, 1);
	assert_int_equal(sb.connects, 1);
	assert_int_equal(sa.peers_connected, 1);
	assert_true(sb.bytes_received > 20000 * (16 + 16) + 20 * 60000);
	assert_int_equal(fabric_peers_get(a.f, p, 4), 1);
	assert_true(p[0].node_id == 12 && p[0].connected);
	assert_int_equal(p[0].msgs_sent, 20020);
	assert_int_equal(p[0].msgs_received, 2000);
	assert_true(p[0].bytes_sent > 20000 * 16 && p[0].bytes_received > 2000 * 1000);
	/* an unknown node: no queue */
	{
		struct fabric_msg_writer w;
		uint8_t buf[32];

		fabric_msg_writer_init(&w, buf, sizeof(buf), FABRIC_MSG_TEST);
		assert_int_equal(fabric_send(a.f, 99, &w), -EHOSTUNREACH);
	}
	for (unsigned r = 0; r < FABRIC_REFUSE_COUNT; r++)
		assert_int_equal(sa.refused[r] + sb.refused[r], 0);
	node_stop(&a);
	node_stop(&b);
}

static void
test_fabric_wrong_secret_is_refused_on_both_sides(void **state)
{
	struct node a, b;
	struct node_opts ob = { .secret = secret_b };
	static const struct node_opts none;

	(void)state;
	assert_int_equal(node_start(&a, 21, &none), 0);
	assert_int_equal(node_start(&b, 22, &ob), 0);
	dial(&a, &b);
	WAIT_FOR(stats(&a).refused[FABRIC_REFUSE_AUTH] >= 1 && stats(&b).refused[FABRIC_REFUSE_AUTH] >= 1);
	assert_int_equal(stats(&a).connects, 0);
	assert_int_equal(stats(&b).connects, 0);
	assert_false(connected_to(&a, 22));
	assert_int_equal(UPS(&a) + UPS(&b), 0);
	node_stop(&a);
	node_stop(&b);
}

static void
test_fabric_other_cluster_name_is_refused(void **state)
{
	struct node a, b;
	struct node_opts ob = { .cluster = "other" };
	static const struct node_opts none;

	(void)state;
	assert_int_equal(node_start(&a, 31, &none), 0);
	assert_int_equal(node_start(&b, 32, &ob), 0);
	dial(&a, &b);
	WAIT_FOR(stats(&a).refused[FABRIC_REFUSE_CLUSTER_NAME] >= 1 &&
	    stats(&b).refused[FABRIC_REFUSE_CLUSTER_NAME] >= 1);
	assert_int_equal(stats(&a).connects + stats(&b).connects, 0);
	node_stop(&a);
	node_stop(&b);
}

static void
test_fabric_other_protocol_version_is_refused(void **state)
{
	struct node a, b;
	struct node_opts ob = { .version = FABRIC_PROTOCOL_VERSION + 1 };
	static const struct node_opts none;

	(void)state;
	assert_int_equal(node_start(&a, 41, &none), 0);
	assert_int_equal(node_start(&b, 42, &ob), 0);
	dial(&a, &b);
	WAIT_FOR(stats(&a).refused[FABRIC_REFUSE_VERSION] >= 1 &&
	    stats(&b).refused[FABRIC_REFUSE_VERSION] >= 1);
	assert_int_equal(stats(&a).connects + stats(&b).connects, 0);
	node_stop(&a);
	node_stop(&b);
}

static int
raw_connect(const struct node *to, int rcvbuf)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(fabric_port(to->f)) };
	struct timeval tv = { 5, 0 };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	if (rcvbuf != 0) /* before connect: the window is set then */
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Reads until the other side closes (bounded by SO_RCVTIMEO): true if it did. */
static bool
raw_closed_by_peer(int fd)
{
	char buf[4096];
	uint64_t t0 = net_now_ms();

	while (net_now_ms() - t0 < WAIT_MS) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);

		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return true;
		if (n < 0)
			return false;
	}
	return false;
}

static void
raw_send(int fd, const void *p, size_t len)
{
	assert_int_equal(send(fd, p, len, MSG_NOSIGNAL), (ssize_t)len);
}

static void
test_fabric_garbage_truncated_oversized_and_silent_connections_are_dropped_and_counted(void **state)
{
	struct node a, b;
	uint8_t junk[512], hdr[FABRIC_FRAME_HEADER];
	struct node_opts ob = { .handshake_ms = 300 };
	unsigned i;
	int fd;

	(void)state;
	node_up(&a, 51);
	assert_int_equal(node_start(&b, 52, &ob), 0);
	dial(&a, &b);
	WAIT_FOR(connected_to(&a, 52));

	/* random bytes (not starting with the magic) */
	srand(5);
	for (i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)rand();
	junk[0] = 0;
	fd = raw_connect(&b, 0);
	raw_send(fd, junk, sizeof(junk));
	assert_true(raw_closed_by_peer(fd));
	close(fd);
	WAIT_FOR(stats(&b).refused[FABRIC_REFUSE_MALFORMED] == 1);

	/* a truncated frame: a hello header promising 100 bytes, 20 sent, then EOF */
	fd = raw_connect(&b, 0);
	fabric_frame_header_write(hdr, FABRIC_PROTOCOL_VERSION, FABRIC_KIND_HELLO, 100);
	raw_send(fd, hdr, sizeof(hdr));
	raw_send(fd, junk, 20);
	shutdown(fd, SHUT_WR);
	assert_true(raw_closed_by_peer(fd));
	close(fd);
	WAIT_FOR(stats(&b).refused[FABRIC_REFUSE_MALFORMED] == 2);

	/* an oversized length prefix: dropped at the header, nothing allocated */
	fd = raw_connect(&b, 0);
	fabric_frame_header_write(hdr, FABRIC_PROTOCOL_VERSION, FABRIC_KIND_HELLO, 0x7fffffff);
	raw_send(fd, hdr, sizeof(hdr));
	assert_true(raw_closed_by_peer(fd));
	close(fd);
	WAIT_FOR(stats(&b).refused[FABRIC_REFUSE_OVERSIZED] == 1);

	/* a HELLO frame of fields that are not a hello */
	fd = raw_connect(&b, 0);
	fabric_frame_header_write(hdr, FABRIC_PROTOCOL_VERSION, FABRIC_KIND_HELLO, 2);
	raw_send(fd, hdr, sizeof(hdr));
	raw_send(fd, "\0\1", 2);
	assert_true(raw_closed_by_peer(fd));
	close(fd);
	WAIT_FOR(stats(&b).refused[FABRIC_REFUSE_MALFORMED] == 3);

	/* a connection that says nothing: dropped at the handshake deadline */
	fd = raw_connect(&b, 0);
	assert_true(raw_closed_by_peer(fd));
	close(fd);
	WAIT_FOR(stats(&b).refused[FABRIC_REFUSE_TIMEOUT] == 1);

	/* the good peer is still served, and was never dropped */
	send_many(&a, 52, 0, 100, 8);
	WAIT_FOR(received(&b) == 100);
	assert_int_equal(stats(&b).connects, 1);
	assert_true(connected_to(&b, 51));
	node_stop(&a);
	node_stop(&b);
}

/* Reads one whole frame (blocking, bounded by SO_RCVTIMEO) into buf. */
static size_t
raw_read_frame(int fd, uint8_t *buf, size_t cap)
{
	size_t have = 0, need = FABRIC_FRAME_HEADER;

	while (have < need) {
		ssize_t n = recv(fd, buf + have, need - have, 0);

		assert_true(n > 0);
		have += (size_t)n;
		if (have == FABRIC_FRAME_HEADER) {
			need += fabric_get32(buf + 4) + (buf[3] == FABRIC_KIND_MSG ? FABRIC_MAC_LEN : 0);
			assert_true(need <= cap);
		}
	}
	return have;
}

static void
raw_send_frame(int fd, uint8_t kind, const uint8_t *msg, size_t len)
{
	uint8_t hdr[FABRIC_FRAME_HEADER];

	fabric_frame_header_write(hdr, FABRIC_PROTOCOL_VERSION, kind, (uint32_t)len);
	raw_send(fd, hdr, sizeof(hdr));
	raw_send(fd, msg, len);
}

/* A raw client that authenticates as node id to n with a small receive
 * buffer, then reads nothing more.  Returns the socket. */
static int
raw_authenticate_hellos(const struct node *n, uint64_t id, struct fabric_hello *mine_out,
    struct fabric_hello *theirs_out)
{
	struct fabric_hello mine = { .node_id = id, .listen_port = 9 }, theirs;
	struct fabric_msg_writer w;
	struct fabric_msg m;
	uint8_t buf[2048], proof[FABRIC_PROOF_LEN];
	int fd, len, small = 4096;
	size_t flen;

	strcpy(mine.cluster_name, "test");
	strcpy(mine.listen_address, "127.0.0.1");
	assert_int_equal(fabric_auth_random(mine.nonce, FABRIC_NONCE_LEN), 0);
	fd = raw_connect(n, small);
	flen = raw_read_frame(fd, buf, sizeof(buf));
	assert_int_equal(buf[3], FABRIC_KIND_HELLO);
	assert_int_equal(fabric_msg_decode(buf + FABRIC_FRAME_HEADER, flen - FABRIC_FRAME_HEADER, &m), 0);
	assert_int_equal(fabric_hello_parse(&m, &theirs), 0);
	assert_true(theirs.node_id == n->id);
	len = fabric_hello_encode(&mine, buf, sizeof(buf));
	assert_true(len > 0);
	raw_send_frame(fd, FABRIC_KIND_HELLO, buf, (size_t)len);
	assert_int_equal(fabric_auth_proof(net_secret, NET_SECRET_LEN, &mine, &theirs, proof), 0);
	fabric_msg_writer_init(&w, buf, sizeof(buf), FABRIC_MSG_AUTH);
	fabric_msg_put_bytes(&w, FABRIC_FIELD_PROOF, proof, sizeof(proof));
	raw_send_frame(fd, FABRIC_KIND_AUTH, buf, w.len);
	flen = raw_read_frame(fd, buf, sizeof(buf));
	assert_int_equal(buf[3], FABRIC_KIND_AUTH);
	*mine_out = mine;
	*theirs_out = theirs;
	return fd;
}

static int
raw_authenticate(const struct node *n, uint64_t id)
{
	struct fabric_hello mine, theirs;

	return raw_authenticate_hellos(n, id, &mine, &theirs);
}

static void
test_fabric_peer_that_stops_reading_gets_back_pressure_others_still_served(void **state)
{
	struct node a, b;
	struct node_opts ob = { .queue_max = 256 * 1024 };
	static uint8_t buf[64 * 1024 + 64], padding[64 * 1024];
	uint64_t sent = 0;
	unsigned i;
	int fd, rc = 0;

	(void)state;
	node_up(&a, 61);
	assert_int_equal(node_start(&b, 62, &ob), 0);
	dial(&a, &b);
	WAIT_FOR(connected_to(&a, 62));
	fd = raw_authenticate(&b, 63);
	WAIT_FOR(connected_to(&b, 63));

	/*
	 * Fill the silent peer: socket buffers, then the 256 KiB queue.  A
	 * -ENOBUFS may be momentary (the sender outran the fabric thread);
	 * it is the answer for good once it lasts 200 ms.  Bounded: 1024
	 * messages of 64 KiB.
	 */
	for (i = 0; i < 1024; i++) {
		struct fabric_msg_writer w;

		fabric_msg_writer_init(&w, buf, sizeof(buf), FABRIC_MSG_TEST);
		fabric_msg_put_u64(&w, FIELD_SEQ, i);
		fabric_msg_put_bytes(&w, FIELD_PAD, padding, sizeof(padding));
		rc = fabric_send(b.f, 63, &w);
		if (rc == -ENOBUFS) {
			net_sleep_ms(200);
			rc = fabric_send(b.f, 63, &w);
			if (rc == -ENOBUFS)
				break;
		}
		assert_int_equal(rc, 0);
		sent += w.len;
	}
	assert_int_equal(rc, -ENOBUFS);
	assert_true(stats(&b).send_queue_full >= 1);
	/* the good peer still gets its messages, both ways */
	send_many(&b, 61, 0, 500, 100);
	send_many(&a, 62, 0, 500, 100);
	WAIT_FOR(received(&a) == 500 && received(&b) == 500);
	/* and the silent one's queue is still full: it really stalled */
	{
		struct fabric_peer_info p[4];
		unsigned k = fabric_peers_get(b.f, p, 4), j;

		for (j = 0; j < k; j++)
			if (p[j].node_id == 63) {
				print_message("silent peer: %zu bytes queued\n", p[j].queued_bytes);
				assert_true(p[j].queued_bytes > 128 * 1024);
			}
	}
	print_message("back-pressure after %llu bytes to the silent peer\n", (unsigned long long)sent);
	close(fd);
	WAIT_FOR(!connected_to(&b, 63));
	node_stop(&a);
	node_stop(&b);
}

/* Sockets of this process whose TCP_USER_TIMEOUT is ms. */
static unsigned
sockets_with_user_timeout(unsigned ms)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	unsigned n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		int fd = atoi(e->d_name);
		unsigned v = 0;
		socklen_t l = sizeof(v);

		if (e->d_name[0] != '.' && fd != dirfd(d) &&
		    getsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &v, &l) == 0 && v == ms)
			n++;
	}
	closedir(d);
	return n;
}

/*
 * The ack timeout (the heartbeat's timeout) is every fabric socket's
 * TCP_USER_TIMEOUT.  A peer that reads slowly with a full queue keeps its
 * connection (its window opens again and again: 5 ack timeouts of it, no
 * drop); one that stops reading altogether is dropped once its window has
 * stayed shut for the ack timeout (Linux applies TCP_USER_TIMEOUT to
 * zero-window probing too): it has read no pulse for that long either.
 * The drop of a cut link is t_cluster_splitheal.sh's (packets must
 * vanish).  Set only before the start.
 */
static void
test_fabric_ack_timeout_spares_a_slow_reader_drops_a_stopped_one(void **state)
{
	struct node b;
	struct node_opts ob = { .queue_max = 256 * 1024, .ack_timeout_ms = 200 };
	static uint8_t buf[64 * 1024 + 64], padding[64 * 1024], sink[64 * 1024];
	uint64_t t0;
	unsigned i;
	int fd, rc = 0;

	(void)state;
	assert_int_equal(node_start(&b, 72, &ob), 0);
	assert_int_equal(fabric_ack_timeout_set(b.f, 100), -EINVAL); /* started */
	fd = raw_authenticate(&b, 73);
	WAIT_FOR(connected_to(&b, 73));
	/* fails without the option: no socket has it */
	assert_true(sockets_with_user_timeout(200) >= 1);
	/* 1 s (5 ack timeouts) of a reader taking 64 KiB every 20 ms while
	 * the node keeps its queue to it full */
	t0 = net_now_ms();
	for (i = 0; net_now_ms() - t0 < 1000; i++) {
		struct fabric_msg_writer w;

		fabric_msg_writer_init(&w, buf, sizeof(buf), FABRIC_MSG_TEST);
		fabric_msg_put_u64(&w, FIELD_SEQ, i);
		fabric_msg_put_bytes(&w, FIELD_PAD, padding, sizeof(padding));
		while ((rc = fabric_send(b.f, 73, &w)) == 0)
			;
		assert_int_equal(rc, -ENOBUFS);
		(void)recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
		net_sleep_ms(20);
	}
	/* fails if a slow reader counted as silence (the connection dropped) */
	assert_true(connected_to(&b, 73));
	assert_int_equal(stats(&b).connects, 1);
	/* it stops reading: its window shuts and stays shut; dropped */
	WAIT_FOR(!connected_to(&b, 73));
	print_message("a peer that stopped reading dropped %llu ms after it stopped\n",
	    (unsigned long long)(net_now_ms() - t0 - 1000));
	close(fd);
	node_stop(&b);
}

/*
 * A frame's MAC is the AES-256-GCM tag (no plaintext) under the direction's
 * key, with the nonce 0^32 || sequence number and the frame header then
 * the message as additional data (docs/cluster.md): compared with a tag
 * OpenSSL computes the same way in one go for the first frames of a
 * direction, empty and 64 KiB messages too; another sequence number, key
 * or byte gives another tag.
 */
static void
test_fabric_frame_mac_is_gmac_of_header_and_message_under_seq_nonce(void **state)
{
	static uint8_t msg[64 * 1024];
	static uint8_t aad[FABRIC_FRAME_HEADER + sizeof(msg)];
	const size_t lens[] = { 0, 1, 55, 56, 64, 100, 1000, sizeof(msg) };
	uint8_t key[FABRIC_KEY_LEN], hdr[FABRIC_FRAME_HEADER], mac[FABRIC_MAC_LEN], ref[16], iv[12];
	uint8_t first[FABRIC_MAC_LEN];
	struct fabric_mac m;
	unsigned i;
	int n;

	(void)state;
	for (i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(i * 7 + 1);
	for (i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)(i * 31);
	assert_int_equal(fabric_mac_init(&m, key), 0);
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();

		fabric_frame_header_write(hdr, FABRIC_PROTOCOL_VERSION, FABRIC_KIND_MSG, (uint32_t)lens[i]);
		assert_int_equal(fabric_mac_compute(&m, hdr, msg, lens[i], mac), 0);
		if (i == 0)
			memcpy(first, mac, sizeof(first));
		memset(iv, 0, sizeof(iv));
		fabric_put64(iv + 4, i); /* the sequence number: frame i of the direction */
		memcpy(aad, hdr, FABRIC_FRAME_HEADER);
		memcpy(aad + FABRIC_FRAME_HEADER, msg, lens[i]);
		assert_non_null(c);
		assert_int_equal(EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, iv), 1);
		assert_int_equal(EVP_EncryptUpdate(c, NULL, &n, aad, (int)(FABRIC_FRAME_HEADER + lens[i])), 1);
		assert_int_equal(EVP_EncryptFinal_ex(c, ref, &n), 1);
		assert_int_equal(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, ref), 1);
		EVP_CIPHER_CTX_free(c);
		assert_memory_equal(mac, ref, FABRIC_MAC_LEN);
	}
	fabric_mac_fini(&m);
	/* frame 0 again under a fresh direction: the same tag; one bit of the
	 * message or of the key changed: another */
	assert_int_equal(fabric_mac_init(&m, key), 0);
	fabric_frame_header_write(hdr, FABRIC_PROTOCOL_VERSION, FABRIC_KIND_MSG, 0);
	assert_int_equal(fabric_mac_compute(&m, hdr, msg, 0, mac), 0);
	assert_memory_equal(mac, first, FABRIC_MAC_LEN);
	fabric_frame_header_write(hdr, FABRIC_PROTOCOL_VERSION, FABRIC_KIND_MSG, 1);
	assert_int_equal(fabric_mac_compute(&m, hdr, msg, 1, mac), 0);   /* seq 1, as frame 1 above */
	msg[0] ^= 1;
	assert_int_equal(fabric_mac_compute(&m, hdr, msg, 1, ref), 0);   /* seq 2 */
	assert_memory_not_equal(mac, ref, FABRIC_MAC_LEN);
	fabric_mac_fini(&m);
	key[0] ^= 1;
	assert_int_equal(fabric_mac_init(&m, key), 0);
	fabric_frame_header_write(hdr, FABRIC_PROTOCOL_VERSION, FABRIC_KIND_MSG, 0);
	assert_int_equal(fabric_mac_compute(&m, hdr, msg, 0, mac), 0);
	assert_memory_not_equal(mac, first, FABRIC_MAC_LEN);
	fabric_mac_fini(&m);
	/* a message in two pieces (a field by reference): the MAC of the whole,
	 * wherever it is split (AAD across block boundaries) */
	key[0] ^= 1;
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		size_t cut = lens[i] / 3 + (lens[i] > 0 ? 1 : 0);
		struct fabric_mac a, b;

		assert_int_equal(fabric_mac_init(&a, key), 0);
		assert_int_equal(fabric_mac_init(&b, key), 0);
		fabric_frame_header_write(hdr, FABRIC_PROTOCOL_VERSION, FABRIC_KIND_MSG, (uint32_t)lens[i]);
		assert_int_equal(fabric_mac_compute(&a, hdr, msg, lens[i], ref), 0);
		size_t c1 = cut > lens[i] ? lens[i] : cut, c2 = (lens[i] - c1) / 2;
		struct iovec pieces[3] = {
			{ .iov_base = msg, .iov_len = c1 },
			{ .iov_base = msg + c1, .iov_len = c2 },
			{ .iov_base = msg + c1 + c2, .iov_len = lens[i] - c1 - c2 },
		};

		assert_int_equal(fabric_mac_compute_tail(&b, hdr, pieces, 3, mac), 0);
		assert_memory_equal(mac, ref, FABRIC_MAC_LEN);
		fabric_mac_fini(&a);
		fabric_mac_fini(&b);
	}
}

static void
test_fabric_replayed_frame_fails_its_mac_and_is_dropped(void **state)
{
	struct fabric_hello mine, theirs;
	struct fabric_msg_writer w;
	struct fabric_mac tx;
	struct node b;
	uint8_t key[FABRIC_KEY_LEN], msg[64], frame[128];
	int fd;

	(void)state;
	node_up(&b, 112);
	fd = raw_authenticate_hellos(&b, 113, &mine, &theirs);
	assert_int_equal(fabric_auth_session_key(net_secret, NET_SECRET_LEN, &mine, &theirs, key), 0);
	assert_int_equal(fabric_mac_init(&tx, key), 0);
	fabric_msg_writer_init(&w, msg, sizeof(msg), FABRIC_MSG_TEST);
	fabric_msg_put_u64(&w, FIELD_SEQ, 0);
	fabric_frame_header_write(frame, FABRIC_PROTOCOL_VERSION, FABRIC_KIND_MSG, (uint32_t)w.len);
	memcpy(frame + FABRIC_FRAME_HEADER, msg, w.len);
	assert_int_equal(fabric_mac_compute(&tx, frame, msg, w.len, frame + FABRIC_FRAME_HEADER + w.len), 0);
	fabric_mac_fini(&tx);
	/* the genuine frame is taken */
	raw_send(fd, frame, FABRIC_FRAME_HEADER + w.len + FABRIC_MAC_LEN);
	WAIT_FOR(received(&b) == 1);
	/* the same bytes again: sequence 1 expected, the MAC was for 0 */
	raw_send(fd, frame, FABRIC_FRAME_HEADER + w.len + FABRIC_MAC_LEN);
	assert_true(raw_closed_by_peer(fd));
	close(fd);
	WAIT_FOR(stats(&b).refused[FABRIC_REFUSE_MAC] == 1);
	assert_int_equal(received(&b), 1);
	node_stop(&b);
}

static void
test_fabric_reconnects_after_the_peer_restarts(void **state)
{
	struct node a, b;
	struct node_opts ob = { 0 };

	(void)state;
	node_up(&a, 71);
	node_up(&b, 72);
	ob.port = fabric_port(b.f);
	dial(&a, &b);
	WAIT_FOR(connected_to(&a, 72));
	node_stop(&b);
	WAIT_FOR(!connected_to(&a, 72));
	/* reported down once the grace period (for crossed connections) is over */
	WAIT_FOR(DOWNS(&a) == 1);
	assert_int_equal(stats(&a).peers_connected, 0);
	assert_int_equal(node_start(&b, 72, &ob), 0);
	WAIT_FOR(connected_to(&a, 72) && connected_to(&b, 71));
	assert_int_equal(UPS(&a), 2);
	send_many(&a, 72, 0, 10, 8);
	WAIT_FOR(received(&b) == 10);
	assert_int_equal(stats(&a).connects, 2);
	node_stop(&a);
	node_stop(&b);
}

/*
 * Messages queued for a node while it has no connection are dropped when
 * it is reported down (send_queue_dropped), never delivered on a later
 * connection: their senders were told it was down (an rpc caller gives up
 * with -EHOSTDOWN and its operation may run elsewhere meanwhile).  Before,
 * they went out when it was reachable again: in the fault-injection test a
 * delete proxied as its node was isolated ran there 2.3 s later, at the
 * heal, after a write of the name made meanwhile.
 */
static void
test_fabric_queue_of_a_node_reported_down_is_dropped(void **state)
{
	struct node a, b;
	struct node_opts ob = { 0 };

	(void)state;
	node_up(&a, 81);
	node_up(&b, 82);
	ob.port = fabric_port(b.f);
	dial(&a, &b);
	WAIT_FOR(connected_to(&a, 82));
	node_stop(&b);
	WAIT_FOR(!connected_to(&a, 82));
	/* within the grace period: queued, waiting for a connection */
	assert_int_equal(DOWNS(&a), 0);
	send_many(&a, 82, 100, 5, 8);
	WAIT_FOR(DOWNS(&a) == 1);
	assert_int_equal(node_start(&b, 82, &ob), 0);
	WAIT_FOR(connected_to(&a, 82) && connected_to(&b, 81));
	send_many(&a, 82, 0, 10, 8);
	WAIT_FOR(received(&b) >= 10);
	net_sleep_ms(100);
	/* only the 10 sent on the new connection, in order */
	assert_int_equal(received(&b), 10);
	pthread_mutex_lock(&b.lock);
	assert_int_equal(b.out_of_order, 0);
	pthread_mutex_unlock(&b.lock);
	assert_int_equal(stats(&a).send_queue_dropped, 5);
	node_stop(&a);
	node_stop(&b);
}

static void
test_fabric_two_nodes_dialing_each_other_keep_one_connection(void **state)
{
	struct node a, b;

	(void)state;
	node_up(&a, 81);
	node_up(&b, 82);
	dial(&a, &b);
	dial(&b, &a);
	WAIT_FOR(connected_to(&a, 82) && connected_to(&b, 81));
	net_sleep_ms(300); /* several backoff rounds: nothing flaps */
	send_many(&a, 82, 0, 1000, 8);
	send_many(&b, 81, 0, 1000, 8);
	WAIT_FOR(received(&a) == 1000 && received(&b) == 1000);
	assert_int_equal(a.out_of_order + b.out_of_order, 0);
	assert_int_equal(UPS(&a), 1);
	assert_int_equal(UPS(&b), 1);
	assert_int_equal(DOWNS(&a) + DOWNS(&b), 0);
	node_stop(&a);
	node_stop(&b);
}

static void
test_fabric_duplicate_node_id_is_refused(void **state)
{
	struct node a, b, c, d;

	(void)state;
	node_up(&a, 91);
	node_up(&b, 92);
	dial(&a, &b);
	WAIT_FOR(connected_to(&b, 91));
	/* c claims a's id from another address: b refuses it and tells it */
	node_up(&c, 91);
	dial(&c, &b);
	WAIT_FOR(stats(&b).refused[FABRIC_REFUSE_DUPLICATE_NODE] >= 1 && stats(&c).refused_by_peer >= 1);
	/* d has b's own id: both refuse */
	node_up(&d, 92);
	dial(&d, &b);
	WAIT_FOR(stats(&b).refused[FABRIC_REFUSE_DUPLICATE_NODE] >= 2 &&
	    stats(&d).refused[FABRIC_REFUSE_DUPLICATE_NODE] >= 1);
	/* a's connection was never disturbed */
	assert_true(connected_to(&b, 91));
	assert_int_equal(DOWNS(&a), 0);
	send_many(&a, 92, 0, 10, 8);
	WAIT_FOR(received(&b) == 10);
	node_stop(&c);
	node_stop(&d);
	node_stop(&a);
	node_stop(&b);
}

static void
test_fabric_listen_port_in_use_is_refused(void **state)
{
	struct node a, b;
	struct node_opts ob = { 0 };

	(void)state;
	node_up(&a, 101);
	ob.port = fabric_port(a.f);
	assert_int_equal(node_start(&b, 102, &ob), -EADDRINUSE);
	pthread_mutex_destroy(&b.lock);
	node_stop(&a);
}

/*
 * A message to a connected peer whose queue is empty is written by the
 * sending thread itself: the sender's fabric thread is not woken per
 * message (before, every send kicked it through an eventfd: one wake, one
 * thread hop and two context switches per message on the way out).
 */
static void
no_wake_check(const struct node_opts *o, uint64_t ida, uint64_t idb)
{
	long before[256], after[256], tid = 0;
	unsigned nb, na, i, j;
	uint64_t s0, woke;
	struct node a, b;

	nb = thread_ids(before, 256);
	assert_int_equal(node_start(&a, ida, o), 0);
	na = thread_ids(after, 256);
	for (i = 0; i < na; i++) {
		for (j = 0; j < nb && before[j] != after[i]; j++)
			;
		if (j == nb) {
			assert_int_equal(tid, 0); /* exactly one new thread: a's */
			tid = after[i];
		}
	}
	assert_true(tid != 0);
	assert_int_equal(node_start(&b, idb, o), 0);
	dial(&a, &b);
	WAIT_FOR(connected_to(&a, idb) && connected_to(&b, ida));
	net_sleep_ms(50); /* the handshake's last writes and wakes are over */
	s0 = thread_switches(tid);
	for (i = 0; i < 200; i++) {
		uint64_t t0 = net_now_ms();

		send_many(&a, idb, i, 1, 100);
		/* one at a time: each send finds the queue empty */
		while (received(&b) < i + 1) {
			struct timespec ts = { 0, 50000 };

			assert_true(net_now_ms() - t0 < WAIT_MS);
			nanosleep(&ts, NULL);
		}
	}
	woke = thread_switches(tid) - s0;
	print_message("a's fabric thread: %llu context switches for 200 messages sent%s\n",
	    (unsigned long long)woke, o->tls_cert != NULL ? " over TLS" : "");
	assert_true(woke < 20);
	assert_int_equal(b.out_of_order, 0);
	node_stop(&a);
	node_stop(&b);
}

static void
test_fabric_send_to_an_idle_peer_does_not_wake_the_fabric_thread(void **state)
{
	static const struct node_opts none;

	(void)state;
	no_wake_check(&none, 71, 72);
}

/* ---- TLS ------------------------------------------------------------------------- */

/* Certificates made at test time by the openssl command, in a temp dir:
 * ca (CA), node (signed by ca), ca2 and node2 (signed by ca2). */
static char tls_dir[64];

static void
tls_path(char *buf, size_t sz, const char *name)
{
	snprintf(buf, sz, "%s/%s", tls_dir, name);
}

static void
tls_certs(void)
{
	char cmd[2048];

	if (tls_dir[0] != '\0')
		return;
	if (system("openssl version >/dev/null 2>&1") != 0)
		fail_msg("the openssl command is missing (scripts/install-deps.sh installs it)");
	snprintf(tls_dir, sizeof(tls_dir), "/tmp/recfs-test-tls.XXXXXX");
	assert_non_null(mkdtemp(tls_dir));
	snprintf(cmd, sizeof(cmd),
	    "cd %s && for ca in ca ca2; do "
	    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $ca.key "
	    "-out $ca.crt -days 2 -subj /CN=recfs-test-$ca >/dev/null 2>&1 || exit 1; done; "
	    "for n in node:ca node2:ca2; do k=${n%%:*}; c=${n#*:}; "
	    "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $k.key -out $k.csr "
	    "-subj /CN=recfs-test-$k >/dev/null 2>&1 && "
	    "openssl x509 -req -in $k.csr -CA $c.crt -CAkey $c.key -CAcreateserial -out $k.crt -days 2 "
	    ">/dev/null 2>&1 || exit 1; done; echo not a certificate > junk.pem",
	    tls_dir);
	if (system(cmd) != 0)
		fail_msg("openssl could not make the test certificates in %s", tls_dir);
}

static void
tls_cleanup(void)
{
	char cmd[128];

	if (tls_dir[0] == '\0')
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tls_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tls_dir);
}

/* Options of a TLS node: its certificate/key (node or node2) and CA. */
struct tls_files {
	char cert[96], key[96], ca[96];
};

static struct node_opts
tls_opts(struct tls_files *t, const char *node, const char *ca)
{
	struct node_opts o = { 0 };
	char n[32];

	tls_certs();
	snprintf(n, sizeof(n), "%s.crt", node);
	tls_path(t->cert, sizeof(t->cert), n);
	snprintf(n, sizeof(n), "%s.key", node);
	tls_path(t->key, sizeof(t->key), n);
	snprintf(n, sizeof(n), "%s.crt", ca);
	tls_path(t->ca, sizeof(t->ca), n);
	o.tls_cert = t->cert;
	o.tls_key = t->key;
	o.tls_ca = t->ca;
	return o;
}

/* Two nodes with certificates of one CA: messages both ways, in order,
 * and nothing refused. */
/*
 * Messages whose last field is sent by reference (the rpc's bodies): from
 * the caller's buffer in one sendmsg, what the socket does not take copied
 * for later (6 MiB is more than a loopback socket takes at once), queued
 * behind others when the connection is busy; each arrives whole, in order,
 * with its MAC verified, and the caller's buffer may be reused at once.
 */
static void
test_fabric_last_field_by_reference_arrives_whole_and_in_order(void **state)
{
	static const size_t sizes[] = { 1, 1000, 60000, 131072, 6u << 20, 16, 200000, 3u << 20, 70000,
		5 };
	const unsigned k = sizeof(sizes) / sizeof(sizes[0]);
	struct node a, b;
	uint64_t bytes = 0;

	(void)state;
	node_up(&a, 131);
	node_up(&b, 132);
	dial(&a, &b);
	WAIT_FOR(connected_to(&a, 132) && connected_to(&b, 131));
	for (unsigned round = 0; round < 3; round++) {
		/* by reference, copied, then by reference in two pieces behind
		 * many small ones */
		bytes += send_patterned(&a, 132, round * 3000, sizes, k, 1);
		bytes += send_patterned(&a, 132, round * 3000 + k, sizes, k, 0);
		send_many(&a, 132, round * 3000 + 2 * k, 2000, 100);
		bytes += send_patterned(&a, 132, round * 3000 + 2 * k + 2000, sizes, k, round == 1 ? 1 : 2);
		send_many(&a, 132, round * 3000 + 3 * k + 2000, 1000 - 3 * k, 10);
	}
	WAIT_FOR(received(&b) == 9000);
	assert_int_equal(b.out_of_order, 0);
	assert_int_equal(b.bad_pattern, 0);
	assert_int_equal(b.pattern_bytes, bytes);
	assert_int_equal(stats(&b).msgs_received, 9000);
	for (unsigned r = 0; r < FABRIC_REFUSE_COUNT; r++)
		assert_int_equal(stats(&a).refused[r] + stats(&b).refused[r], 0);
	node_stop(&a);
	node_stop(&b);
}

static void
test_fabric_tls_nodes_exchange_messages(void **state)
{
	struct tls_files ta, tb;
	struct node_opts oa = tls_opts(&ta, "node", "ca"), ob = tls_opts(&tb, "node", "ca");
	struct node a, b;

	(void)state;
	assert_int_equal(node_start(&a, 121, &oa), 0);
	assert_int_equal(node_start(&b, 122, &ob), 0);
	dial(&a, &b);
	WAIT_FOR(connected_to(&a, 122) && connected_to(&b, 121));
	send_many(&a, 122, 0, 300, 100);
	send_many(&b, 121, 0, 300, 20000);
	{
		/* a last field by reference is framed (copied) into TLS records */
		static const size_t sizes[] = { 1, 131072, 3u << 20, 700 };

		send_patterned(&b, 121, 300, sizes, 2, 1);
		send_patterned(&b, 121, 302, sizes + 2, 2, 2);
	}
	WAIT_FOR(received(&a) == 304 && received(&b) == 300);
	assert_int_equal(a.bad_pattern, 0);
	assert_int_equal(a.pattern_bytes, 1 + 131072 + (3u << 20) + 700);
	assert_int_equal(a.out_of_order + b.out_of_order, 0);
	assert_int_equal(stats(&a).refused[FABRIC_REFUSE_TLS], 0);
	assert_int_equal(stats(&b).refused[FABRIC_REFUSE_TLS], 0);
	assert_int_equal(UPS(&a), 1);
	node_stop(&a);
	node_stop(&b);
	/* the sender writes through TLS itself too: no wake-up per message */
	no_wake_check(&oa, 127, 128);
}

/*
 * A plaintext node dialing a TLS one, a TLS node dialing a plaintext one,
 * and a node whose certificate comes from another CA: each refused and
 * counted as "tls" on the TLS side (the plaintext side sees a malformed
 * frame); no connection comes up.
 */
static void
test_fabric_tls_refuses_plaintext_and_another_ca(void **state)
{
	struct tls_files tb, tw;
	struct node_opts ob = tls_opts(&tb, "node", "ca"), ow = tls_opts(&tw, "node2", "ca2");
	static const struct node_opts plain;
	struct node b, p, w;
	uint64_t r;

	(void)state;
	assert_int_equal(node_start(&b, 123, &ob), 0);
	assert_int_equal(node_start(&p, 124, &plain), 0);
	assert_int_equal(node_start(&w, 125, &ow), 0);
	/* plaintext -> TLS */
	dial(&p, &b);
	WAIT_FOR(stats(&b).refused[FABRIC_REFUSE_TLS] >= 1);
	/* TLS -> plaintext */
	r = stats(&b).refused[FABRIC_REFUSE_TLS];
	dial(&b, &p);
	WAIT_FOR(stats(&b).refused[FABRIC_REFUSE_TLS] > r && stats(&p).refused[FABRIC_REFUSE_MALFORMED] >= 1);
	/* another CA, both ways: each side refuses the other's certificate */
	r = stats(&b).refused[FABRIC_REFUSE_TLS];
	dial(&w, &b);
	WAIT_FOR(stats(&b).refused[FABRIC_REFUSE_TLS] > r && stats(&w).refused[FABRIC_REFUSE_TLS] >= 1);
	net_sleep_ms(300); /* a retry or two */
	assert_false(connected_to(&b, 124) || connected_to(&p, 123));
	assert_false(connected_to(&b, 125) || connected_to(&w, 123));
	assert_int_equal(stats(&b).peers_connected, 0);
	assert_int_equal(received(&b) + received(&p) + received(&w), 0);
	print_message("refused as tls: b %llu, w %llu; p malformed %llu\n",
	    (unsigned long long)stats(&b).refused[FABRIC_REFUSE_TLS],
	    (unsigned long long)stats(&w).refused[FABRIC_REFUSE_TLS],
	    (unsigned long long)stats(&p).refused[FABRIC_REFUSE_MALFORMED]);
	node_stop(&b);
	node_stop(&p);
	node_stop(&w);
}

/* Missing, unreadable or wrong TLS files: the fabric is refused
 * (RECFS_ECONFIG), nothing listens. */
static void
test_fabric_tls_bad_files_are_refused(void **state)
{
	struct tls_files t;
	struct node_opts o;
	char missing[96], junk[96], key2[96];
	struct node n;

	(void)state;
	o = tls_opts(&t, "node", "ca");
	tls_path(missing, sizeof(missing), "no-such.pem");
	tls_path(junk, sizeof(junk), "junk.pem");
	tls_path(key2, sizeof(key2), "node2.key");
	o.tls_cert = missing;
	assert_int_equal(node_start(&n, 126, &o), RECFS_ECONFIG);
	pthread_mutex_destroy(&n.lock);
	o = tls_opts(&t, "node", "ca");
	o.tls_key = NULL;
	assert_int_equal(node_start(&n, 126, &o), RECFS_ECONFIG);
	pthread_mutex_destroy(&n.lock);
	o = tls_opts(&t, "node", "ca");
	o.tls_key = key2; /* another certificate's key */
	assert_int_equal(node_start(&n, 126, &o), RECFS_ECONFIG);
	pthread_mutex_destroy(&n.lock);
	o = tls_opts(&t, "node", "ca");
	o.tls_ca = junk;
	assert_int_equal(node_start(&n, 126, &o), RECFS_ECONFIG);
	pthread_mutex_destroy(&n.lock);
	o = tls_opts(&t, "node", "ca");
	o.tls_cert = junk;
	assert_int_equal(node_start(&n, 126, &o), RECFS_ECONFIG);
	pthread_mutex_destroy(&n.lock);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fabric_msg_fields_roundtrip_and_bad_input_is_refused),
		cmocka_unit_test(test_fabric_msg_field_by_reference_is_the_last_and_decodes_as_one_message),
		cmocka_unit_test(test_fabric_last_field_by_reference_arrives_whole_and_in_order),
		cmocka_unit_test(test_fabric_secret_file_must_be_private_regular_and_long_enough),
		cmocka_unit_test(test_fabric_messages_flow_both_ways_in_order),
		cmocka_unit_test(test_fabric_wrong_secret_is_refused_on_both_sides),
		cmocka_unit_test(test_fabric_other_cluster_name_is_refused),
		cmocka_unit_test(test_fabric_other_protocol_version_is_refused),
		cmocka_unit_test(test_fabric_garbage_truncated_oversized_and_silent_connections_are_dropped_and_counted),
		cmocka_unit_test(test_fabric_peer_that_stops_reading_gets_back_pressure_others_still_served),
		cmocka_unit_test(test_fabric_frame_mac_is_gmac_of_header_and_message_under_seq_nonce),
		cmocka_unit_test(test_fabric_replayed_frame_fails_its_mac_and_is_dropped),
		cmocka_unit_test(test_fabric_reconnects_after_the_peer_restarts),
		cmocka_unit_test(test_fabric_queue_of_a_node_reported_down_is_dropped),
		cmocka_unit_test(test_fabric_two_nodes_dialing_each_other_keep_one_connection),
		cmocka_unit_test(test_fabric_duplicate_node_id_is_refused),
		cmocka_unit_test(test_fabric_listen_port_in_use_is_refused),
		cmocka_unit_test(test_fabric_ack_timeout_spares_a_slow_reader_drops_a_stopped_one),
		cmocka_unit_test(test_fabric_send_to_an_idle_peer_does_not_wake_the_fabric_thread),
		cmocka_unit_test(test_fabric_tls_nodes_exchange_messages),
		cmocka_unit_test(test_fabric_tls_refuses_plaintext_and_another_ca),
		cmocka_unit_test(test_fabric_tls_bad_files_are_refused),
	};

	int rc;

	net_test_init(argc, argv);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	tls_cleanup();
	return rc;
}
