/* SPDX-License-Identifier: MIT */
/*
 * kvopts.h - "key=value,key=value" option strings, as QEMU's -device and
 * our --blk / --scsi / --net take them, and the value parsers every device
 * model shares.
 *
 * A device model lists its keys with a bit each; kv_parse() splits the
 * string, refuses unknown and repeated keys and empty values, and hands
 * each pair to the model's setter.  ",," inside a value is a literal
 * comma (paths may contain commas).  Errors are one line in @err.
 */
#ifndef VHOSTD_COMMON_KVOPTS_H
#define VHOSTD_COMMON_KVOPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kv_key {
	const char *key;
	unsigned int bit;
};

/* Set one option; 0 or -EINVAL with a message in @err. */
typedef int (*kv_set_fn)(void *ctx, unsigned int bit, const char *key, const char *val, char *err,
			 size_t err_len);

/*
 * Split @str and call @set for each pair; *@seen gets the bits of the keys
 * given.  0, or -EINVAL with a message in @err (which may be NULL).
 */
int kv_parse(const char *str, const struct kv_key *keys, size_t nkeys, kv_set_fn set, void *ctx,
	     unsigned int *seen, char *err, size_t err_len);

/* Format a message into @err (if any); returns -EINVAL. */
int kv_err(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* on/yes/true, off/no/false. */
int kv_parse_bool(const char *v, bool *out);
/* Decimal only, no sign, no junk, within [min, max]: 0, -EINVAL or -ERANGE. */
int kv_parse_uint(const char *v, unsigned long min, unsigned long max, unsigned long *out);
/* "1073741824", "1G", "512k": a positive count of bytes, binary suffixes k/m/g/t. */
int kv_parse_bytes(const char *v, uint64_t *out);
/* Copy @v into @dst (size bytes with the NUL); -EINVAL if empty or too long. */
int kv_str(char *dst, size_t size, const char *v);
/* A name for logs, diskstats and thread names: [A-Za-z0-9_.-]+. */
bool kv_valid_id(const char *s);
/* Printable ASCII only. */
bool kv_printable(const char *s);

#endif /* VHOSTD_COMMON_KVOPTS_H */
