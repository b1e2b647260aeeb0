// SPDX-License-Identifier: MIT
/*
 * check.c - where a failed check goes (see check.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"

static int report_fd = -1;
static bool abort_on_failure;

void check_abort_on_failure(void)
{
	abort_on_failure = true;
}

/* Not exit(): other threads may still be running; no atexit work. */
static _Noreturn void die(void)
{
	if (abort_on_failure)
		abort();
	_exit(1);
}

void check_report_fd(int fd)
{
	report_fd = fd;
}

static void report(const char *file, int line, const char *func, const char *expr, const char *fmt,
		   va_list ap)
{
	int fd = report_fd >= 0 ? report_fd : STDERR_FILENO;
	int saved_errno = errno; /* for a %m in @fmt */
	char msg[1024];
	size_t n;

	n = (size_t)snprintf(msg, sizeof(msg), "FAIL %s:%d: %s: ", file, line, func);
	if (expr && n < sizeof(msg))
		n += (size_t)snprintf(msg + n, sizeof(msg) - n, "check failed: %s: ", expr);
	if (n < sizeof(msg)) {
		errno = saved_errno;
		n += (size_t)vsnprintf(msg + n, sizeof(msg) - n, fmt, ap);
	}
	if (n > sizeof(msg) - 2)
		n = sizeof(msg) - 2;
	msg[n++] = '\n';
	/* What the test printed so far (a seed to replay, say) comes first. */
	fflush(stdout);
	fflush(stderr);
	/* One write, so lines from two threads or processes do not interleave. */
	if (write(fd, msg, n) < 0) {
		/* Nowhere left to say it: the exit status still does. */
	}
}

void check_fail(const char *file, int line, const char *func, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	report(file, line, func, NULL, fmt, ap);
	va_end(ap);
	die();
}

void check_fail_expr(const char *file, int line, const char *func, const char *expr,
		     const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	report(file, line, func, expr, fmt, ap);
	va_end(ap);
	die();
}
