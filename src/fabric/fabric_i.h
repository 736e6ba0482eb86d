/*
 * fabric_i.h - inside the fabric: frame layout, handshake pieces, MACs.
 * Used by the fabric's own .c files, the unit test (which speaks the handshake from a
 * raw socket) and the fuzz target.  Not for other layers.
 *
 * Frame (docs/cluster.md), integers big-endian:
 *   u16 magic 0x5246 ("RF"), u8 protocol version, u8 kind, u32 length,
 *   length bytes of message, then for kind MSG a 16-byte MAC.
 */
#ifndef RECFS_FABRIC_FABRIC_I_H
#define RECFS_FABRIC_FABRIC_I_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <openssl/evp.h>

#include "fabric.h"

#define FABRIC_FRAME_MAGIC 0x5246
#define FABRIC_FRAME_HEADER 8
#define FABRIC_MAC_LEN 16
#define FABRIC_NONCE_LEN 32
#define FABRIC_PROOF_LEN 32
#define FABRIC_KEY_LEN 32

/* Frame kinds; numbers are wire format, never reuse. */
enum fabric_frame_kind {
	FABRIC_KIND_HELLO = 1,  /* unauthenticated HELLO message */
	FABRIC_KIND_AUTH = 2,   /* AUTH message (carries its own proof) */
	FABRIC_KIND_MSG = 3     /* any message, followed by its MAC */
};

static inline void fabric_put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void fabric_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline void fabric_put64(uint8_t *p, uint64_t v)
{
	fabric_put32(p, (uint32_t)(v >> 32));
	fabric_put32(p + 4, (uint32_t)v);
}
static inline uint16_t fabric_get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t fabric_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t fabric_get64(const uint8_t *p)
{
	return (uint64_t)fabric_get32(p) << 32 | fabric_get32(p + 4);
}

/*
 * 0; -EBADMSG (bad magic or kind); -EPROTONOSUPPORT (version differs
 * from the given one).  The length is not judged here.
 */
int fabric_frame_header_parse(const uint8_t hdr[FABRIC_FRAME_HEADER], uint8_t version, uint8_t *kind,
    uint32_t *len);
void fabric_frame_header_write(uint8_t hdr[FABRIC_FRAME_HEADER], uint8_t version, uint8_t kind, uint32_t len);

/* The HELLO message's content. */
struct fabric_hello {
	uint64_t node_id;
	char cluster_name[64];
	uint8_t nonce[FABRIC_NONCE_LEN];
	char listen_address[48];
	uint16_t listen_port;
};

/* 0 or -EBADMSG (a field missing, duplicated, of the wrong size). */
int fabric_hello_parse(const struct fabric_msg *m, struct fabric_hello *h);
/* The encoded size, or -EMSGSIZE. */
int fabric_hello_encode(const struct fabric_hello *h, void *buf, size_t cap);

/*
 * The proof a node sends in AUTH: HMAC-SHA256(secret, label, the sender's
 * nonce and id, the receiver's nonce and id, the cluster name).  The
 * sender's values come first, so a proof cannot be reflected back to its
 * maker.  0 or -EIO (OpenSSL failed).
 */
int fabric_auth_proof(const uint8_t *secret, size_t secret_len, const struct fabric_hello *from,
    const struct fabric_hello *to, uint8_t proof[FABRIC_PROOF_LEN]);
/* The key of the direction from -> to: the same derivation, another label. */
int fabric_auth_session_key(const uint8_t *secret, size_t secret_len, const struct fabric_hello *from,
    const struct fabric_hello *to, uint8_t key[FABRIC_KEY_LEN]);
/* Constant-time compare. */
int fabric_auth_equal(const uint8_t *a, const uint8_t *b, size_t len);
/* Random bytes from OpenSSL; 0 or -EIO. */
int fabric_auth_random(uint8_t *p, size_t len);

/*
 * One direction's MAC state: HMAC-SHA256 keyed by the session key, over
 * (sequence number u64, frame header, message), truncated to 16 bytes.
 * The sequence number counts the direction's MSG frames from 0 and is not
 * sent: a replayed, dropped or reordered frame fails its MAC.
 */
struct fabric_mac {
	EVP_CIPHER_CTX *ctx;   /* AES-256-GCM keyed with the direction's session key */
	uint64_t seq;          /* the next frame's sequence number (the nonce) */
};

int fabric_mac_init(struct fabric_mac *m, const uint8_t key[FABRIC_KEY_LEN]);
void fabric_mac_fini(struct fabric_mac *m);
/* Computes the MAC of the next frame and advances seq; 0 or -EIO. */
int fabric_mac_compute(struct fabric_mac *m, const uint8_t *hdr, const uint8_t *msg, size_t len,
    uint8_t mac[FABRIC_MAC_LEN]);
/* The same over a message in n pieces (the same MAC as over them joined:
 * the AAD is fed in order). */
int fabric_mac_compute_tail(struct fabric_mac *m, const uint8_t *hdr, const struct iovec *piece,
    unsigned n, uint8_t mac[FABRIC_MAC_LEN]);

#endif
