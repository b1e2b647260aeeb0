// SPDX-License-Identifier: MIT
/*
 * log.c - stderr logging with a level filter.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "util.h"

static atomic_int current_level = LOG_LVL_INFO;
/* The program named at the start of every line; set once in main(). */
static const char *ident = "vhostd";

static const char *const level_names[] = {
	[LOG_LVL_ERROR] = "error",
	[LOG_LVL_WARN] = "warn",
	[LOG_LVL_INFO] = "info",
	[LOG_LVL_DEBUG] = "debug",
};

void log_set_ident(const char *name)
{
	ident = name;
}

void log_set_level(enum log_level level)
{
	atomic_store(&current_level, level);
}

enum log_level log_get_level(void)
{
	return atomic_load(&current_level);
}

int log_level_parse(const char *name)
{
	for (unsigned int i = 0; i < ARRAY_SIZE(level_names); i++) {
		if (!strcmp(name, level_names[i]))
			return (int)i;
	}
	return -1;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	if ((int)level > atomic_load(&current_level))
		return;
	n = snprintf(line, sizeof(line), "%s: %s: ", ident, level_names[level]);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	/* One write per line so concurrent queue threads do not interleave. */
	fprintf(stderr, "%s\n", line);
}

void errbuf_vprintf(char *err, size_t len, const char *fmt, va_list ap)
{
	if (err && len)
		vsnprintf(err, len, fmt, ap);
}

void errbuf_printf(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	errbuf_vprintf(err, len, fmt, ap);
	va_end(ap);
}
