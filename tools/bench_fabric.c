/*
 * bench_fabric.c - the fabric benchmark of recfs-bench (docs/benchmarks.md):
 * two fabric instances in this process on 127.0.0.1, authenticated as two
 * nodes of one cluster, against a plain loopback TCP connection measured
 * in the same run.
 *
 *   round trip: a 64-byte message, echoed by the other node's handler and
 *               back (one in flight; the rate is 1 / the round trip);
 *   stream:     64 KiB messages sent as fast as the send queue takes them
 *               (-ENOBUFS: wait for the receiver to catch up), payload
 *               MB/s until the receiver has them all;
 *   TLS round trip: the round trip again between two fabrics with
 *               network.tls (certificates made by the openssl command in
 *               the run's temp dir).
 * The TCP baseline does the same with blocking sockets (TCP_NODELAY for
 * the round trip; an echo thread / a reading thread), so the ratios show
 * what the fabric's framing, MACs, queues and event thread cost over the
 * kernel's loopback.  The fabric and TCP phases alternate in SLICES
 * slices each (fabric, TCP, fabric, ...), so that on a shared machine a
 * burst of other load falls on both about alike.  Informational rows: no
 * target (the issue asks for the figures, side by side).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/atomic.h"
#include "base/log.h"
#include "fabric/fabric.h"
#include "bench.h"

#define RTT_BYTES 64
#define STREAM_BYTES (64 * 1024)
#define FIELD_PAYLOAD 1          /* FABRIC_MSG_TEST: bytes */
#define CONNECT_WAIT_NS (5ULL * 1000000000ULL)
#define DRAIN_WAIT_NS (10ULL * 1000000000ULL)
#define SLICES 10                /* alternations of each fabric/TCP pair of phases */

struct fb_node {
	struct fabric *f;
	uint64_t id;
	struct fb_pair *pair;
};

struct fb_pair {
	struct fb_node a, b;
	bool echo;                  /* b echoes what it receives (round trip) */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t pongs;             /* a: echoes received (under lock) */
	uint64_t b_msgs, b_bytes;   /* b: received (atomics) */
	unsigned ups;               /* peer-up callbacks (atomic) */
	uint8_t echo_buf[RTT_BYTES + 64];
};

static void
on_peer(void *arg, uint64_t node_id, bool up)
{
	struct fb_node *n = arg;

	(void)node_id;
	if (up)
		atomic_inc(&n->pair->ups);
}

/* a's handler: an echo came back */
static void
on_a(void *arg, uint64_t from, const struct fabric_msg *m)
{
	struct fb_pair *p = arg;

	(void)from;
	(void)m;
	pthread_mutex_lock(&p->lock);
	p->pongs++;
	pthread_mutex_unlock(&p->lock);
	/* after the unlock: the woken waiter does not block on the mutex
	 * (a second context switch per round trip) */
	pthread_cond_signal(&p->cond);
}

/* b's handler: count; echo in the round-trip phase (on the fabric thread) */
static void
on_b(void *arg, uint64_t from, const struct fabric_msg *m)
{
	struct fb_pair *p = arg;
	const uint8_t *data;
	size_t len = 0;

	if (fabric_msg_get_bytes(m, FIELD_PAYLOAD, &data, &len) != 0)
		return;
	atomic_inc(&p->b_msgs);
	atomic_add(&p->b_bytes, len);
	if (atomic_load_acquire(&p->echo)) {
		struct fabric_msg_writer w;

		fabric_msg_writer_init(&w, p->echo_buf, sizeof(p->echo_buf), FABRIC_MSG_TEST);
		fabric_msg_put_bytes(&w, FIELD_PAYLOAD, data, len);
		(void)fabric_send(p->b.f, from, &w);
	}
}

/* TLS files of a pair (NULL: plaintext). */
struct fb_tls {
	char cert[PATH_MAX + 16], key[PATH_MAX + 16], ca[PATH_MAX + 16];
};

static int
fb_node_create(struct fb_pair *p, struct fb_node *n, uint64_t id, fabric_handler_fn fn,
    const struct fb_tls *tls)
{
	static const uint8_t secret[] = "recfs-bench fabric secret 0123456789";
	struct fabric_config c = {
		.address = "127.0.0.1", .port = 0, .node_id = id, .cluster_name = "recfs-bench",
		.secret = secret, .secret_len = sizeof(secret) - 1, .on_peer = on_peer, .arg = n,
	};
	int rc;

	if (tls != NULL) {
		c.tls_cert_file = tls->cert;
		c.tls_key_file = tls->key;
		c.tls_ca_file = tls->ca;
	}
	n->id = id;
	n->pair = p;
	rc = fabric_create(&c, &n->f);
	if (rc != 0)
		return rc;
	rc = fabric_handler_set(n->f, FABRIC_MSG_TEST, fn, p);
	if (rc == 0)
		rc = fabric_start(n->f);
	return rc;
}

static void
fb_pair_destroy(struct fb_pair *p)
{
	if (p->a.f != NULL)
		fabric_destroy(p->a.f);
	if (p->b.f != NULL)
		fabric_destroy(p->b.f);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p);
}

/* Two connected fabrics, or NULL (*err set). */
static struct fb_pair *
fb_pair_create(int *err, const struct fb_tls *tls)
{
	struct fb_pair *p = calloc(1, sizeof(*p));
	char addr[64];
	uint64_t t0;
	int rc;

	if (p == NULL) {
		*err = -ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	rc = fb_node_create(p, &p->a, 0xa1, on_a, tls);
	if (rc == 0)
		rc = fb_node_create(p, &p->b, 0xb2, on_b, tls);
	if (rc == 0) {
		snprintf(addr, sizeof(addr), "127.0.0.1:%u", fabric_port(p->b.f));
		rc = fabric_peer_add(p->a.f, addr);
	}
	/* both sides report the other up once authenticated */
	t0 = bench_now_ns();
	while (rc == 0 && atomic_load_acquire(&p->ups) < 2) {
		if (bench_now_ns() - t0 > CONNECT_WAIT_NS || bench_interrupted)
			rc = -ETIMEDOUT;
		else
			usleep(1000);
	}
	if (rc != 0) {
		*err = rc;
		fb_pair_destroy(p);
		return NULL;
	}
	return p;
}

static int
fb_send(struct fabric *f, uint64_t to, const uint8_t *payload, size_t len, uint8_t *buf, size_t cap)
{
	struct fabric_msg_writer w;

	fabric_msg_writer_init(&w, buf, cap, FABRIC_MSG_TEST);
	fabric_msg_put_bytes(&w, FIELD_PAYLOAD, payload, len);
	return fabric_send(f, to, &w);
}

/* ---- fabric ----------------------------------------------------------------- */

static int
fabric_rtt(struct fb_pair *p, double duration_s, struct bench_worker *out)
{
	uint8_t payload[RTT_BYTES], buf[RTT_BYTES + 64];
	uint64_t end, sent = 0;
	int rc = 0;

	uint64_t start;

	memset(payload, 'r', sizeof(payload));
	pthread_mutex_lock(&p->lock);
	sent = p->pongs; /* echoes of earlier slices */
	pthread_mutex_unlock(&p->lock);
	atomic_store_release(&p->echo, true);
	start = bench_now_ns();
	end = start + (uint64_t)(duration_s * 1e9);
	while (bench_now_ns() < end && !bench_interrupted) {
		uint64_t t = bench_now_ns();
		struct timespec ts;

		rc = fb_send(p->a.f, p->b.id, payload, sizeof(payload), buf, sizeof(buf));
		if (rc != 0)
			break;
		sent++;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 5;
		pthread_mutex_lock(&p->lock);
		while (p->pongs < sent && rc == 0)
			if (pthread_cond_timedwait(&p->cond, &p->lock, &ts) == ETIMEDOUT)
				rc = -ETIMEDOUT;
		pthread_mutex_unlock(&p->lock);
		if (rc != 0)
			break;
		bench_hist_add(&out->hist, bench_now_ns() - t);
		out->ops++;
		out->bytes += 2 * sizeof(payload);
	}
	out->end_ns += bench_now_ns() - start;
	atomic_store_release(&p->echo, false);
	return rc;
}

static int
fabric_stream(struct fb_pair *p, double duration_s, struct bench_worker *out)
{
	uint8_t *payload = malloc(STREAM_BYTES), *buf = malloc(STREAM_BYTES + 64);
	uint64_t end, sent = 0, base_msgs = atomic_load_acquire(&p->b_msgs), t0, start;
	int rc = 0;

	if (payload == NULL || buf == NULL) {
		free(payload);
		free(buf);
		return -ENOMEM;
	}
	memset(payload, 's', STREAM_BYTES);
	start = bench_now_ns();
	end = start + (uint64_t)(duration_s * 1e9);
	while (bench_now_ns() < end && !bench_interrupted) {
		rc = fb_send(p->a.f, p->b.id, payload, STREAM_BYTES, buf, STREAM_BYTES + 64);
		if (rc == -ENOBUFS) {
			/* back-pressure: the queue is at its bound; let it drain */
			usleep(50);
			rc = 0;
			continue;
		}
		if (rc != 0)
			break;
		sent++;
	}
	/* done when the receiver has every message */
	t0 = bench_now_ns();
	while (rc == 0 && atomic_load_acquire(&p->b_msgs) - base_msgs < sent) {
		if (bench_now_ns() - t0 > DRAIN_WAIT_NS || bench_interrupted)
			rc = -ETIMEDOUT;
		else
			usleep(100);
	}
	out->end_ns += bench_now_ns() - start;
	out->ops += sent;
	out->bytes += sent * STREAM_BYTES;
	free(payload);
	free(buf);
	return rc;
}

/* ---- plain TCP ------------------------------------------------------------------ */

struct tcp_side {
	int fd;
	bool echo;
	uint64_t bytes;             /* atomic: read by the slice's drain wait */
	int err;
};

static int
read_full(int fd, void *buf, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = read(fd, (char *)buf + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 ? -EPIPE : -errno;
		off += (size_t)n;
	}
	return 0;
}

static int
write_full(int fd, const void *buf, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = send(fd, (const char *)buf + off, len - off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		off += (size_t)n;
	}
	return 0;
}

struct tcp_link {
	int client;
	struct tcp_side srv;
	pthread_t th;
	bool running;
	uint8_t *buf;
};

/* The server side: echo RTT_BYTES blocks, or read everything until EOF. */
static void *
tcp_server(void *arg)
{
	struct tcp_side *s = arg;
	uint8_t *buf = malloc(STREAM_BYTES);

	if (buf == NULL) {
		s->err = -ENOMEM;
		return NULL;
	}
	for (;;) {
		if (s->echo) {
			if (read_full(s->fd, buf, RTT_BYTES) != 0 || write_full(s->fd, buf, RTT_BYTES) != 0)
				break;
			atomic_add(&s->bytes, RTT_BYTES);
		} else {
			ssize_t n = read(s->fd, buf, STREAM_BYTES);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			atomic_add(&s->bytes, (uint64_t)n);
		}
	}
	free(buf);
	return NULL;
}

/* A connected pair of sockets on 127.0.0.1 (client, server). */
static int
tcp_pair(int *client, int *server)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	int l, c = -1, s = -1, one = 1, rc = 0;

	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0)
		return -errno;
	if (bind(l, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(l, 1) != 0 ||
	    getsockname(l, (struct sockaddr *)&sa, &sl) != 0)
		rc = -errno;
	if (rc == 0 && (c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		rc = -errno;
	if (rc == 0 && connect(c, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		rc = -errno;
	if (rc == 0 && (s = accept4(l, NULL, NULL, SOCK_CLOEXEC)) < 0)
		rc = -errno;
	close(l);
	if (rc != 0) {
		if (c >= 0)
			close(c);
		return rc;
	}
	setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	*client = c;
	*server = s;
	return 0;
}

/* Closes the client's side; the server reads to EOF and stops. 0 or the
 * server's error. */
static int
tcp_link_close(struct tcp_link *l)
{
	int rc = 0;

	if (l->running) {
		shutdown(l->client, SHUT_WR);
		pthread_join(l->th, NULL);
		rc = l->srv.err;
	}
	if (l->client >= 0)
		close(l->client);
	if (l->srv.fd >= 0)
		close(l->srv.fd);
	free(l->buf);
	memset(l, 0, sizeof(*l));
	l->client = l->srv.fd = -1;
	return rc;
}

static int
tcp_link_open(struct tcp_link *l, bool rtt)
{
	int rc;

	memset(l, 0, sizeof(*l));
	l->client = l->srv.fd = -1;
	l->srv.echo = rtt;
	l->buf = malloc(STREAM_BYTES);
	if (l->buf == NULL)
		return -ENOMEM;
	memset(l->buf, 't', STREAM_BYTES);
	rc = tcp_pair(&l->client, &l->srv.fd);
	if (rc == 0)
		rc = -pthread_create(&l->th, NULL, tcp_server, &l->srv);
	l->running = rc == 0;
	if (rc != 0)
		tcp_link_close(l);
	return rc;
}

/* One slice of duration_s on an open link, added to out; a stream slice
 * ends when the reader has read every byte written. */
static int
tcp_slice(struct tcp_link *l, double duration_s, struct bench_worker *out)
{
	uint64_t start = bench_now_ns(), end = start + (uint64_t)(duration_s * 1e9), t0;
	uint64_t written = 0, base = atomic_load_acquire(&l->srv.bytes);
	int rc = 0;

	while (rc == 0 && bench_now_ns() < end && !bench_interrupted) {
		uint64_t t = bench_now_ns();

		if (l->srv.echo) {
			rc = write_full(l->client, l->buf, RTT_BYTES);
			if (rc == 0)
				rc = read_full(l->client, l->buf, RTT_BYTES);
			if (rc == 0) {
				bench_hist_add(&out->hist, bench_now_ns() - t);
				out->bytes += 2 * RTT_BYTES;
			}
		} else {
			rc = write_full(l->client, l->buf, STREAM_BYTES);
			if (rc == 0) {
				out->bytes += STREAM_BYTES;
				written += STREAM_BYTES;
			}
		}
		out->ops += rc == 0;
	}
	t0 = bench_now_ns();
	while (rc == 0 && !l->srv.echo && atomic_load_acquire(&l->srv.bytes) - base < written) {
		if (bench_now_ns() - t0 > DRAIN_WAIT_NS || bench_interrupted)
			rc = -ETIMEDOUT;
		else
			usleep(100);
	}
	out->end_ns += bench_now_ns() - start;
	if (rc == 0 && l->srv.err != 0)
		rc = l->srv.err;
	return rc;
}

/* The cluster benchmark's baseline (bench.h): plain loopback TCP round
 * trips of RTT_BYTES for duration_s, one in flight, into out. */
int
bench_tcp_rtt(double duration_s, struct bench_worker *out)
{
	struct tcp_link l;
	int rc, rc2;

	rc = tcp_link_open(&l, true);
	if (rc != 0)
		return rc;
	rc = tcp_slice(&l, duration_s, out);
	rc2 = tcp_link_close(&l);
	return rc != 0 ? rc : rc2;
}

/* The migration rate's network peer (bench.h): one plain loopback TCP
 * stream of STREAM_BYTES writes for duration_s, until the reader has every
 * byte, into out (bytes and ops added, the time added to end_ns). */
int
bench_tcp_stream(double duration_s, struct bench_worker *out)
{
	struct tcp_link l;
	int rc, rc2;

	rc = tcp_link_open(&l, false);
	if (rc != 0)
		return rc;
	rc = tcp_slice(&l, duration_s, out);
	rc2 = tcp_link_close(&l);
	return rc != 0 ? rc : rc2;
}

/* ---- rows ------------------------------------------------------------------------- */

static struct bench_row *
fb_row(struct bench_ctx *ctx, const char *id, const char *label, const struct bench_worker *w,
    bool rtt)
{
	struct bench_row *row = bench_row_add(ctx, id, label);
	double s = (double)(w->end_ns - w->start_ns) / 1e9;

	if (row == NULL)
		return NULL;
	row->threads = 1;
	row->ops = w->ops;
	row->seconds = s;
	if (rtt) {
		row->value = s > 0 ? (double)w->ops / s : 0;
		row->unit = "ops/s";
		row->lat = bench_hist_latency(&w->hist);
	} else {
		row->value = s > 0 ? (double)w->bytes / s / 1e6 : 0;
		row->unit = "MB/s";
		row->mb_per_s = row->value;
	}
	return row;
}

static void
ratio_row(struct bench_ctx *ctx, const char *id, const char *label, const struct bench_row *num,
    const struct bench_row *den)
{
	struct bench_row *row;

	if (num == NULL || den == NULL || (row = bench_row_add(ctx, id, label)) == NULL)
		return;
	row->value = den->value > 0 ? num->value / den->value : 0;
	row->unit = "x";
	snprintf(row->note, sizeof(row->note), "%.0f / %.0f %s", num->value, den->value, num->unit);
}

/* A CA and one node certificate it signs, made by the openssl command in
 * the run's temp dir; 0 or -EIO. */
static int
tls_certs(struct bench_ctx *ctx, struct fb_tls *t)
{
	char cmd[4 * PATH_MAX];

	snprintf(cmd, sizeof(cmd),
	    "cd '%s' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
	    "-keyout ca.key -out ca.crt -days 2 -subj /CN=recfs-bench-ca >/dev/null 2>&1 && "
	    "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout node.key "
	    "-out node.csr -subj /CN=recfs-bench-node >/dev/null 2>&1 && "
	    "openssl x509 -req -in node.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out node.crt "
	    "-days 2 >/dev/null 2>&1", ctx->tmp);
	if (system(cmd) != 0)
		return -EIO;
	snprintf(t->cert, sizeof(t->cert), "%s/node.crt", ctx->tmp);
	snprintf(t->key, sizeof(t->key), "%s/node.key", ctx->tmp);
	snprintf(t->ca, sizeof(t->ca), "%s/ca.crt", ctx->tmp);
	return 0;
}

/* num p50 / den p50 of the round trip (lower is better). */
static void
p50_ratio_row(struct bench_ctx *ctx, const char *id, const char *label, const struct bench_row *num,
    const struct bench_row *den)
{
	struct bench_row *row;

	if (num == NULL || den == NULL || !num->lat.valid || !den->lat.valid || den->lat.p50_us <= 0 ||
	    (row = bench_row_add(ctx, id, label)) == NULL)
		return;
	row->value = num->lat.p50_us / den->lat.p50_us;
	row->unit = "x";
	snprintf(row->note, sizeof(row->note), "%.2f / %.2f us", num->lat.p50_us, den->lat.p50_us);
}

int
bench_fabric(struct bench_ctx *ctx, const struct bench_def *def)
{
	struct bench_worker w[5];
	struct bench_row *fr, *tr, *fs, *ts, *lr;
	struct tcp_link rtt_link, stream_link;
	double slice = ctx->opt.duration_s / SLICES;
	struct fb_pair *p, *tp;
	struct fb_tls tls;
	int rc = 0, i;

	(void)def;
	memset(w, 0, sizeof(w));
	/* the fabric logs connections at info level: keep the table readable */
	log_set_level(LOG_LEVEL_WARN);
	bench_progress("fabric: two fabrics on 127.0.0.1 and plain TCP, %.1f s per phase in %d "
	    "alternating slices", ctx->opt.duration_s, SLICES);
	p = fb_pair_create(&rc, NULL);
	if (p == NULL) {
		bench_row_error(ctx, "", "fabric pair on 127.0.0.1", "cannot connect two fabrics: %s",
		    strerror(-rc));
		return rc;
	}
	rc = tls_certs(ctx, &tls);
	tp = rc == 0 ? fb_pair_create(&rc, &tls) : NULL;
	if (tp == NULL) {
		fb_pair_destroy(p);
		bench_row_error(ctx, "tls", "fabric pair over TLS on 127.0.0.1", "%s",
		    rc == -EIO ? "the openssl command could not make certificates" : strerror(-rc));
		return rc;
	}
	rc = tcp_link_open(&rtt_link, true);
	if (rc == 0) {
		rc = tcp_link_open(&stream_link, false);
		if (rc != 0)
			tcp_link_close(&rtt_link);
	}
	if (rc != 0) {
		fb_pair_destroy(p);
		fb_pair_destroy(tp);
		bench_row_error(ctx, "tcp", "plain TCP on 127.0.0.1", "%s", strerror(-rc));
		return rc;
	}
	for (i = 0; i < SLICES && rc == 0; i++) {
		rc = fabric_rtt(p, slice, &w[0]);
		if (rc == 0)
			rc = tcp_slice(&rtt_link, slice, &w[2]);
		if (rc == 0)
			rc = fabric_rtt(tp, slice, &w[4]);
	}
	for (i = 0; i < SLICES && rc == 0; i++) {
		rc = fabric_stream(p, slice, &w[1]);
		if (rc == 0)
			rc = tcp_slice(&stream_link, slice, &w[3]);
	}
	fb_pair_destroy(p);
	fb_pair_destroy(tp);
	i = tcp_link_close(&rtt_link);
	if (rc == 0)
		rc = i;
	i = tcp_link_close(&stream_link);
	if (rc == 0)
		rc = i;
	if (rc != 0) {
		bench_row_error(ctx, "", "fabric / TCP round trip / stream", "%s", strerror(-rc));
		return rc;
	}
	fr = fb_row(ctx, "rtt", "64 B round trip, fabric", &w[0], true);
	tr = fb_row(ctx, "tcp_rtt", "64 B round trip, plain TCP", &w[2], true);
	ratio_row(ctx, "rtt_ratio", "round trips/s fabric/TCP", fr, tr);
	p50_ratio_row(ctx, "rtt_p50_ratio", "round trip p50 fabric/TCP", fr, tr);
	lr = fb_row(ctx, "tls_rtt", "64 B round trip, fabric over TLS", &w[4], true);
	p50_ratio_row(ctx, "tls_rtt_p50_ratio", "round trip p50 TLS fabric/TCP", lr, tr);
	fs = fb_row(ctx, "stream", "64 KiB messages streamed, fabric", &w[1], false);
	ts = fb_row(ctx, "tcp_stream", "64 KiB writes streamed, plain TCP", &w[3], false);
	ratio_row(ctx, "stream_ratio", "stream MB/s fabric/TCP", fs, ts);
	bench_note(ctx, "fabric: two in-process fabrics on 127.0.0.1 (HMAC per frame, one event "
	    "thread each; TLS: TLS 1.3 with certificates, the HMAC frames inside); TCP: a blocking "
	    "socket pair, TCP_NODELAY, echo/reader thread; fabric, TCP (and TLS) alternate in %d "
	    "slices per phase", SLICES);
	return 0;
}
