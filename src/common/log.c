// SPDX-License-Identifier: MIT
/*
 * log.c - one line per event, to stderr or a file, as text or JSON, with
 * a level filter.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

static atomic_int current_level = LOG_LVL_INFO;
static atomic_int log_format = LOG_FMT_TEXT;
/* Where lines go: stderr, or a file that log_reopen() replaces in place (dup2). */
static int log_fd = STDERR_FILENO;
static const char *log_path;
/* stderr is journald's stream: prefix syslog priorities ("<6>"). */
static bool journal_prefix;
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

void log_set_format(enum log_format fmt)
{
	atomic_store(&log_format, fmt);
}

int log_format_parse(const char *name)
{
	if (!strcmp(name, "text"))
		return LOG_FMT_TEXT;
	if (!strcmp(name, "json"))
		return LOG_FMT_JSON;
	return -1;
}

void log_detect_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	/* systemd.exec(5): "DEVICE:INODE" of the stream stderr is connected to. */
	journal_prefix = js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 &&
			 !fstat(STDERR_FILENO, &st) && st.st_dev == dev && st.st_ino == ino;
}

static int open_log(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
}

int log_set_file(const char *path)
{
	int fd = open_log(path);

	if (fd < 0)
		return -errno;
	log_fd = fd;
	log_path = path;
	journal_prefix = false;
	return 0;
}

int log_reopen(void)
{
	int fd;

	if (!log_path)
		return 0;
	fd = open_log(log_path);
	if (fd < 0)
		return -errno;
	/* Atomic for writers on other threads: log_fd never dangles. */
	if (dup2(fd, log_fd) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	close(fd);
	return 0;
}

/* Append @s to @out (at *@n, below @cap) as the inside of a JSON string. */
static void json_escape(char *out, size_t cap, size_t *n, const char *s)
{
	for (; *s && *n + 8 < cap; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			out[(*n)++] = '\\';
			out[(*n)++] = (char)c;
		} else if (c < 0x20) {
			*n += (size_t)snprintf(out + *n, cap - *n, "\\u%04x", c);
		} else {
			out[(*n)++] = (char)c;
		}
	}
	out[*n] = '\0';
}

/*
 * The subject of a message: by convention lines start "vda: ...",
 * "vda:q0: ..." or "sc0:0:1: ...": the word before the first ':' if it
 * is an id ([A-Za-z0-9_.-]) and ": " follows the colon-joined words.
 */
static size_t subject_len(const char *msg)
{
	size_t n = strspn(msg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-");
	size_t all = n + strspn(msg + n, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
					 "0123456789_.-:");

	if (!n || msg[n] != ':' || all < 2 || msg[all - 1] != ':' || msg[all] != ' ')
		return 0;
	return n;
}

static void format_json(char *line, size_t cap, enum log_level level, const char *msg)
{
	struct timespec ts;
	struct tm tm;
	size_t n, sub = subject_len(msg);
	char subject[64];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, cap, "{\"time\":\"%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, cap - n, ".%06ldZ\",\"level\":\"%s\",\"ident\":\"",
			      ts.tv_nsec / 1000, level_names[level]);
	json_escape(line, cap, &n, ident);
	if (sub && sub < sizeof(subject)) {
		memcpy(subject, msg, sub);
		subject[sub] = '\0';
		n += (size_t)snprintf(line + n, cap - n, "\",\"subject\":\"");
		json_escape(line, cap, &n, subject);
	}
	n += (size_t)snprintf(line + n, cap - n, "\",\"msg\":\"");
	json_escape(line, cap, &n, msg);
	snprintf(line + n, cap - n, "\"}");
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char prio[] = {[LOG_LVL_ERROR] = '3',
				    [LOG_LVL_WARN] = '4',
				    [LOG_LVL_INFO] = '6',
				    [LOG_LVL_DEBUG] = '7'};
	char msg[1024], line[2304];
	va_list ap;
	size_t n;

	if ((int)level > atomic_load(&current_level))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (atomic_load(&log_format) == LOG_FMT_JSON)
		format_json(line, sizeof(line) - 1, level, msg);
	else if (journal_prefix)
		snprintf(line, sizeof(line) - 1, "<%c>%s: %s: %s", prio[level], ident,
			 level_names[level], msg);
	else
		snprintf(line, sizeof(line) - 1, "%s: %s: %s", ident, level_names[level], msg);
	n = strlen(line);
	line[n++] = '\n';
	/* One write per line so concurrent queue threads do not interleave. */
	if (write(log_fd, line, n) < 0)
		return; /* nowhere left to say so */
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
