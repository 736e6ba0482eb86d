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
 *               MB/s until the receiver has them all.
 * The TCP baseline does the same with blocking sockets (TCP_NODELAY for
 * the round trip; an echo thread / a reading thread), so the ratios show
 * what the fabric's framing, MACs, queues and event thread cost over the
 * kernel's loopback.  Informational rows: no target (the issue asks for
 * the figures, side by side).
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

static int
fb_node_create(struct fb_pair *p, struct fb_node *n, uint64_t id, fabric_handler_fn fn)
{
	static const uint8_t secret[] = "recfs-bench fabric secret 0123456789";
	struct fabric_config c = {
		.address = "127.0.0.1", .port = 0, .node_id = id, .cluster_name = "recfs-bench",
		.secret = secret, .secret_len = sizeof(secret) - 1, .on_peer = on_peer, .arg = n,
	};
	int rc;

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
fb_pair_create(int *err)
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
	rc = fb_node_create(p, &p->a, 0xa1, on_a);
	if (rc == 0)
		rc = fb_node_create(p, &p->b, 0xb2, on_b);
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

	memset(payload, 'r', sizeof(payload));
	atomic_store_release(&p->echo, true);
	out->start_ns = bench_now_ns();
	end = out->start_ns + (uint64_t)(duration_s * 1e9);
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
	out->end_ns = bench_now_ns();
	atomic_store_release(&p->echo, false);
	return rc;
}

static int
fabric_stream(struct fb_pair *p, double duration_s, struct bench_worker *out)
{
	uint8_t *payload = malloc(STREAM_BYTES), *buf = malloc(STREAM_BYTES + 64);
	uint64_t end, sent = 0, base_msgs = atomic_load_acquire(&p->b_msgs), t0;
	int rc = 0;

	if (payload == NULL || buf == NULL) {
		free(payload);
		free(buf);
		return -ENOMEM;
	}
	memset(payload, 's', STREAM_BYTES);
	out->start_ns = bench_now_ns();
	end = out->start_ns + (uint64_t)(duration_s * 1e9);
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
	out->end_ns = bench_now_ns();
	out->ops = sent;
	out->bytes = sent * STREAM_BYTES;
	free(payload);
	free(buf);
	return rc;
}

/* ---- plain TCP ------------------------------------------------------------------ */

struct tcp_side {
	int fd;
	bool echo;
	uint64_t bytes;
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
			s->bytes += RTT_BYTES;
		} else {
			ssize_t n = read(s->fd, buf, STREAM_BYTES);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			s->bytes += (uint64_t)n;
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

static int
tcp_run(bool rtt, double duration_s, struct bench_worker *out)
{
	struct tcp_side srv = { .echo = rtt };
	pthread_t th;
	uint8_t *buf = malloc(STREAM_BYTES);
	uint64_t end;
	int c = -1, rc;

	if (buf == NULL)
		return -ENOMEM;
	rc = tcp_pair(&c, &srv.fd);
	if (rc != 0) {
		free(buf);
		return rc;
	}
	rc = -pthread_create(&th, NULL, tcp_server, &srv);
	if (rc != 0) {
		close(c);
		close(srv.fd);
		free(buf);
		return rc;
	}
	memset(buf, 't', STREAM_BYTES);
	out->start_ns = bench_now_ns();
	end = out->start_ns + (uint64_t)(duration_s * 1e9);
	while (rc == 0 && bench_now_ns() < end && !bench_interrupted) {
		uint64_t t = bench_now_ns();

		if (rtt) {
			rc = write_full(c, buf, RTT_BYTES);
			if (rc == 0)
				rc = read_full(c, buf, RTT_BYTES);
			if (rc == 0) {
				bench_hist_add(&out->hist, bench_now_ns() - t);
				out->bytes += 2 * RTT_BYTES;
			}
		} else {
			rc = write_full(c, buf, STREAM_BYTES);
			if (rc == 0)
				out->bytes += STREAM_BYTES;
		}
		out->ops += rc == 0;
	}
	shutdown(c, SHUT_WR);       /* the server reads to EOF, then stops */
	pthread_join(th, NULL);
	out->end_ns = bench_now_ns();
	if (rc == 0 && srv.err != 0)
		rc = srv.err;
	if (rc == 0 && !rtt && srv.bytes != out->bytes)
		rc = -EIO;
	close(c);
	close(srv.fd);
	free(buf);
	return rc;
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

int
bench_fabric(struct bench_ctx *ctx, const struct bench_def *def)
{
	struct bench_worker w[4];
	struct bench_row *fr, *tr, *fs, *ts;
	struct fb_pair *p;
	int rc = 0;

	(void)def;
	memset(w, 0, sizeof(w));
	/* the fabric logs connections at info level: keep the table readable */
	log_set_level(LOG_LEVEL_WARN);
	bench_progress("fabric: two fabrics on 127.0.0.1, %.1f s per phase", ctx->opt.duration_s);
	p = fb_pair_create(&rc);
	if (p == NULL) {
		bench_row_error(ctx, "", "fabric pair on 127.0.0.1", "cannot connect two fabrics: %s",
		    strerror(-rc));
		return rc;
	}
	rc = fabric_rtt(p, ctx->opt.duration_s, &w[0]);
	if (rc == 0)
		rc = fabric_stream(p, ctx->opt.duration_s, &w[1]);
	fb_pair_destroy(p);
	if (rc != 0) {
		bench_row_error(ctx, "", "fabric round trip / stream", "%s", strerror(-rc));
		return rc;
	}
	rc = tcp_run(true, ctx->opt.duration_s, &w[2]);
	if (rc == 0)
		rc = tcp_run(false, ctx->opt.duration_s, &w[3]);
	if (rc != 0) {
		bench_row_error(ctx, "tcp", "plain TCP round trip / stream", "%s", strerror(-rc));
		return rc;
	}
	fr = fb_row(ctx, "rtt", "64 B round trip, fabric", &w[0], true);
	tr = fb_row(ctx, "tcp_rtt", "64 B round trip, plain TCP", &w[2], true);
	ratio_row(ctx, "rtt_ratio", "round trips/s fabric/TCP", fr, tr);
	fs = fb_row(ctx, "stream", "64 KiB messages streamed, fabric", &w[1], false);
	ts = fb_row(ctx, "tcp_stream", "64 KiB writes streamed, plain TCP", &w[3], false);
	ratio_row(ctx, "stream_ratio", "stream MB/s fabric/TCP", fs, ts);
	bench_note(ctx, "fabric: two in-process fabrics on 127.0.0.1 (HMAC per frame, one event "
	    "thread each); TCP: a blocking socket pair, TCP_NODELAY, echo/reader thread");
	return 0;
}
