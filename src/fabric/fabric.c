/*
 * fabric.c - connections, the handshake state machine and the event thread.
 *
 * One thread runs everything that touches a socket but a sender's own
 * write and a borrower's read (Lending, below): an epoll loop over the
 * listener, every connection and an eventfd that fabric_peer_add(),
 * fabric_destroy() and a borrower giving a connection back write.  Sockets are
 * non-blocking and level-triggered; epoll_wait sleeps until a socket is
 * ready, a dialer is added, or the next timer (a reconnect or a handshake
 * deadline) is due: an idle fabric uses no CPU.  Handlers run on this
 * thread (fabric.h), but for the messages a borrower takes.
 *
 * Peers are node ids.  A connection becomes a peer's active connection once
 * it has authenticated.  fabric_send() writes a message itself, from the
 * caller's thread, when nothing waits for that node (its queue and write
 * buffer empty, the thread not writing to it): framed, MACed and sent
 * non-blocking under the peer's lock; what the socket does not take waits
 * in the write buffer for EPOLLOUT.  No wake-up, copy or thread hop per
 * message; a message whose last field is by reference (an rpc body) goes
 * out with one sendmsg from the caller's memory, not even copied into the
 * write buffer (send_direct_tail).  Otherwise the message waits in the peer's send queue (bounded
 * in bytes: fabric_send answers -ENOBUFS at the bound) and the thread
 * frames and writes it when the socket takes it, without holding the
 * peer's lock while it MACs and sends (c->writing keeps senders out of
 * the write buffer meanwhile), so a slow or dead peer only fills its own
 * queue and never stalls a sender.  One order per peer: a sender writes
 * only when nothing is ahead of it.  Two nodes that dial each other end with
 * one connection: of two authenticated connections between the same pair,
 * both sides use the one initiated by the higher node id, and the lower
 * node closes its own (the higher one keeps it open, unused, until then, so
 * the lower never sees its last connection go first).  A second node
 * announcing an id already connected from another listen address is a
 * duplicate and refused (and told so with a REFUSE message).
 *
 * TLS (network.tls): a connection first runs the TLS 1.3 handshake
 * (CONN_TLS), then HELLO/AUTH/MSG frames inside it, unchanged.  OpenSSL
 * does not let two threads use one SSL object at once: once a connection
 * is attached, a sender's SSL_write runs under the peer's lock, the event
 * thread's SSL_read takes that lock too, and its own SSL_write runs while
 * c->writing keeps senders out.  conn_read drains what OpenSSL holds
 * decrypted (epoll cannot see it).
 *
 * Lending (fabric_read_lent): a caller waiting for a node's answer may
 * read that node's active connection itself, so that the answer wakes one
 * thread (the caller, in poll) instead of two (this thread, then the
 * caller).  While lent, EPOLLIN is off for it, the read side (buffer, rx
 * MAC) is the borrower's, and this thread neither reads it nor closes it:
 * a close is deferred (senders move to another connection at once, the
 * borrower's reads end at a shutdown) and finished when it comes back
 * (conns_returned, woken by the eventfd).  The borrower hands on only the
 * messages it was asked to take (rpc answers) and gives the connection
 * back, with what it read, at the first other one, so the rest keeps its
 * order and its handlers run here.  Only plain connections (TLS: one SSL
 * object) that this thread has read as a peer's connection at least once.
 *
 * Locks: f->lock (peers table, dialers) before a peer's lock; a peer's
 * lock is never held while taking f->lock, nor across a handler call.
 *
 * Outgoing connections (fabric_peer_add) are retried with exponential
 * backoff; a dialer whose node is reachable through another connection
 * waits until that one closes.  The ack timeout (fabric_ack_timeout_set,
 * the heartbeat's timeout) is every socket's TCP_USER_TIMEOUT, so a
 * connection that outlived a cut link is closed rather than left in TCP's
 * retransmission back-off, and a node that was connected is dialed at
 * least once per ack timeout (lost_cap_ms), so a healed link is found.
 *
 * Memory per peer: the send queue bound, one write buffer (64 KiB, or one
 * frame if larger) and one receive buffer grown to the largest frame seen
 * (at most FABRIC_MSG_MAX + 24 bytes; 2 KiB before authentication).
 *
 * Rejected: a thread per connection (stalls and memory scale with peers),
 * io_uring (epoll is enough at cluster message rates; one less kernel
 * dependency), Aerospike's several channels and sockets per peer pair (one
 * ordered connection is simpler; bulk traffic can get its own later).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "../base/atomic.h"
#include "../base/clock.h"
#include "../base/error.h"
#include "../base/log.h"
#include "fabric.h"
#include "fabric_i.h"

#define PEERS_MAX 256            /* distinct node ids ever authenticated */
#define PENDING_MAX 64           /* unauthenticated incoming connections */
#define WBUF_SIZE (64 * 1024)    /* write batching */
#define RBUF_HANDSHAKE (FABRIC_FRAME_HEADER + FABRIC_HANDSHAKE_MSG_MAX + FABRIC_MAC_LEN)
#define RBUF_INITIAL (16 * 1024)
#define LOG_MEMO 64              /* remembered (address, reason) log lines */
#define LOG_REPEAT_NS (600ULL * 1000000000ULL) /* the same line again after 10 min */
#define CONNECT_LOG_NS (60ULL * 1000000000ULL) /* a seed still unreachable: once a minute */
#define MS (1000000ULL)
/*
 * A node whose last connection closed is reported down only if no new one
 * authenticates within this: two nodes that dialed each other at once close
 * one of the two connections, and one side may see that close before the
 * other connection reached it; that is not a departure.
 */
#define DOWN_GRACE_MS 500

struct send_item {
	struct send_item *next;
	uint32_t len;
	uint8_t data[];
};

/*
 * A node.  Its lock protects its send queue and the write side (write
 * buffer, tx MAC, EPOLLOUT interest, the socket's sends) of its connections
 * once they are attached to it; conn is written under both f->lock and
 * this lock (in that order), so either one is enough to read it.
 */
struct peer {
	uint64_t node_id;
	char address[64];            /* announced listen ip:port; protected by f->lock */
	pthread_mutex_t lock;
	struct conn *conn;           /* active connection; written by the thread */
	struct send_item *head, *tail; /* protected by lock */
	size_t queued;               /* bytes in the queue; protected by lock */
	uint64_t bytes_sent, bytes_received, msgs_sent, msgs_received; /* atomics */
	uint64_t connects, auth_failures; /* atomics */
	uint64_t down_at_ns;         /* lost its connection: "down" at this time
	                              * unless one comes back first; thread only */
};

struct dialer {
	struct dialer *next;         /* the list is protected by f->lock */
	char address[64];
	struct sockaddr_storage sa;
	socklen_t salen;
	/* the rest: fabric thread only */
	struct conn *conn;
	uint64_t node_id;            /* learnt from its hello; 0 = unknown */
	uint32_t backoff_ms;
	uint64_t due_ns;             /* next attempt; 0 = none */
	bool self;                   /* it reached this very node: never again */
	uint32_t fails;              /* failed connects since the last success */
	uint32_t fails_unlogged;     /* of those, not yet named in a log line */
	uint64_t fail_logged_ns;     /* last "cannot connect" line; 0 = none */
	uint64_t attempt_ns;         /* the last connect attempt started */
};

/* CONN_TLS: the TLS handshake, before HELLO (network.tls only). */
enum conn_state { CONN_CONNECTING, CONN_TLS, CONN_HELLO, CONN_AUTH, CONN_UP, CONN_CLOSED };

/*
 * Fabric thread only, except the write side (wbuf, woff, wlen, tx,
 * want_out, sends on fd) of a connection attached to a peer (peer set):
 * under peer->lock, as senders write to the active one (fabric_send).
 */
struct conn {
	struct conn *next, *prev;
	int fd;
	enum conn_state state;
	bool outgoing;
	bool want_out;               /* EPOLLOUT is in the interest set */
	bool writing;                /* the thread is in conn_flush: it owns wbuf and tx */
	SSL *ssl;                    /* TLS; once attached, used under peer->lock or while writing */
	bool read_wants_write;       /* TLS: SSL_read must be retried when writable */
	struct dialer *dialer;       /* outgoing: its dialer */
	struct peer *peer;           /* once up */
	char remote[64];             /* the socket's peer, ip:port */
	char remote_ip[48];
	uint64_t deadline_ns;        /* to authenticate by */
	struct fabric_hello mine, theirs;
	struct fabric_mac tx, rx;
	bool macs;
	uint8_t *rbuf;
	size_t rcap, rlen;
	uint8_t *wbuf;
	size_t wcap, wlen, woff;
	/* Lending (fabric_read_lent), protected by peer->lock: the read side
	 * (rbuf, rlen, rcap, rx) belongs to the borrowing thread while lent,
	 * to the fabric thread otherwise, which marks reading while it reads
	 * so that nobody borrows meanwhile. */
	bool lent;
	bool reading;
	bool pending;                /* returned with bytes in rbuf, or to be closed */
	bool close_deferred;         /* conn_close while lent: done when returned */
	bool closing;                /* conn_close ran: never lent again */
	bool lendable;               /* the thread finished a read of it as a peer's
	                              * connection (not one that attached it mid-read) */
	int deferred_refusal;
	char deferred_why[96];
};

struct log_memo {
	char ip[48];
	int reason;
	uint64_t last_ns;
	uint64_t suppressed;
};

struct handler {
	fabric_handler_fn fn;
	void *arg;
};

struct fabric {
	uint64_t node_id;
	char cluster_name[64];
	char listen_address[48];
	uint16_t port;
	uint8_t version;
	uint64_t handshake_ns;
	uint32_t ack_timeout_ms;     /* TCP_USER_TIMEOUT of every socket; 0 = TCP's */
	uint8_t secret[FABRIC_SECRET_MAX];
	size_t secret_len;
	size_t queue_max;
	fabric_peer_fn on_peer;
	void *arg;

	int listen_fd, epoll_fd, wake_fd;
	SSL_CTX *tls;                /* NULL: plaintext (frames with MACs only) */
	pthread_t thread;
	bool started;
	int stop;                    /* atomic */

	pthread_mutex_t lock;        /* protects peers, dialer list (peer queues: peer->lock) */
	struct peer *peers[PEERS_MAX];
	unsigned n_peers;
	struct dialer *dialers;
	unsigned n_dialers;

	struct conn *conns;          /* fabric thread only */
	struct conn *zombies;        /* closed during a batch; freed after it */
	uint64_t timer_due_ns;       /* the earliest deadline (UINT64_MAX: none) */
	bool timers_dirty;           /* deadlines may have changed: run timers_run */
	unsigned n_pending_in;
	struct log_memo memo[LOG_MEMO];
	struct handler handlers[FABRIC_MSG_TYPE_MAX];

	struct fabric_stats stats;   /* atomics */
	unsigned n_lent;             /* connections lent; protected by lock */
	bool closing;                /* fabric_destroy: no more lending; protected by lock */
	pthread_cond_t lent_cv;      /* a lent connection was returned */
};

/* epoll tags for the two non-connection fds */
static char tag_listen, tag_wake;

static const char *const refusal_names[FABRIC_REFUSE_COUNT] = {
	[FABRIC_REFUSE_AUTH] = "auth",
	[FABRIC_REFUSE_CLUSTER_NAME] = "cluster_name",
	[FABRIC_REFUSE_VERSION] = "version",
	[FABRIC_REFUSE_MALFORMED] = "malformed",
	[FABRIC_REFUSE_OVERSIZED] = "oversized",
	[FABRIC_REFUSE_MAC] = "mac",
	[FABRIC_REFUSE_DUPLICATE_NODE] = "duplicate_node",
	[FABRIC_REFUSE_TIMEOUT] = "timeout",
	[FABRIC_REFUSE_TOO_MANY] = "too_many",
	[FABRIC_REFUSE_TLS] = "tls",
};

static void conn_close(struct fabric *f, struct conn *c, int refusal, const char *why);
static void conn_flush(struct fabric *f, struct conn *c);
static int conn_frame(struct fabric *f, struct conn *c, uint8_t kind, const uint8_t *msg, size_t len);
static int conn_frame_tail(struct fabric *f, struct conn *c, uint8_t kind,
    const struct fabric_msg_writer *w);
static int wbuf_room(struct conn *c, size_t need);
static void conn_want_out(struct fabric *f, struct conn *c, bool on);
static void conn_read_unless_lent(struct fabric *f, struct conn *c, bool parse_first);
static void *fabric_thread(void *arg);

const char *
fabric_refusal_name(enum fabric_refusal r)
{
	return (unsigned)r < FABRIC_REFUSE_COUNT ? refusal_names[r] : "unknown";
}

/* ---- set-up ----------------------------------------------------------------- */

/* The last OpenSSL error as text (and the queue cleared). */
static const char *
tls_error(char *buf, size_t sz)
{
	unsigned long e = ERR_peek_last_error();

	if (e == 0)
		snprintf(buf, sz, "no reason given");
	else
		ERR_error_string_n(e, buf, sz);
	ERR_clear_error();
	return buf;
}

/* A TLS file must exist and be readable: said with its key and name. */
static int
tls_file_check(const char *key, const char *path)
{
	FILE *fp;

	if (path == NULL || path[0] == '\0') {
		log_error("fabric", "network.tls.%s is not set (certificate, key and ca are all needed)",
		    key);
		return RECFS_ECONFIG;
	}
	fp = fopen(path, "r");
	if (fp == NULL) {
		log_error("fabric", "network.tls.%s %s: %s", key, path, strerror(errno));
		return RECFS_ECONFIG;
	}
	fclose(fp);
	return 0;
}

/* TLS 1.3 only, our certificate and key, peers verified against the CA. */
static int
tls_ctx_create(const struct fabric_config *cfg, SSL_CTX **out)
{
	char why[256];
	SSL_CTX *ctx;
	int rc;

	if ((rc = tls_file_check("certificate", cfg->tls_cert_file)) != 0 ||
	    (rc = tls_file_check("key", cfg->tls_key_file)) != 0 ||
	    (rc = tls_file_check("ca", cfg->tls_ca_file)) != 0)
		return rc;
	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_method());
	if (ctx == NULL || SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
		log_error("fabric", "network.tls: cannot set up TLS 1.3: %s", tls_error(why, sizeof(why)));
		SSL_CTX_free(ctx);
		return -ENOMEM;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert_file) != 1) {
		log_error("fabric", "network.tls.certificate %s: not a usable PEM certificate: %s",
		    cfg->tls_cert_file, tls_error(why, sizeof(why)));
		goto bad;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key_file, SSL_FILETYPE_PEM) != 1) {
		log_error("fabric", "network.tls.key %s: not a usable PEM private key: %s",
		    cfg->tls_key_file, tls_error(why, sizeof(why)));
		goto bad;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		log_error("fabric", "network.tls.key %s does not match network.tls.certificate %s: %s",
		    cfg->tls_key_file, cfg->tls_cert_file, tls_error(why, sizeof(why)));
		goto bad;
	}
	if (SSL_CTX_load_verify_locations(ctx, cfg->tls_ca_file, NULL) != 1) {
		log_error("fabric", "network.tls.ca %s: not a usable PEM CA certificate: %s",
		    cfg->tls_ca_file, tls_error(why, sizeof(why)));
		goto bad;
	}
	/* mutual: a peer without a certificate of our CA fails the handshake */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* no resumption: no tickets after the handshake, nothing cached */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	/* a peer that closes or dies without close_notify is a plain close */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	*out = ctx;
	return 0;
bad:
	SSL_CTX_free(ctx);
	return RECFS_ECONFIG;
}

int
fabric_create(const struct fabric_config *cfg, struct fabric **out)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
	    .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE };
	struct addrinfo *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct epoll_event ev;
	struct fabric *f;
	char port[8];
	int rc, one = 1;

	if (cfg->node_id == 0 || cfg->address == NULL || cfg->cluster_name == NULL ||
	    strlen(cfg->cluster_name) >= sizeof(f->cluster_name) ||
	    strlen(cfg->address) >= sizeof(f->listen_address) ||
	    cfg->secret_len < FABRIC_SECRET_MIN || cfg->secret_len > FABRIC_SECRET_MAX)
		return -EINVAL;
	f = calloc(1, sizeof(*f));
	if (f == NULL)
		return -ENOMEM;
	f->listen_fd = f->epoll_fd = f->wake_fd = -1;
	f->timers_dirty = true;
	f->node_id = cfg->node_id;
	strcpy(f->cluster_name, cfg->cluster_name);
	strcpy(f->listen_address, cfg->address);
	f->version = cfg->protocol_version != 0 ? cfg->protocol_version : FABRIC_PROTOCOL_VERSION;
	f->handshake_ns = (cfg->handshake_ms != 0 ? cfg->handshake_ms : FABRIC_HANDSHAKE_MS) * MS;
	memcpy(f->secret, cfg->secret, cfg->secret_len);
	f->secret_len = cfg->secret_len;
	f->queue_max = cfg->send_queue_max != 0 ? cfg->send_queue_max : FABRIC_SEND_QUEUE_DEFAULT;
	f->on_peer = cfg->on_peer;
	f->arg = cfg->arg;
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->lent_cv, NULL);
	if (cfg->tls_cert_file != NULL || cfg->tls_key_file != NULL || cfg->tls_ca_file != NULL) {
		rc = tls_ctx_create(cfg, &f->tls);
		if (rc != 0)
			goto fail;
	}

	snprintf(port, sizeof(port), "%u", cfg->port);
	rc = getaddrinfo(cfg->address, port, &hints, &ai);
	if (rc != 0) {
		log_error("fabric", "listen address %s: %s", cfg->address, gai_strerror(rc));
		rc = -EINVAL;
		goto fail;
	}
	f->listen_fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (f->listen_fd < 0 ||
	    setsockopt(f->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(f->listen_fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(f->listen_fd, 128) != 0 ||
	    getsockname(f->listen_fd, (struct sockaddr *)&ss, &sl) != 0) {
		rc = -errno;
		log_error("fabric", "cannot listen on %s:%u: %s", cfg->address, cfg->port, strerror(errno));
		goto fail;
	}
	f->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port :
	    ((struct sockaddr_in *)&ss)->sin_port);
	f->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	f->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (f->epoll_fd < 0 || f->wake_fd < 0) {
		rc = -errno;
		goto fail;
	}
	ev.events = EPOLLIN;
	ev.data.ptr = &tag_listen;
	if (epoll_ctl(f->epoll_fd, EPOLL_CTL_ADD, f->listen_fd, &ev) != 0) {
		rc = -errno;
		goto fail;
	}
	ev.data.ptr = &tag_wake;
	if (epoll_ctl(f->epoll_fd, EPOLL_CTL_ADD, f->wake_fd, &ev) != 0) {
		rc = -errno;
		goto fail;
	}
	freeaddrinfo(ai);
	*out = f;
	return 0;
fail:
	if (ai != NULL)
		freeaddrinfo(ai);
	fabric_destroy(f);
	return rc;
}

int
fabric_handler_set(struct fabric *f, uint16_t type, fabric_handler_fn fn, void *arg)
{
	if (type < 16 || type >= FABRIC_MSG_TYPE_MAX || f->started)
		return -EINVAL;
	f->handlers[type].fn = fn;
	f->handlers[type].arg = arg;
	return 0;
}

int
fabric_start(struct fabric *f)
{
	int rc = pthread_create(&f->thread, NULL, fabric_thread, f);

	if (rc != 0)
		return -rc;
	pthread_setname_np(f->thread, "fabric");
	f->started = true;
	return 0;
}

uint16_t
fabric_port(const struct fabric *f)
{
	return f->port;
}

int
fabric_ack_timeout_set(struct fabric *f, uint32_t ms)
{
	if (f->started || ms > INT32_MAX)
		return -EINVAL;
	f->ack_timeout_ms = ms;
	return 0;
}

static void
wake(struct fabric *f)
{
	uint64_t one = 1;

	/* a full counter (EAGAIN) is already a pending wake-up */
	if (write(f->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("fabric", "wake-up failed: %s", strerror(errno));
}

static void
conn_free(struct conn *c)
{
	if (c->macs) {
		fabric_mac_fini(&c->tx);
		fabric_mac_fini(&c->rx);
	}
	SSL_free(c->ssl);
	free(c->rbuf);
	free(c->wbuf);
	free(c);
}

void
fabric_destroy(struct fabric *f)
{
	unsigned i;

	if (f == NULL)
		return;
	if (f->started) {
		atomic_store_release(&f->stop, 1);
		wake(f);
		pthread_join(f->thread, NULL);
	}
	/* no more lending; the borrowers are woken (their sockets shut
	 * down) and return what they hold before anything is freed */
	pthread_mutex_lock(&f->lock);
	f->closing = true;
	for (struct conn *c = f->conns; c != NULL; c = c->next)
		if (c->peer != NULL) {
			pthread_mutex_lock(&c->peer->lock);
			if (c->lent)
				shutdown(c->fd, SHUT_RDWR);
			pthread_mutex_unlock(&c->peer->lock);
		}
	while (f->n_lent > 0)
		pthread_cond_wait(&f->lent_cv, &f->lock);
	pthread_mutex_unlock(&f->lock);
	while (f->conns != NULL) {
		struct conn *c = f->conns;

		f->conns = c->next;
		close(c->fd);
		conn_free(c);
	}
	while (f->zombies != NULL) {
		struct conn *c = f->zombies;

		f->zombies = c->next;
		conn_free(c);
	}
	for (i = 0; i < f->n_peers; i++) {
		struct peer *p = f->peers[i];

		while (p->head != NULL) {
			struct send_item *it = p->head;

			p->head = it->next;
			free(it);
		}
		pthread_mutex_destroy(&p->lock);
		free(p);
	}
	while (f->dialers != NULL) {
		struct dialer *d = f->dialers;

		f->dialers = d->next;
		free(d);
	}
	if (f->listen_fd >= 0)
		close(f->listen_fd);
	if (f->epoll_fd >= 0)
		close(f->epoll_fd);
	if (f->wake_fd >= 0)
		close(f->wake_fd);
	SSL_CTX_free(f->tls);
	pthread_cond_destroy(&f->lent_cv);
	pthread_mutex_destroy(&f->lock);
	memset(f->secret, 0, sizeof(f->secret));
	free(f);
}

int
fabric_peer_add(struct fabric *f, const char *address)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
	    .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	char host[64];
	const char *colon = strrchr(address, ':'), *h = address;
	struct dialer *d, *it;
	size_t hl;

	if (colon == NULL || strlen(address) >= sizeof(d->address))
		return -EINVAL;
	hl = (size_t)(colon - address);
	if (hl >= 2 && address[0] == '[' && address[hl - 1] == ']') { /* [v6]:port */
		h++;
		hl -= 2;
	}
	memcpy(host, h, hl);
	host[hl] = '\0';
	if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (d == NULL) {
		freeaddrinfo(ai);
		return -ENOMEM;
	}
	snprintf(d->address, sizeof(d->address), "%s", address);
	memcpy(&d->sa, ai->ai_addr, ai->ai_addrlen);
	d->salen = ai->ai_addrlen;
	freeaddrinfo(ai);
	d->backoff_ms = FABRIC_BACKOFF_MIN_MS;
	d->due_ns = clock_mono_ns(); /* at once */
	pthread_mutex_lock(&f->lock);
	for (it = f->dialers; it != NULL; it = it->next) {
		if (strcmp(it->address, d->address) == 0) {
			pthread_mutex_unlock(&f->lock);
			free(d);
			return -EEXIST;
		}
	}
	if (f->n_dialers == FABRIC_DIALERS_MAX) {
		pthread_mutex_unlock(&f->lock);
		free(d);
		return -ENOSPC;
	}
	f->n_dialers++;
	d->next = f->dialers;
	f->dialers = d;
	pthread_mutex_unlock(&f->lock);
	wake(f);
	return 0;
}

/* ---- sending ------------------------------------------------------------------ */

static struct peer *
peer_find(struct fabric *f, uint64_t node_id)
{
	unsigned i;

	for (i = 0; i < f->n_peers; i++)
		if (f->peers[i]->node_id == node_id)
			return f->peers[i];
	return NULL;
}

/* ---- socket I/O, plain or TLS ------------------------------------------------------ */

/* Bytes read (> 0), 0 at the end of the stream, -EAGAIN, or -errno
 * (-EPROTO: a TLS error). */
static ssize_t
conn_recv(struct conn *c, void *buf, size_t len)
{
	ssize_t n;
	int e;

	if (c->ssl == NULL) {
		n = recv(c->fd, buf, len, MSG_DONTWAIT);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? -EAGAIN : -errno;
		return n;
	}
	ERR_clear_error();
	n = SSL_read(c->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
	if (n > 0)
		return n;
	e = SSL_get_error(c->ssl, (int)n);
	if (e == SSL_ERROR_WANT_READ)
		return -EAGAIN;
	if (e == SSL_ERROR_WANT_WRITE) {
		c->read_wants_write = true;
		return -EAGAIN;
	}
	if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0))
		return 0;
	ERR_clear_error();
	return e == SSL_ERROR_SYSCALL ? -errno : -EPROTO;
}

/* Bytes written (> 0), -EAGAIN, or -errno. */
static ssize_t
conn_send(struct conn *c, const void *buf, size_t len)
{
	ssize_t n;
	int e;

	if (c->ssl == NULL) {
		n = send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? -EAGAIN : -errno;
		return n;
	}
	ERR_clear_error();
	n = SSL_write(c->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
	if (n > 0)
		return n;
	e = SSL_get_error(c->ssl, (int)n);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return -EAGAIN;
	ERR_clear_error();
	return e == SSL_ERROR_SYSCALL && errno != 0 ? -errno : -EPROTO;
}

/* Why a socket failed, for the log: ETIMEDOUT under an ack timeout is the
 * peer's silence. */
static const char *
sock_why(const struct fabric *f, int err, char *buf, size_t sz)
{
	if (err == ETIMEDOUT && f->ack_timeout_ms != 0)
		snprintf(buf, sz, "nothing acknowledged for %u ms (a cut link, or a node dead or not reading)",
		    f->ack_timeout_ms);
	else
		snprintf(buf, sz, "%s", strerror(err));
	return buf;
}

/* sock_why for a connection closed for err: counts the ack timeouts. */
static const char *
close_why(struct fabric *f, int err, char *buf, size_t sz)
{
	if (err == ETIMEDOUT && f->ack_timeout_ms != 0)
		atomic_inc(&f->stats.closed_ack_timeout);
	return sock_why(f, err, buf, sz);
}

/*
 * Frames w into the empty write buffer of c (the active connection of its
 * peer, whose lock the caller holds) and writes what the socket takes now.
 * What it does not take waits for EPOLLOUT on the fabric thread; a socket
 * error is left to that thread too (the event loop sees it and closes).
 */
/*
 * send_direct of a message with a tail (a large body by reference) on a plain
 * socket: the frame header, the message's head, its tail and the MAC go out
 * in one sendmsg from where they are, with no copy into the write buffer;
 * only what the socket does not take is copied there (for EPOLLOUT), as
 * send_direct leaves its rest.  Caller holds the peer's lock, buffer empty.
 */
static int
send_direct_tail(struct fabric *f, struct peer *p, struct conn *c, const struct fabric_msg_writer *w)
{
	uint8_t hdr[FABRIC_FRAME_HEADER], mac[FABRIC_MAC_LEN];
	size_t body = w->len + w->tail_len + w->tail2_len;
	size_t total = FABRIC_FRAME_HEADER + body + FABRIC_MAC_LEN, sent;
	struct iovec iov[5] = {
		{ .iov_base = hdr, .iov_len = sizeof(hdr) },
		{ .iov_base = w->buf, .iov_len = w->len },
		{ .iov_base = (void *)w->tail, .iov_len = w->tail_len },
		{ .iov_base = (void *)w->tail2, .iov_len = w->tail2_len },
		{ .iov_base = mac, .iov_len = sizeof(mac) },
	};
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 5 };
	ssize_t n;
	int rc;

	/* room for a rest first: after the MAC (its sequence taken) it must go out */
	rc = wbuf_room(c, total);
	if (rc != 0)
		return rc;
	fabric_frame_header_write(hdr, f->version, FABRIC_KIND_MSG, (uint32_t)body);
	if (fabric_mac_compute_tail(&c->tx, hdr, iov + 1, 3, mac) != 0)
		return -EIO;
	atomic_inc(&f->stats.msgs_sent);
	atomic_inc(&p->msgs_sent);
	n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	/* an error is the fabric thread's to see (it closes): all of it waits */
	sent = n > 0 ? (size_t)n : 0;
	if (sent > 0) {
		atomic_add(&f->stats.bytes_sent, (uint64_t)sent);
		atomic_add(&p->bytes_sent, (uint64_t)sent);
	}
	if (sent == total)
		return 0;
	/* the rest into the write buffer, for EPOLLOUT */
	for (unsigned i = 0; i < 5; i++) {
		if (sent >= iov[i].iov_len) {
			sent -= iov[i].iov_len;
			continue;
		}
		memcpy(c->wbuf + c->wlen, (const uint8_t *)iov[i].iov_base + sent, iov[i].iov_len - sent);
		c->wlen += iov[i].iov_len - sent;
		sent = 0;
	}
	conn_want_out(f, c, true);
	return 0;
}

static int
send_direct(struct fabric *f, struct peer *p, struct conn *c, const struct fabric_msg_writer *w)
{
	ssize_t n;
	int rc;

	c->woff = c->wlen = 0;
	if (w->tail != NULL && c->ssl == NULL)
		return send_direct_tail(f, p, c, w);
	rc = conn_frame_tail(f, c, FABRIC_KIND_MSG, w);
	if (rc != 0)
		return rc;
	atomic_inc(&f->stats.msgs_sent);
	atomic_inc(&p->msgs_sent);
	n = conn_send(c, c->wbuf, c->wlen);
	if (n > 0) {
		c->woff = (size_t)n;
		atomic_add(&f->stats.bytes_sent, (uint64_t)n);
		atomic_add(&p->bytes_sent, (uint64_t)n);
	}
	if (c->woff != c->wlen)
		conn_want_out(f, c, true);
	return 0;
}

int
fabric_send(struct fabric *f, uint64_t node_id, const struct fabric_msg_writer *w)
{
	struct send_item *it;
	struct peer *p;
	struct conn *c;
	int rc;

	if (w->err != 0)
		return -EBADMSG;
	if (w->len + w->tail_len + w->tail2_len > FABRIC_MSG_MAX)
		return -EMSGSIZE;
	pthread_mutex_lock(&f->lock);
	p = peer_find(f, node_id);
	pthread_mutex_unlock(&f->lock);
	if (p == NULL)
		return -EHOSTUNREACH;   /* peers are freed only by fabric_destroy */
	pthread_mutex_lock(&p->lock);
	c = p->conn;
	/* nothing ahead of it: written from this thread, no wake-up, no copy */
	if (c != NULL && p->head == NULL && !c->writing && c->woff == c->wlen) {
		rc = send_direct(f, p, c, w);
		pthread_mutex_unlock(&p->lock);
		return rc;
	}
	/* an empty queue takes any message up to FABRIC_MSG_MAX */
	if (p->queued != 0 && p->queued + w->len + w->tail_len + w->tail2_len > f->queue_max) {
		pthread_mutex_unlock(&p->lock);
		atomic_inc(&f->stats.send_queue_full);
		return -ENOBUFS;
	}
	it = malloc(sizeof(*it) + w->len + w->tail_len + w->tail2_len);
	if (it == NULL) {
		pthread_mutex_unlock(&p->lock);
		return -ENOMEM;
	}
	it->next = NULL;
	it->len = (uint32_t)(w->len + w->tail_len + w->tail2_len);
	memcpy(it->data, w->buf, w->len);
	if (w->tail_len != 0)
		memcpy(it->data + w->len, w->tail, w->tail_len);
	if (w->tail2_len != 0)
		memcpy(it->data + w->len + w->tail_len, w->tail2, w->tail2_len);
	if (p->tail != NULL)
		p->tail->next = it;
	else
		p->head = it;
	p->tail = it;
	p->queued += it->len;
	/* the thread writes it when the socket is writable (no connection:
	 * when one attaches; writing: at the end of its flush) */
	if (c != NULL && !c->writing)
		conn_want_out(f, c, true);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

/* ---- lending a connection to a waiting caller ---------------------------------- */

/* A borrower looks at what it was told about every this often. */
#define LEND_SLICE_MS 20

/* Room for a frame of total bytes from *pos on: the unread bytes move to the
 * buffer's start (*pos becomes 0) and it grows to total.  -ENOMEM. */
static int
rbuf_grow(struct conn *c, size_t *pos, size_t total)
{
	uint8_t *nb;

	memmove(c->rbuf, c->rbuf + *pos, c->rlen - *pos);
	c->rlen -= *pos;
	*pos = 0;
	nb = realloc(c->rbuf, total);
	if (nb == NULL)
		return -ENOMEM;
	c->rbuf = nb;
	c->rcap = total;
	return 0;
}

/*
 * The borrower's frames: those take() wants are verified and handed to
 * their handler on this thread; at the first one it does not want (or
 * one that does not verify, which the fabric thread verifies again and
 * refuses) it stops, leaving it and what follows to the fabric thread, in
 * order.  1: go on reading; 0: give the connection back.
 */
static int
lent_parse(struct fabric *f, struct conn *c, fabric_take_fn take, void *arg)
{
	size_t pos = 0;
	int more = 1;

	while (c->rlen - pos >= FABRIC_FRAME_HEADER) {
		const uint8_t *fr = c->rbuf + pos, *body = fr + FABRIC_FRAME_HEADER;
		uint8_t kind, mac[FABRIC_MAC_LEN];
		uint32_t len;
		size_t total;
		struct fabric_msg m;
		struct handler *h;

		if (fabric_frame_header_parse(fr, f->version, &kind, &len) != 0 ||
		    kind != FABRIC_KIND_MSG || len > FABRIC_MSG_MAX) {
			more = 0;
			break;
		}
		total = FABRIC_FRAME_HEADER + len + FABRIC_MAC_LEN;
		if (c->rlen - pos < total) {
			if (total > c->rcap && rbuf_grow(c, &pos, total) != 0) {
				more = 0;
				break;
			}
			break;
		}
		/* unauthenticated bytes decide only who handles the frame */
		if (!take(arg, body, len)) {
			more = 0;
			break;
		}
		/* a frame that does not verify is left in place; the MAC's
		 * sequence moved, so the fabric thread's check fails too and it
		 * closes the connection */
		if (fabric_mac_compute(&c->rx, fr, body, len, mac) != 0 ||
		    !fabric_auth_equal(mac, body + len, FABRIC_MAC_LEN) ||
		    fabric_msg_decode(body, len, &m) != 0) {
			more = 0;
			break;
		}
		atomic_inc(&f->stats.msgs_received);
		atomic_inc(&c->peer->msgs_received);
		h = &f->handlers[m.type < FABRIC_MSG_TYPE_MAX ? m.type : 0];
		if (m.type < FABRIC_MSG_TYPE_MAX && h->fn != NULL)
			h->fn(h->arg, c->theirs.node_id, &m);
		pos += total;
	}
	memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
	c->rlen -= pos;
	return more;
}

int
fabric_read_lent(struct fabric *f, uint64_t node_id, uint64_t until_ns, fabric_take_fn take,
    bool (*done)(void *arg), void *arg)
{
	struct epoll_event ev;
	struct peer *p;
	struct conn *c;
	bool pending;

	pthread_mutex_lock(&f->lock);
	p = f->closing ? NULL : peer_find(f, node_id);
	if (p == NULL) {
		pthread_mutex_unlock(&f->lock);
		return -EBUSY;
	}
	pthread_mutex_lock(&p->lock);
	c = p->conn;
	if (c == NULL || c->ssl != NULL || !c->lendable || c->lent || c->reading || c->closing ||
	    c->pending || c->rbuf == NULL) {
		pthread_mutex_unlock(&p->lock);
		pthread_mutex_unlock(&f->lock);
		return -EBUSY;
	}
	/* the fabric thread stops watching it for input: what arrives wakes
	 * this thread alone */
	c->lent = true;
	f->n_lent++;
	ev = (struct epoll_event){ .events = c->want_out ? EPOLLOUT : 0, .data.ptr = c };
	epoll_ctl(f->epoll_fd, EPOLL_CTL_MOD, c->fd, &ev);
	pthread_mutex_unlock(&p->lock);
	pthread_mutex_unlock(&f->lock);

	while (lent_parse(f, c, take, arg) && !done(arg)) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		uint64_t now = clock_mono_ns(), ms;
		ssize_t n;

		if (now >= until_ns)
			break;
		/* in slices: a call may also end without a word on this
		 * connection (node down, shutdown, an answer on another one) */
		ms = (until_ns - now + MS - 1) / MS;
		n = poll(&pfd, 1, (int)(ms < LEND_SLICE_MS ? ms : LEND_SLICE_MS));
		if (n < 0 && errno != EINTR)
			break;
		if (n <= 0)
			continue;
		if (c->rlen == c->rcap)
			break;
		n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			break;    /* the fabric thread sees it too and closes */
		if (n > 0) {
			c->rlen += (size_t)n;
			atomic_add(&f->stats.bytes_received, (uint64_t)n);
			atomic_add(&p->bytes_received, (uint64_t)n);
		}
	}

	pthread_mutex_lock(&f->lock);
	pthread_mutex_lock(&p->lock);
	c->lent = false;
	pending = c->rlen > 0 || c->close_deferred;
	c->pending = pending;
	if (!c->close_deferred) {
		ev = (struct epoll_event){ .events = EPOLLIN | (c->want_out ? EPOLLOUT : 0),
			.data.ptr = c };
		epoll_ctl(f->epoll_fd, EPOLL_CTL_MOD, c->fd, &ev);
	}
	/* before n_lent drops: fabric_destroy frees f once it is 0 */
	if (pending)
		wake(f);
	f->n_lent--;
	pthread_cond_broadcast(&f->lent_cv);
	pthread_mutex_unlock(&p->lock);
	pthread_mutex_unlock(&f->lock);
	return 0;
}

/* ---- statistics ----------------------------------------------------------------- */

uint64_t
fabric_peer_msgs_received(struct fabric *f, uint64_t node_id)
{
	struct peer *p;

	pthread_mutex_lock(&f->lock);
	p = peer_find(f, node_id);
	pthread_mutex_unlock(&f->lock);
	/* peers are freed only by fabric_destroy */
	return p != NULL ? atomic_load_relaxed(&p->msgs_received) : 0;
}

void
fabric_stats_get(struct fabric *f, struct fabric_stats *s)
{
	uint64_t *dst = (uint64_t *)s;
	const uint64_t *src = (const uint64_t *)&f->stats;
	size_t i;

	/* every field before peers_connected is a u64 counter */
	for (i = 0; i < offsetof(struct fabric_stats, peers_connected) / sizeof(uint64_t); i++)
		dst[i] = atomic_load_relaxed(&src[i]);
	s->peers_connected = atomic_load_relaxed(&f->stats.peers_connected);
}

unsigned
fabric_peers_get(struct fabric *f, struct fabric_peer_info *out, unsigned max)
{
	unsigned i, n;

	pthread_mutex_lock(&f->lock);
	n = f->n_peers;
	for (i = 0; i < n && i < max; i++) {
		struct peer *p = f->peers[i];
		struct fabric_peer_info *o = &out[i];

		o->node_id = p->node_id;
		snprintf(o->address, sizeof(o->address), "%s", p->address);
		o->connected = p->conn != NULL;
		o->bytes_sent = atomic_load_relaxed(&p->bytes_sent);
		o->bytes_received = atomic_load_relaxed(&p->bytes_received);
		o->msgs_sent = atomic_load_relaxed(&p->msgs_sent);
		o->msgs_received = atomic_load_relaxed(&p->msgs_received);
		o->connects = atomic_load_relaxed(&p->connects);
		o->auth_failures = atomic_load_relaxed(&p->auth_failures);
		pthread_mutex_lock(&p->lock);
		o->queued_bytes = p->queued;
		pthread_mutex_unlock(&p->lock);
	}
	pthread_mutex_unlock(&f->lock);
	return n;
}

/* ---- the fabric thread: connections ------------------------------------------ */

static void
conn_want_out(struct fabric *f, struct conn *c, bool on)
{
	struct epoll_event ev = { .events = (c->lent ? 0 : EPOLLIN) | (on ? EPOLLOUT : 0),
		.data.ptr = c };

	if (c->want_out == on)
		return;
	c->want_out = on;
	epoll_ctl(f->epoll_fd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* EPOLLOUT on, from the thread outside conn_flush (the peer's lock taken
 * when the connection has a peer). */
static void
conn_want_out_any(struct fabric *f, struct conn *c)
{
	if (c->peer != NULL)
		pthread_mutex_lock(&c->peer->lock);
	conn_want_out(f, c, true);
	if (c->peer != NULL)
		pthread_mutex_unlock(&c->peer->lock);
}

static void
addr_format(const struct sockaddr_storage *ss, char *ip, size_t ipsz, char *full, size_t fullsz)
{
	uint16_t port = 0;

	ip[0] = '\0';
	if (ss->ss_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, ip, (socklen_t)ipsz);
		port = ntohs(((const struct sockaddr_in *)ss)->sin_port);
		snprintf(full, fullsz, "%s:%u", ip, port);
	} else if (ss->ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, ip, (socklen_t)ipsz);
		port = ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
		snprintf(full, fullsz, "[%s]:%u", ip, port);
	} else {
		snprintf(full, fullsz, "?");
	}
}

static struct conn *
conn_new(struct fabric *f, int fd, bool outgoing, const struct sockaddr_storage *ss)
{
	struct conn *c = calloc(1, sizeof(*c));
	struct epoll_event ev;
	int one = 1;

	if (c == NULL)
		return NULL;
	c->fd = fd;
	c->outgoing = outgoing;
	c->state = outgoing ? CONN_CONNECTING : CONN_HELLO;
	c->deadline_ns = clock_mono_ns() + f->handshake_ns;
	f->timers_dirty = true;
	addr_format(ss, c->remote_ip, sizeof(c->remote_ip), c->remote, sizeof(c->remote));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* bytes unacknowledged that long (a cut link): ETIMEDOUT, closed, redialed */
	if (f->ack_timeout_ms != 0 && setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &f->ack_timeout_ms,
	    sizeof(f->ack_timeout_ms)) != 0)
		log_warn("fabric", "%s: TCP_USER_TIMEOUT: %s", c->remote, strerror(errno));
	c->want_out = outgoing; /* a connect completes as writable */
	ev.events = EPOLLIN | (outgoing ? EPOLLOUT : 0);
	ev.data.ptr = c;
	if (epoll_ctl(f->epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
		free(c);
		return NULL;
	}
	c->next = f->conns;
	if (f->conns != NULL)
		f->conns->prev = c;
	f->conns = c;
	return c;
}

/* Appends one frame to the write buffer; -ENOMEM. */
/* Room for need more bytes at the end of c's write buffer (compacted first:
 * what was written is gone; grown past WBUF_SIZE for one large frame). */
static int
wbuf_room(struct conn *c, size_t need)
{
	size_t cap = c->wlen + need > WBUF_SIZE ? c->wlen + need : WBUF_SIZE;
	uint8_t *nb;

	if (c->wcap - c->wlen >= need)
		return 0;
	if (c->woff != 0) {
		memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
		c->wlen -= c->woff;
		c->woff = 0;
		cap = c->wlen + need > WBUF_SIZE ? c->wlen + need : WBUF_SIZE;
	}
	if (c->wcap - c->wlen < need) {
		nb = realloc(c->wbuf, cap);
		if (nb == NULL)
			return -ENOMEM;
		c->wbuf = nb;
		c->wcap = cap;
	}
	return 0;
}

/* Frames w's message (its buffer and pieces by reference) into the write
 * buffer, with its MAC. */
static int
conn_frame_tail(struct fabric *f, struct conn *c, uint8_t kind, const struct fabric_msg_writer *w)
{
	size_t body = w->len + w->tail_len + w->tail2_len;
	size_t need = FABRIC_FRAME_HEADER + body + (kind == FABRIC_KIND_MSG ? FABRIC_MAC_LEN : 0);
	uint8_t *p, *q;
	int rc = wbuf_room(c, need);

	if (rc != 0)
		return rc;
	p = c->wbuf + c->wlen;
	fabric_frame_header_write(p, f->version, kind, (uint32_t)body);
	q = p + FABRIC_FRAME_HEADER;
	memcpy(q, w->buf, w->len);
	q += w->len;
	if (w->tail_len != 0)
		memcpy(q, w->tail, w->tail_len);
	q += w->tail_len;
	if (w->tail2_len != 0)
		memcpy(q, w->tail2, w->tail2_len);
	if (kind == FABRIC_KIND_MSG &&
	    fabric_mac_compute(&c->tx, p, p + FABRIC_FRAME_HEADER, body, p + FABRIC_FRAME_HEADER + body) != 0)
		return -EIO;
	c->wlen += need;
	return 0;
}

static int
conn_frame(struct fabric *f, struct conn *c, uint8_t kind, const uint8_t *msg, size_t len)
{
	struct fabric_msg_writer w = { .buf = (uint8_t *)msg, .cap = len, .len = len };

	return conn_frame_tail(f, c, kind, &w);
}

/* Takes the queued messages that fit the write buffer (up to WBUF_SIZE;
 * at least one); the caller holds the peer's lock. */
static struct send_item *
queue_take(struct conn *c)
{
	struct peer *p = c->peer;
	struct send_item *batch = NULL, **tail = &batch;
	size_t room = c->wlen - c->woff < WBUF_SIZE ? WBUF_SIZE - (c->wlen - c->woff) : 0;
	size_t taken = 0;

	while (p->head != NULL && (taken == 0 || taken + p->head->len <= room)) {
		struct send_item *it = p->head;

		if (c->wlen != c->woff && taken + it->len > room)
			break;
		p->head = it->next;
		if (p->head == NULL)
			p->tail = NULL;
		p->queued -= it->len;
		taken += it->len + FABRIC_FRAME_HEADER + FABRIC_MAC_LEN;
		it->next = NULL;
		*tail = it;
		tail = &it->next;
	}
	return batch;
}

/* Frames (and MACs) a batch into the write buffer and frees it. */
static void
batch_frame(struct fabric *f, struct conn *c, struct send_item *batch)
{
	while (batch != NULL) {
		struct send_item *it = batch;

		batch = it->next;
		if (conn_frame(f, c, FABRIC_KIND_MSG, it->data, it->len) == 0) {
			atomic_inc(&f->stats.msgs_sent);
			atomic_inc(&c->peer->msgs_sent);
		} else {
			log_warn("fabric", "%s: out of memory framing a message; dropped", c->remote);
		}
		free(it);
	}
}

static void
peer_lock(struct peer *p)
{
	if (p != NULL)
		pthread_mutex_lock(&p->lock);
}

static void
peer_unlock(struct peer *p)
{
	if (p != NULL)
		pthread_mutex_unlock(&p->lock);
}

/*
 * Writes what the socket takes, refilling the write buffer from the queue
 * (only the node's active connection takes from its queue: one order).
 * The peer's lock is held only to take from the queue and to update the
 * buffer's state: while c->writing is set, senders queue instead of
 * writing themselves, so framing, MACs and send() run unlocked and a
 * sender never waits for them.
 */
static void
conn_flush(struct fabric *f, struct conn *c)
{
	struct peer *p = c->peer;
	bool more = true;
	int rounds, err = 0;

	if (c->state == CONN_CLOSED)
		return;
	peer_lock(p);
	c->writing = true;
	for (rounds = 0; rounds < 16; rounds++) {
		ssize_t n;

		if (c->woff == c->wlen) {
			struct send_item *batch = NULL;

			c->woff = c->wlen = 0;
			if (c->state == CONN_UP && p != NULL && p->conn == c)
				batch = queue_take(c);
			if (batch == NULL) {
				more = false;
				break;
			}
			peer_unlock(p);
			batch_frame(f, c, batch);
			peer_lock(p);
			if (c->wlen == 0)
				continue;
		}
		peer_unlock(p);
		n = conn_send(c, c->wbuf + c->woff, c->wlen - c->woff);
		peer_lock(p);
		if (n < 0) {
			if (n != -EAGAIN)
				err = (int)-n;
			break;
		}
		c->woff += (size_t)n;
		atomic_add(&f->stats.bytes_sent, (uint64_t)n);
		if (p != NULL)
			atomic_add(&p->bytes_sent, (uint64_t)n);
	}
	c->writing = false;
	/* more to write: wait for the socket (a message queued meanwhile too) */
	if (!more && p != NULL && p->conn == c && c->state == CONN_UP && p->head != NULL)
		more = true;
	conn_want_out(f, c, (more || c->read_wants_write) && err == 0);
	peer_unlock(p);
	if (err != 0) {
		char why[96];

		conn_close(f, c, -1, close_why(f, err, why, sizeof(why)));
	}
}

static void
send_hello(struct fabric *f, struct conn *c)
{
	uint8_t buf[256];
	int len;

	c->mine.node_id = f->node_id;
	strcpy(c->mine.cluster_name, f->cluster_name);
	strcpy(c->mine.listen_address, f->listen_address);
	c->mine.listen_port = f->port;
	if (fabric_auth_random(c->mine.nonce, FABRIC_NONCE_LEN) != 0) {
		conn_close(f, c, -1, "no random bytes");
		return;
	}
	len = fabric_hello_encode(&c->mine, buf, sizeof(buf));
	if (len < 0 || conn_frame(f, c, FABRIC_KIND_HELLO, buf, (size_t)len) != 0) {
		conn_close(f, c, -1, "cannot encode hello");
		return;
	}
	conn_flush(f, c);
}

/* Logs a drop once per (address, reason) every LOG_REPEAT_NS. */
static void
refusal_log(struct fabric *f, const struct conn *c, int reason, const char *why)
{
	uint64_t now = clock_mono_ns();
	struct log_memo *m, *oldest = &f->memo[0];
	unsigned i;

	for (i = 0; i < LOG_MEMO; i++) {
		m = &f->memo[i];
		if (m->last_ns != 0 && m->reason == reason && strcmp(m->ip, c->remote_ip) == 0) {
			if (now - m->last_ns < LOG_REPEAT_NS) {
				m->suppressed++;
				return;
			}
			goto log;
		}
		if (m->last_ns < oldest->last_ns)
			oldest = m;
	}
	m = oldest;
	snprintf(m->ip, sizeof(m->ip), "%s", c->remote_ip);
	m->reason = reason;
	m->suppressed = 0;
log:
	log_warn("fabric", "dropped connection %s %s: %s (%s)%s", c->outgoing ? "to" : "from", c->remote,
	    fabric_refusal_name(reason), why,
	    m->suppressed != 0 ? "; same drops since the last line were not logged" : "");
	m->suppressed = 0;
	m->last_ns = now;
}

/*
 * A lost node: one this dialer was connected to before (a split, an
 * isolation, a restart), with an ack timeout shorter than the backoff's
 * max.  It is dialed at least once every ack timeout (lost_cap_ms): an
 * attempt not connected by then is abandoned (an unanswered SYN) and the
 * next one starts then, so a healed link is found within an ack timeout;
 * a seed that never answered backs off to FABRIC_BACKOFF_MAX_MS.
 */
static uint32_t
lost_cap_ms(const struct fabric *f, const struct dialer *d)
{
	if (d->node_id == 0 || f->ack_timeout_ms == 0 ||
	    f->ack_timeout_ms >= FABRIC_BACKOFF_MAX_MS)
		return 0;
	return f->ack_timeout_ms > FABRIC_BACKOFF_MIN_MS ? f->ack_timeout_ms : FABRIC_BACKOFF_MIN_MS;
}

/* The next attempt: after the backoff (doubling up to FABRIC_BACKOFF_MAX_MS),
 * for a lost node at most an ack timeout after the last attempt started. */
static void
dialer_schedule(const struct fabric *f, struct dialer *d, uint64_t now)
{
	uint32_t cap = lost_cap_ms(f, d);

	d->due_ns = now + (uint64_t)d->backoff_ms * MS;
	if (cap != 0 && d->due_ns > d->attempt_ns + (uint64_t)cap * MS) {
		uint64_t by = d->attempt_ns + (uint64_t)cap * MS;

		d->due_ns = by > now ? by : now;
	}
	d->backoff_ms = d->backoff_ms * 2 > FABRIC_BACKOFF_MAX_MS ? FABRIC_BACKOFF_MAX_MS : d->backoff_ms * 2;
}

/*
 * A connect to a dialed address failed.  Counted every time; said at the
 * first failure and then at most once a minute with the count since, so an
 * unreachable seed is visible at the default log level without a line per
 * retry (the retries back off to FABRIC_BACKOFF_MAX_MS).
 */
static void
dialer_failed(struct fabric *f, struct dialer *d, int err, uint64_t now)
{
	atomic_inc(&f->stats.connect_failures);
	d->fails++;
	d->fails_unlogged++;
	if (d->fail_logged_ns != 0 && now - d->fail_logged_ns < CONNECT_LOG_NS)
		return;
	log_warn("fabric", "cannot connect to %s: %s (%u failed attempts%s; retrying every %u s at most)",
	    d->address, strerror(err), d->fails_unlogged,
	    d->fail_logged_ns != 0 ? " since the last such line" : "", FABRIC_BACKOFF_MAX_MS / 1000);
	d->fails_unlogged = 0;
	d->fail_logged_ns = now;
}

/* A dialed address answered: say so when its failures had been logged. */
static void
dialer_reached(struct dialer *d)
{
	if (d->fail_logged_ns != 0)
		log_info("fabric", "connected to %s after %u failed attempts", d->address, d->fails);
	d->fails = d->fails_unlogged = 0;
	d->fail_logged_ns = 0;
}

/*
 * Closes a connection; refusal >= 0 counts and logs why.  The struct stays
 * allocated until the end of the event batch (its pointer may be in it).
 */
static void
conn_close(struct fabric *f, struct conn *c, int refusal, const char *why)
{
	struct peer *p = c->peer;
	uint64_t now = clock_mono_ns();

	if (c->state == CONN_CLOSED)
		return;
	if (p != NULL) {
		struct conn *x = NULL;
		bool lent, switched = false;

		for (x = f->conns; x != NULL; x = x->next)
			if (x != c && x->state == CONN_UP && x->peer == p)
				break;
		/* a lent connection's fd and read buffer are the borrower's:
		 * senders move to another connection now, the borrower is
		 * woken (its reads end) and the close is finished when it
		 * returns the connection (conns_returned) */
		pthread_mutex_lock(&f->lock);
		pthread_mutex_lock(&p->lock);
		lent = c->lent;
		if (lent && !c->close_deferred) {
			c->close_deferred = true;
			c->deferred_refusal = refusal;
			snprintf(c->deferred_why, sizeof(c->deferred_why), "%s", why);
			shutdown(c->fd, SHUT_RD);
			if (p->conn == c) {
				p->conn = x;
				if (x != NULL)
					conn_want_out(f, x, true);
				switched = true;
			}
		}
		if (!lent)
			c->closing = true;
		pthread_mutex_unlock(&p->lock);
		pthread_mutex_unlock(&f->lock);
		if (lent) {
			if (switched && x == NULL)
				p->down_at_ns = now + DOWN_GRACE_MS * MS; /* timers_run reports it */
			f->timers_dirty = true;
			return;
		}
	}
	f->timers_dirty = true; /* a reconnect, a departure's grace period */
	if (refusal >= 0) {
		atomic_inc(&f->stats.refused[refusal]);
		refusal_log(f, c, refusal, why);
		if (refusal == FABRIC_REFUSE_AUTH) {
			struct peer *q;

			pthread_mutex_lock(&f->lock);
			q = peer_find(f, c->theirs.node_id);
			if (q != NULL)
				atomic_inc(&q->auth_failures);
			pthread_mutex_unlock(&f->lock);
		}
	} else if (c->state == CONN_UP) {
		log_info("fabric", "connection %s %s closed: %s", c->outgoing ? "to" : "from", c->remote, why);
	}
	if (!c->outgoing && c->state != CONN_UP)
		f->n_pending_in--;
	c->state = CONN_CLOSED;
	if (p != NULL && p->conn == c) {
		struct conn *x;

		/* another live connection to the node (a kept one) takes over;
		 * from here on no sender touches c (its fd may be closed) */
		for (x = f->conns; x != NULL; x = x->next)
			if (x != c && x->state == CONN_UP && x->peer == p)
				break;
		pthread_mutex_lock(&f->lock);
		pthread_mutex_lock(&p->lock);
		p->conn = x;
		if (x != NULL)
			conn_want_out(f, x, true); /* the loop flushes the queue through it */
		pthread_mutex_unlock(&p->lock);
		pthread_mutex_unlock(&f->lock);
		if (x == NULL)
			p->down_at_ns = now + DOWN_GRACE_MS * MS; /* timers_run reports it */
	}
	epoll_ctl(f->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	if (c->dialer != NULL) {
		struct dialer *d = c->dialer;

		d->conn = NULL;
		if (!d->self)
			dialer_schedule(f, d, now);
		else
			d->due_ns = 0;
	}
	if (p != NULL && p->conn == NULL && p->down_at_ns != 0) {
		struct dialer *d;

		/* dialers waiting for this node's connection to go: now */
		pthread_mutex_lock(&f->lock);
		for (d = f->dialers; d != NULL; d = d->next)
			if (d->node_id == p->node_id && d->conn == NULL && !d->self && d->due_ns == 0)
				d->due_ns = now + FABRIC_BACKOFF_MIN_MS * MS;
		pthread_mutex_unlock(&f->lock);
	}
	/* unlink into the zombie list */
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		f->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->prev = NULL;
	c->next = f->zombies;
	f->zombies = c;
}

/* Sends an authenticated REFUSE (best effort: it is written now or never). */
static void
send_refuse(struct fabric *f, struct conn *c, enum fabric_refusal reason)
{
	struct fabric_msg_writer w;
	uint8_t buf[32];

	fabric_msg_writer_init(&w, buf, sizeof(buf), FABRIC_MSG_REFUSE);
	fabric_msg_put_u32(&w, FABRIC_FIELD_REASON, reason);
	c->woff = c->wlen = 0; /* nothing else matters now */
	if (w.err == 0 && conn_frame(f, c, FABRIC_KIND_MSG, buf, w.len) == 0) {
		ssize_t n = conn_send(c, c->wbuf, c->wlen);

		if (n < 0)
			log_debug("fabric", "%s: refuse not sent: %s", c->remote, strerror((int)-n));
	}
}

/* The connection initiated by the higher node id wins. */
static uint64_t
initiator(const struct fabric *f, const struct conn *c)
{
	return c->outgoing ? f->node_id : c->theirs.node_id;
}

/* An authenticated connection becomes its node's active one, or loses. */
static void
conn_attach(struct fabric *f, struct conn *c)
{
	struct peer *p;
	struct conn *loser = NULL;
	char endpoint[64];
	bool up = false, dup = false, keep_loser = false;

	snprintf(endpoint, sizeof(endpoint), "%s:%u", c->theirs.listen_address, c->theirs.listen_port);
	if (c->dialer != NULL)
		c->dialer->node_id = c->theirs.node_id;
	pthread_mutex_lock(&f->lock);
	p = peer_find(f, c->theirs.node_id);
	if (p == NULL) {
		if (f->n_peers == PEERS_MAX) {
			pthread_mutex_unlock(&f->lock);
			conn_close(f, c, FABRIC_REFUSE_TOO_MANY, "too many nodes");
			return;
		}
		p = calloc(1, sizeof(*p));
		if (p == NULL) {
			pthread_mutex_unlock(&f->lock);
			conn_close(f, c, -1, "out of memory");
			return;
		}
		p->node_id = c->theirs.node_id;
		pthread_mutex_init(&p->lock, NULL);
		f->peers[f->n_peers++] = p;
	}
	if (p->conn != NULL) {
		if (strcmp(p->address, endpoint) != 0) {
			dup = true;
		} else if (initiator(f, p->conn) == initiator(f, c) ||
		    initiator(f, c) > initiator(f, p->conn)) {
			loser = p->conn; /* the same side dialed again, or we win: the new one stays */
		} else {
			loser = c;
		}
		/*
		 * Two nodes that dialed each other: each closes only a losing
		 * connection it initiated and keeps the other's open, unused,
		 * until the other closes it.  Were the higher node to close the
		 * lower's connection, the lower could see its only live
		 * connection go before the winner reached it: a down/up flap.
		 */
		keep_loser = loser != NULL && initiator(f, p->conn) != initiator(f, c) &&
		    initiator(f, loser) != f->node_id;
	}
	/* c->peer before p->conn: a sender that sees p->conn == c (under
	 * p->lock) also sees its peer */
	if (!dup)
		c->peer = p;
	if (!dup && loser != c) {
		/* back within the grace period: it was never reported down */
		up = p->conn == NULL && p->down_at_ns == 0;
		p->down_at_ns = 0;
		pthread_mutex_lock(&p->lock);
		p->conn = c;
		pthread_mutex_unlock(&p->lock);
		snprintf(p->address, sizeof(p->address), "%s", endpoint);
	}
	pthread_mutex_unlock(&f->lock);
	if (dup) {
		char why[256];

		snprintf(why, sizeof(why), "node id %016llx is already connected from %s, this one is at %s",
		    (unsigned long long)p->node_id, p->address, endpoint);
		send_refuse(f, c, FABRIC_REFUSE_DUPLICATE_NODE);
		conn_close(f, c, FABRIC_REFUSE_DUPLICATE_NODE, why);
		return;
	}
	if (loser == c && !keep_loser) {
		/* the other connection to this node stays; the dialer waits for it to go */
		if (c->dialer != NULL) {
			c->dialer->backoff_ms = FABRIC_BACKOFF_MIN_MS;
			c->dialer->conn = NULL;
			c->dialer->due_ns = 0;
			c->dialer = NULL;
		}
		conn_close(f, c, -1, "duplicate connection");
		return;
	}
	if (!c->outgoing)
		f->n_pending_in--;
	c->state = CONN_UP;
	if (c->dialer != NULL)
		c->dialer->backoff_ms = FABRIC_BACKOFF_MIN_MS;
	atomic_inc(&f->stats.connects);
	atomic_inc(&p->connects);
	if (loser != NULL && loser != c && !keep_loser) {
		if (loser->dialer != NULL) {
			loser->dialer->conn = NULL;
			loser->dialer->due_ns = 0;
			loser->dialer = NULL;
		}
		loser->peer = NULL; /* replaced, not down */
		conn_close(f, loser, -1, "replaced by another connection");
	}
	if (up) {
		atomic_add(&f->stats.peers_connected, 1);
		log_info("fabric", "node %016llx at %s is reachable (%s %s)", (unsigned long long)p->node_id,
		    endpoint, c->outgoing ? "connected to" : "accepted from", c->remote);
		if (f->on_peer != NULL)
			f->on_peer(f->arg, p->node_id, true);
	}
	if (c->state == CONN_UP && p->conn == c)
		conn_flush(f, c);
}

static void
on_hello(struct fabric *f, struct conn *c, const uint8_t *body, size_t len)
{
	struct fabric_msg m;
	struct fabric_msg_writer w;
	uint8_t proof[FABRIC_PROOF_LEN], buf[64];

	if (fabric_msg_decode(body, len, &m) != 0 || fabric_hello_parse(&m, &c->theirs) != 0) {
		conn_close(f, c, FABRIC_REFUSE_MALFORMED, "bad hello");
		return;
	}
	if (strcmp(c->theirs.cluster_name, f->cluster_name) != 0) {
		char why[256];

		snprintf(why, sizeof(why), "cluster-name '%s', ours is '%s'", c->theirs.cluster_name,
		    f->cluster_name);
		conn_close(f, c, FABRIC_REFUSE_CLUSTER_NAME, why);
		return;
	}
	if (c->theirs.node_id == f->node_id) {
		if (strcmp(c->theirs.listen_address, f->listen_address) == 0 &&
		    c->theirs.listen_port == f->port) {
			/* a seed list naming this node itself */
			if (c->dialer != NULL)
				c->dialer->self = true;
			conn_close(f, c, -1, "connected to itself");
			return;
		}
		conn_close(f, c, FABRIC_REFUSE_DUPLICATE_NODE, "it has our node id");
		return;
	}
	if (fabric_auth_proof(f->secret, f->secret_len, &c->mine, &c->theirs, proof) != 0) {
		conn_close(f, c, -1, "HMAC failed");
		return;
	}
	fabric_msg_writer_init(&w, buf, sizeof(buf), FABRIC_MSG_AUTH);
	fabric_msg_put_bytes(&w, FABRIC_FIELD_PROOF, proof, sizeof(proof));
	if (w.err != 0 || conn_frame(f, c, FABRIC_KIND_AUTH, buf, w.len) != 0) {
		conn_close(f, c, -1, "cannot encode auth");
		return;
	}
	c->state = CONN_AUTH;
	conn_flush(f, c);
}

static void
on_auth(struct fabric *f, struct conn *c, const uint8_t *body, size_t len)
{
	struct fabric_msg m;
	uint8_t expect[FABRIC_PROOF_LEN], key[FABRIC_KEY_LEN];
	const uint8_t *proof;
	size_t plen;

	if (fabric_msg_decode(body, len, &m) != 0 || m.type != FABRIC_MSG_AUTH ||
	    fabric_msg_get_bytes(&m, FABRIC_FIELD_PROOF, &proof, &plen) != 0 || plen != FABRIC_PROOF_LEN) {
		conn_close(f, c, FABRIC_REFUSE_MALFORMED, "bad auth message");
		return;
	}
	if (fabric_auth_proof(f->secret, f->secret_len, &c->theirs, &c->mine, expect) != 0) {
		conn_close(f, c, -1, "HMAC failed");
		return;
	}
	if (!fabric_auth_equal(expect, proof, FABRIC_PROOF_LEN)) {
		conn_close(f, c, FABRIC_REFUSE_AUTH, "it does not know the cluster secret");
		return;
	}
	if (fabric_auth_session_key(f->secret, f->secret_len, &c->mine, &c->theirs, key) != 0 ||
	    fabric_mac_init(&c->tx, key) != 0) {
		conn_close(f, c, -1, "session key failed");
		return;
	}
	if (fabric_auth_session_key(f->secret, f->secret_len, &c->theirs, &c->mine, key) != 0 ||
	    fabric_mac_init(&c->rx, key) != 0) {
		fabric_mac_fini(&c->tx);
		conn_close(f, c, -1, "session key failed");
		return;
	}
	memset(key, 0, sizeof(key));
	c->macs = true;
	conn_attach(f, c);
}

static void
on_message(struct fabric *f, struct conn *c, const uint8_t *frame, size_t len)
{
	const uint8_t *body = frame + FABRIC_FRAME_HEADER;
	uint8_t mac[FABRIC_MAC_LEN];
	struct fabric_msg m;
	struct handler *h;

	if (fabric_mac_compute(&c->rx, frame, body, len, mac) != 0 ||
	    !fabric_auth_equal(mac, body + len, FABRIC_MAC_LEN)) {
		conn_close(f, c, FABRIC_REFUSE_MAC, "a frame's MAC does not verify");
		return;
	}
	if (fabric_msg_decode(body, len, &m) != 0) {
		conn_close(f, c, FABRIC_REFUSE_MALFORMED, "bad message fields");
		return;
	}
	atomic_inc(&f->stats.msgs_received);
	atomic_inc(&c->peer->msgs_received);
	if (m.type == FABRIC_MSG_REFUSE) {
		uint32_t reason = FABRIC_REFUSE_COUNT;

		(void)fabric_msg_get_u32(&m, FABRIC_FIELD_REASON, &reason);
		atomic_inc(&f->stats.refused_by_peer);
		log_error("fabric", "node %016llx at %s refused this node: %s%s",
		    (unsigned long long)c->theirs.node_id, c->remote, fabric_refusal_name(reason),
		    reason == FABRIC_REFUSE_DUPLICATE_NODE ?
		    " (another node with our node id is connected to it)" : "");
		conn_close(f, c, -1, "refused by the peer");
		return;
	}
	h = &f->handlers[m.type < FABRIC_MSG_TYPE_MAX ? m.type : 0];
	if (m.type >= FABRIC_MSG_TYPE_MAX || h->fn == NULL) {
		log_debug("fabric", "%s: message type %u has no handler; skipped", c->remote, m.type);
		return;
	}
	h->fn(h->arg, c->theirs.node_id, &m);
}

/* Handles every whole frame in c's read buffer and keeps the rest; false:
 * the connection was closed. */
static bool
conn_parse(struct fabric *f, struct conn *c)
{
	size_t pos = 0;

	while (c->state != CONN_CLOSED && c->rlen - pos >= FABRIC_FRAME_HEADER) {
		const uint8_t *fr = c->rbuf + pos;
		uint8_t kind;
		uint32_t len;
		size_t total, limit;
		int rc = fabric_frame_header_parse(fr, f->version, &kind, &len);

		if (rc == -EPROTONOSUPPORT) {
			char why[64];

			snprintf(why, sizeof(why), "protocol version %u, ours is %u", fr[2], f->version);
			conn_close(f, c, FABRIC_REFUSE_VERSION, why);
			return false;
		}
		if (rc != 0) {
			conn_close(f, c, FABRIC_REFUSE_MALFORMED, "not a fabric frame");
			return false;
		}
		limit = c->state == CONN_UP ? FABRIC_MSG_MAX : FABRIC_HANDSHAKE_MSG_MAX;
		if (len > limit) {
			char why[64];

			snprintf(why, sizeof(why), "frame of %u bytes, the limit is %zu", len, limit);
			conn_close(f, c, FABRIC_REFUSE_OVERSIZED, why);
			return false;
		}
		total = FABRIC_FRAME_HEADER + len + (kind == FABRIC_KIND_MSG ? FABRIC_MAC_LEN : 0);
		if (c->rlen - pos < total) {
			/* a bigger frame than the buffer: grow it (bounded by limit) */
			if (total > c->rcap && rbuf_grow(c, &pos, total) != 0) {
				conn_close(f, c, -1, "out of memory");
				return false;
			}
			break;
		}
		/* the kind must follow the handshake's order */
		if ((c->state == CONN_HELLO && kind != FABRIC_KIND_HELLO) ||
		    (c->state == CONN_AUTH && kind != FABRIC_KIND_AUTH) ||
		    (c->state == CONN_UP && kind != FABRIC_KIND_MSG) || c->state == CONN_CONNECTING) {
			conn_close(f, c, FABRIC_REFUSE_MALFORMED, "frame out of order");
			return false;
		}
		if (kind == FABRIC_KIND_HELLO)
			on_hello(f, c, fr + FABRIC_FRAME_HEADER, len);
		else if (kind == FABRIC_KIND_AUTH)
			on_auth(f, c, fr + FABRIC_FRAME_HEADER, len);
		else
			on_message(f, c, fr, len);
		pos += total;
	}
	if (c->state == CONN_CLOSED)
		return false;
	memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
	c->rlen -= pos;
	if (c->state == CONN_UP && c->rcap < RBUF_INITIAL && c->rlen <= RBUF_INITIAL) {
		uint8_t *nb = realloc(c->rbuf, RBUF_INITIAL);

		if (nb != NULL) {
			c->rbuf = nb;
			c->rcap = RBUF_INITIAL;
		}
	}
	return true;
}

/* Reads what the socket has and handles every whole frame in it. */
static void
conn_read(struct fabric *f, struct conn *c)
{
	bool tls_pending = false;
	int rounds;

	c->read_wants_write = false;
	/* TLS: what OpenSSL holds decrypted is never seen by epoll: read it all */
	for (rounds = 0; c->state != CONN_CLOSED && (rounds < 8 || tls_pending); rounds++) {
		size_t space;
		ssize_t n;

		if (c->rbuf == NULL) {
			c->rcap = c->state == CONN_UP ? RBUF_INITIAL : RBUF_HANDSHAKE;
			c->rbuf = malloc(c->rcap);
			if (c->rbuf == NULL) {
				conn_close(f, c, -1, "out of memory");
				return;
			}
		}
		space = c->rcap - c->rlen;
		/* TLS: a sender may write through the same SSL object (under the
		 * peer's lock), so the read takes that lock too */
		peer_lock(c->ssl != NULL ? c->peer : NULL);
		n = conn_recv(c, c->rbuf + c->rlen, space);
		tls_pending = c->ssl != NULL && SSL_pending(c->ssl) > 0;
		peer_unlock(c->ssl != NULL ? c->peer : NULL);
		if (n == 0) {
			if (c->rlen != 0)
				conn_close(f, c, FABRIC_REFUSE_MALFORMED, "closed within a frame");
			else
				conn_close(f, c, -1, "closed by the peer");
			return;
		}
		if (n < 0) {
			char why[96];

			if (n == -EAGAIN) {
				if (c->read_wants_write)
					conn_want_out_any(f, c);
				return;
			}
			conn_close(f, c, -1, n == -EPROTO ? "TLS error" : close_why(f, (int)-n, why, sizeof(why)));
			return;
		}
		c->rlen += (size_t)n;
		atomic_add(&f->stats.bytes_received, (uint64_t)n);
		if (c->peer != NULL)
			atomic_add(&c->peer->bytes_received, (uint64_t)n);
		if (!conn_parse(f, c))
			return;
		/* a short read emptied the socket: no recv just to hear EAGAIN
		 * (level-triggered epoll reports what arrives later); not so
		 * with TLS, which returns one record at a time */
		if ((size_t)n < space && c->ssl == NULL)
			return;
	}
}

/* Why a TLS handshake failed: the certificate check's verdict if it
 * failed, else OpenSSL's reason. */
static void
tls_why(const struct conn *c, char *why, size_t sz)
{
	long v = SSL_get_verify_result(c->ssl);
	char err[200];

	if (v != X509_V_OK) {
		snprintf(why, sz, "TLS handshake: its certificate: %s", X509_verify_cert_error_string(v));
		ERR_clear_error();
	} else {
		snprintf(why, sz, "TLS handshake: %s (a node without network.tls, or another CA?)",
		    tls_error(err, sizeof(err)));
	}
}

/* Advances the TLS handshake; done, it sends HELLO inside TLS. */
static void
tls_step(struct fabric *f, struct conn *c)
{
	char why[320];
	int r, e;

	ERR_clear_error();
	r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		c->state = CONN_HELLO;
		conn_want_out(f, c, false);
		send_hello(f, c);
		if (c->state != CONN_CLOSED)
			conn_read(f, c); /* its HELLO may have come with the handshake */
		return;
	}
	e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		conn_want_out(f, c, e == SSL_ERROR_WANT_WRITE);
		return;
	}
	if (e == SSL_ERROR_SYSCALL && ERR_peek_last_error() == 0)
		snprintf(why, sizeof(why), "TLS handshake: connection %s", errno != 0 ? strerror(errno) :
		    "closed by the peer (a node without network.tls, or one refusing our certificate?)");
	else
		tls_why(c, why, sizeof(why));
	conn_close(f, c, FABRIC_REFUSE_TLS, why);
}

/* Starts TLS on a connected socket (network.tls); else sends HELLO. */
static void
conn_start(struct fabric *f, struct conn *c)
{
	if (f->tls == NULL) {
		c->state = CONN_HELLO;
		send_hello(f, c);
		return;
	}
	c->ssl = SSL_new(f->tls);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
		ERR_clear_error();
		conn_close(f, c, -1, "cannot start TLS");
		return;
	}
	if (c->outgoing)
		SSL_set_connect_state(c->ssl);
	else
		SSL_set_accept_state(c->ssl);
	c->state = CONN_TLS;
	tls_step(f, c);
}

static void
accept_all(struct fabric *f)
{
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		struct conn *c;
		int fd = accept4(f->listen_fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_warn("fabric", "accept: %s", strerror(errno));
			return;
		}
		c = conn_new(f, fd, false, &ss);
		if (c == NULL) {
			close(fd);
			continue;
		}
		f->n_pending_in++;
		if (f->n_pending_in > PENDING_MAX) {
			conn_close(f, c, FABRIC_REFUSE_TOO_MANY, "too many unauthenticated connections");
			continue;
		}
		conn_start(f, c);
	}
}

static void
dialer_connect(struct fabric *f, struct dialer *d, uint64_t now)
{
	struct conn *c;
	int fd = socket(d->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	uint32_t cap = lost_cap_ms(f, d);

	d->due_ns = 0;
	d->attempt_ns = now;
	if (fd < 0)
		goto fail;
	if (connect(fd, (struct sockaddr *)&d->sa, d->salen) != 0 && errno != EINPROGRESS) {
		close(fd);
		goto fail;
	}
	c = conn_new(f, fd, true, &d->sa);
	if (c == NULL) {
		close(fd);
		goto fail;
	}
	c->dialer = d;
	d->conn = c;
	/* a lost node: a SYN unanswered for an ack timeout is given up and
	 * sent again (the kernel would wait 1 s, then 2 s, ...) */
	if (cap != 0 && (uint64_t)cap * MS < f->handshake_ns)
		c->deadline_ns = now + (uint64_t)cap * MS;
	return;
fail:
	dialer_failed(f, d, errno, now);
	dialer_schedule(f, d, now);
}

static void
conn_event(struct fabric *f, struct conn *c, uint32_t events)
{
	if (c->state == CONN_CLOSED)
		return;
	if (c->state == CONN_CONNECTING) {
		int err = 0;
		socklen_t l = sizeof(err);

		if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
		if (err != 0) {
			if (c->dialer != NULL) {
				dialer_failed(f, c->dialer, err, clock_mono_ns());
			} else {
				atomic_inc(&f->stats.connect_failures);
				log_debug("fabric", "cannot connect to %s: %s", c->remote, strerror(err));
			}
			conn_close(f, c, -1, strerror(err));
			return;
		}
		if (c->dialer != NULL)
			dialer_reached(c->dialer);
		/* connected: the handshake has its full time from here */
		c->deadline_ns = clock_mono_ns() + f->handshake_ns;
		f->timers_dirty = true;
		conn_start(f, c);
		return;
	}
	if (c->state == CONN_TLS) {
		tls_step(f, c);
		return;
	}
	if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) || (c->read_wants_write && (events & EPOLLOUT)))
		conn_read_unless_lent(f, c, false);
	if (c->state != CONN_CLOSED && (events & EPOLLOUT))
		conn_flush(f, c);
}

/*
 * conn_read (after the frames already in the buffer, with parse_first),
 * unless the connection is lent: then its borrower reads (an error or
 * hang-up it sees too, and it returns the connection at once).
 */
static void
conn_read_unless_lent(struct fabric *f, struct conn *c, bool parse_first)
{
	struct peer *p = c->ssl == NULL && c->state == CONN_UP ? c->peer : NULL;

	if (p != NULL) {
		bool lent, close_now;

		pthread_mutex_lock(&p->lock);
		lent = c->lent;
		/* returned with a close to finish: its reads end at our own
		 * shutdown, which is not the peer's doing */
		close_now = !lent && c->close_deferred;
		c->reading = !lent && !close_now;
		/* frames a borrower left (its buffer may even be full): first */
		if (!lent && c->pending) {
			parse_first = true;
			c->pending = false;
		}
		pthread_mutex_unlock(&p->lock);
		if (close_now)
			conn_close(f, c, c->deferred_refusal, c->deferred_why);
		if (lent || close_now)
			return;
	}
	if (!parse_first || conn_parse(f, c))
		conn_read(f, c);
	if (p != NULL) {
		pthread_mutex_lock(&p->lock);
		c->reading = false;
		c->lendable = true;
		pthread_mutex_unlock(&p->lock);
	}
}

/* Fabric thread, woken: connections returned by their borrowers with
 * frames in the buffer or a close to finish. */
static void
conns_returned(struct fabric *f)
{
	struct conn *c, *next;

	for (c = f->conns; c != NULL; c = next) {
		bool pending = false, close_now = false;

		next = c->next;
		if (c->peer == NULL || c->state != CONN_UP)
			continue;
		pthread_mutex_lock(&c->peer->lock);
		if (!c->lent && c->pending) {
			pending = true;
			close_now = c->close_deferred;
			c->pending = false;
		}
		pthread_mutex_unlock(&c->peer->lock);
		if (close_now)
			conn_close(f, c, c->deferred_refusal, c->deferred_why);
		else if (pending)
			conn_read_unless_lent(f, c, true);
	}
}

/* Reports the nodes whose grace period ended without a new connection. */
static void
peers_down(struct fabric *f, uint64_t now, uint64_t *next)
{
	uint64_t down[PEERS_MAX];
	char where[64];
	unsigned i, n = 0;

	pthread_mutex_lock(&f->lock);
	for (i = 0; i < f->n_peers; i++) {
		struct peer *p = f->peers[i];

		if (p->down_at_ns == 0 || p->conn != NULL)
			continue;
		if (p->down_at_ns <= now) {
			p->down_at_ns = 0;
			down[n++] = p->node_id;
		} else if (p->down_at_ns < *next) {
			*next = p->down_at_ns;
		}
	}
	pthread_mutex_unlock(&f->lock);
	for (i = 0; i < n; i++) {
		struct send_item *drop = NULL;
		uint64_t dropped = 0;
		struct peer *p;

		atomic_sub(&f->stats.peers_connected, 1);
		pthread_mutex_lock(&f->lock);
		p = peer_find(f, down[i]);
		snprintf(where, sizeof(where), "%s", p->address);
		pthread_mutex_unlock(&f->lock);
		log_info("fabric", "node %016llx at %s is unreachable", (unsigned long long)down[i], where);
		if (f->on_peer != NULL)
			f->on_peer(f->arg, down[i], false);
		/* What waited for a connection is dropped, now that its
		 * senders were told the node is down (an rpc caller fails
		 * with -EHOSTDOWN, queues no copy after this, and the data
		 * path may run the operation elsewhere): a copy delivered when
		 * the node is reachable again, seconds later, would run after
		 * what replaced it (the fault-injection test's full schedule,
		 * seed 9: an unlink proxied as its caller was isolated ran at
		 * the heal, 2.3 s later, after the name was written again).
		 * No connection attaches meanwhile: only this thread attaches
		 * one. */
		pthread_mutex_lock(&p->lock);
		if (p->conn == NULL) {
			drop = p->head;
			p->head = p->tail = NULL;
			p->queued = 0;
		}
		pthread_mutex_unlock(&p->lock);
		while (drop != NULL) {
			struct send_item *it = drop;

			drop = it->next;
			free(it);
			dropped++;
		}
		if (dropped > 0)
			atomic_add(&f->stats.send_queue_dropped, dropped);
	}
}

/* Runs due timers; returns the ms until the next one (-1: none). */
static int
timers_run(struct fabric *f)
{
	uint64_t now = clock_mono_ns(), next = UINT64_MAX;
	struct dialer *d;
	struct conn *c, *cn;

	for (c = f->conns; c != NULL; c = cn) {
		cn = c->next;
		if (c->state == CONN_UP)
			continue;
		if (c->deadline_ns <= now) {
			if (c->state == CONN_CONNECTING) {
				atomic_inc(&f->stats.connect_failures);
				conn_close(f, c, -1, "connect timed out");
			} else {
				conn_close(f, c, FABRIC_REFUSE_TIMEOUT, "no authentication in time");
			}
		} else if (c->deadline_ns < next) {
			next = c->deadline_ns;
		}
	}
	peers_down(f, now, &next);
	pthread_mutex_lock(&f->lock);
	for (d = f->dialers; d != NULL; d = d->next) {
		if (d->conn != NULL || d->due_ns == 0 || d->self)
			continue;
		if (d->due_ns <= now) {
			struct peer *p = d->node_id != 0 ? peer_find(f, d->node_id) : NULL;

			if (p != NULL && p->conn != NULL) {
				d->due_ns = 0; /* reachable through another connection */
				continue;
			}
			dialer_connect(f, d, now);
			if (d->conn != NULL)
				continue;
		}
		if (d->due_ns != 0 && d->due_ns < next)
			next = d->due_ns;
	}
	pthread_mutex_unlock(&f->lock);
	for (c = f->conns; c != NULL; c = c->next)
		if (c->state != CONN_UP && c->deadline_ns < next)
			next = c->deadline_ns;
	f->timer_due_ns = next;
	f->timers_dirty = false;
	if (next == UINT64_MAX)
		return -1;
	now = clock_mono_ns();
	return next <= now ? 0 : (int)((next - now + MS - 1) / MS);
}

/*
 * The epoll timeout: runs the timers only when one is due or the set of
 * deadlines may have changed (a connection opened or closed, a wake-up);
 * a message arriving costs no walk over the connections and dialers.
 */
static int
timers_next(struct fabric *f)
{
	uint64_t now;

	if (f->timers_dirty)
		return timers_run(f);
	if (f->timer_due_ns == UINT64_MAX)
		return -1;
	now = clock_mono_ns();
	if (now >= f->timer_due_ns)
		return timers_run(f);
	return (int)((f->timer_due_ns - now + MS - 1) / MS);
}

static void *
fabric_thread(void *arg)
{
	struct fabric *f = arg;
	struct epoll_event evs[64];

	while (!atomic_load_acquire(&f->stop)) {
		int timeout = timers_next(f);
		int i, n = epoll_wait(f->epoll_fd, evs, 64, timeout);

		if (n < 0 && errno != EINTR) {
			log_error("fabric", "epoll_wait: %s", strerror(errno));
			break;
		}
		for (i = 0; i < n; i++) {
			void *tag = evs[i].data.ptr;

			if (tag == &tag_listen) {
				accept_all(f);
			} else if (tag == &tag_wake) {
				uint64_t v;

				if (read(f->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
					log_warn("fabric", "eventfd: %s", strerror(errno));
				f->timers_dirty = true; /* a dialer was added */
				conns_returned(f);
			} else {
				conn_event(f, tag, evs[i].events);
			}
		}
		while (f->zombies != NULL) {
			struct conn *c = f->zombies;

			f->zombies = c->next;
			conn_free(c);
		}
	}
	return NULL;
}
