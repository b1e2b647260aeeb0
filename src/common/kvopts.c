// SPDX-License-Identifier: MIT
/*
 * kvopts.c - "key=value,..." option strings (kvopts.h).
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>

#include "kvopts.h"
#include "log.h"

int kv_err(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	errbuf_vprintf(err, len, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int kv_parse_bool(const char *v, bool *out)
{
	if (!strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "true")) {
		*out = true;
		return 0;
	}
	if (!strcmp(v, "off") || !strcmp(v, "no") || !strcmp(v, "false")) {
		*out = false;
		return 0;
	}
	return -EINVAL;
}

int kv_parse_uint(const char *v, unsigned long min, unsigned long max, unsigned long *out)
{
	unsigned long n = 0;

	if (!*v)
		return -EINVAL;
	for (; *v; v++) {
		unsigned long d = (unsigned long)(*v - '0');

		if (*v < '0' || *v > '9')
			return -EINVAL;
		/* n * 10 + d <= max, without overflow (and d > max: max - d wraps). */
		if (d > max || n > (max - d) / 10)
			return -ERANGE;
		n = n * 10 + d;
	}
	if (n < min)
		return -ERANGE;
	*out = n;
	return 0;
}

int kv_parse_bytes(const char *v, uint64_t *out)
{
	static const char suffixes[] = "kmgt";
	char num[24];
	unsigned int shift = 0;
	unsigned long n;
	size_t len = strlen(v);
	const char *sfx;

	if (!len || len >= sizeof(num))
		return -EINVAL;
	memcpy(num, v, len + 1);
	sfx = strchr(suffixes, num[len - 1] | 0x20);
	if (sfx) {
		shift = 10 * (unsigned int)(sfx - suffixes + 1);
		num[len - 1] = '\0';
	}
	if (kv_parse_uint(num, 1, ULONG_MAX >> shift, &n))
		return -EINVAL;
	*out = (uint64_t)n << shift;
	return 0;
}

int kv_str(char *dst, size_t size, const char *v)
{
	size_t n = strlen(v);

	if (!n || n >= size)
		return -EINVAL;
	memcpy(dst, v, n + 1);
	return 0;
}

bool kv_valid_id(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') &&
		    !(*s >= '0' && *s <= '9') && *s != '_' && *s != '-' && *s != '.')
			return false;
	}
	return true;
}

bool kv_printable(const char *s)
{
	for (; *s; s++) {
		if (*s < 0x20 || *s > 0x7e)
			return false;
	}
	return true;
}

int kv_parse(const char *str, const struct kv_key *keys, size_t nkeys, kv_set_fn set, void *ctx,
	     unsigned int *seen, char *err, size_t err_len)
{
	char key[32], val[4096];
	const char *p = str;
	int r;

	*seen = 0;
	if (err && err_len)
		err[0] = '\0';
	if (!str || !*str)
		return kv_err(err, err_len, "empty option string");

	while (*p) {
		unsigned int bit = 0;
		size_t klen = 0, vlen = 0;

		while (*p && *p != '=' && *p != ',') {
			if (klen + 1 >= sizeof(key))
				return kv_err(err, err_len, "option name too long");
			key[klen++] = *p++;
		}
		key[klen] = '\0';
		if (*p != '=')
			return kv_err(err, err_len, "'%s': key=value expected", key);
		p++;
		for (;;) {
			if (*p == ',' && p[1] == ',')
				p++;
			else if (*p == ',' || !*p)
				break;
			if (vlen + 1 >= sizeof(val))
				return kv_err(err, err_len, "%s: value too long", key);
			val[vlen++] = *p++;
		}
		val[vlen] = '\0';
		if (*p == ',' && !*++p)
			return kv_err(err, err_len, "trailing comma");

		for (size_t i = 0; i < nkeys; i++) {
			if (!strcmp(key, keys[i].key))
				bit = keys[i].bit;
		}
		if (!bit)
			return kv_err(err, err_len, "unknown option '%s'", key);
		if (*seen & bit)
			return kv_err(err, err_len, "option '%s' given twice", key);
		*seen |= bit;
		if (!vlen)
			return kv_err(err, err_len, "%s: empty value", key);
		r = set(ctx, bit, key, val, err, err_len);
		if (r)
			return r;
	}
	return 0;
}
