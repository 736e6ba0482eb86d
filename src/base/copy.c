/*
 * copy.c - copy_to_cold (copy.h).
 *
 * Measured on the build machine (a 128 KiB copy into a 1 GiB region
 * walked in order, as a write block fills): memcpy 14-16 us, these
 * non-temporal stores 7-8 us; a copy into cached memory 3 us either way.
 * AVX2 and AVX-512 stores measured no faster than SSE2's here, which need
 * no CPU dispatch.
 */
#include <stdint.h>
#include <string.h>

#include "copy.h"

#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#include <emmintrin.h>
#define COPY_COLD_NT 1
#endif

void
copy_to_cold(void *dst, const void *src, size_t n)
{
#ifdef COPY_COLD_NT
	uint8_t *d = dst;
	const uint8_t *s = src;
	size_t head, lines;

	if (n < COPY_COLD_MIN) {
		memcpy(dst, src, n);
		return;
	}
	head = (size_t)(-(uintptr_t)d & 63);
	memcpy(d, s, head);
	d += head;
	s += head;
	n -= head;
	for (lines = n / 64; lines > 0; lines--, d += 64, s += 64) {
		__m128i a = _mm_loadu_si128((const __m128i *)s);
		__m128i b = _mm_loadu_si128((const __m128i *)(s + 16));
		__m128i c = _mm_loadu_si128((const __m128i *)(s + 32));
		__m128i e = _mm_loadu_si128((const __m128i *)(s + 48));

		_mm_stream_si128((__m128i *)d, a);
		_mm_stream_si128((__m128i *)(d + 16), b);
		_mm_stream_si128((__m128i *)(d + 32), c);
		_mm_stream_si128((__m128i *)(d + 48), e);
	}
	memcpy(d, s, n % 64);
	_mm_sfence();
#else
	memcpy(dst, src, n);
#endif
}
