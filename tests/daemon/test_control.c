// SPDX-License-Identifier: MIT
/*
 * test_control.c - the JSON-RPC control server against well-behaved and
 * hostile clients: the envelope rules of JSON-RPC 2.0 through
 * ctl_dispatch(), then the socket server on a real event loop (garbage,
 * an endless line, a client that never reads, too many connections, a
 * crowd of connections that never finish a request, a request cut by
 * EOF, stale and live socket files).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>

#include "check.h"
#include "common/evloop.h"
#include "common/log.h"
#include "daemon/control.h"

static int m_echo(void *opaque, struct json_object *params, struct json_object **result, char *err,
		  size_t err_len)
{
	*result = json_object_get(params);
	return 0;
}

static int m_fail(void *opaque, struct json_object *params, struct json_object **result, char *err,
		  size_t err_len)
{
	snprintf(err, err_len, "refused on purpose");
	return -1000;
}

static int m_count(void *opaque, struct json_object *params, struct json_object **result, char *err,
		   size_t err_len)
{
	(*(int *)opaque)++;
	return 0;
}

static int calls;

static const struct ctl_method methods[] = {
	{"echo", m_echo},
	{"fail", m_fail},
	{"count", m_count},
	{NULL, NULL},
};

/* --- the envelope, without sockets --- */

static struct json_object *dispatch(const char *line)
{
	char *reply = ctl_dispatch(methods, &calls, line, strlen(line));
	struct json_object *obj;

	if (!reply)
		return NULL;
	obj = json_tokener_parse(reply);
	CHECK_MSG(obj, "reply is not JSON: %s", reply);
	free(reply);
	return obj;
}

/* The error code of a reply object, 0 if it is a success. */
static int error_code(struct json_object *reply)
{
	struct json_object *err, *code;

	if (!json_object_object_get_ex(reply, "error", &err))
		return 0;
	json_object_object_get_ex(err, "code", &code);
	return json_object_get_int(code);
}

static void expect_error(const char *line, int code)
{
	struct json_object *r = dispatch(line);

	CHECK_MSG(r && error_code(r) == code, "%s: expected error %d, got %s", line, code,
		  r ? json_object_to_json_string(r) : "no reply");
	json_object_put(r);
}

static void test_envelope(void)
{
	struct json_object *r, *v;
	char *deep;

	r = dispatch("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"echo\",\"params\":[1,\"x\"]}");
	CHECK_MSG(r && !error_code(r), "echo failed");
	CHECK_MSG(json_object_object_get_ex(r, "id", &v) && json_object_get_int(v) == 7, "id lost");
	CHECK_MSG(json_object_object_get_ex(r, "result", &v) && json_object_array_length(v) == 2,
		  "params not echoed");
	json_object_put(r);

	r = dispatch("{\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"method\":\"fail\"}");
	CHECK_MSG(r && error_code(r) == -1000, "application error code lost");
	CHECK_MSG(json_object_object_get_ex(r, "id", &v) &&
			  !strcmp(json_object_get_string(v), "abc"),
		  "string id lost");
	json_object_put(r);

	expect_error("garbage", CTL_ERR_PARSE);
	expect_error("{\"jsonrpc\":\"2.0\"", CTL_ERR_PARSE);
	expect_error("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\"} trailing", CTL_ERR_PARSE);
	expect_error("{} {}", CTL_ERR_PARSE);
	expect_error("42", CTL_ERR_INVALID_REQUEST);
	expect_error("null", CTL_ERR_INVALID_REQUEST);
	expect_error("[]", CTL_ERR_INVALID_REQUEST);
	expect_error("{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"echo\"}", CTL_ERR_INVALID_REQUEST);
	expect_error("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":5}", CTL_ERR_INVALID_REQUEST);
	expect_error("{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"echo\"}",
		     CTL_ERR_INVALID_REQUEST);
	expect_error("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":3}",
		     CTL_ERR_INVALID_REQUEST);
	expect_error("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"nope\"}",
		     CTL_ERR_METHOD_NOT_FOUND);

	/*
	 * A key given twice: json-c keeps the last silently, so a device-add
	 * would run with a value its caller may not have meant.  Refused at
	 * any depth; the same key in two objects or a key-like text in a
	 * string value is no duplicate.
	 */
	expect_error("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"id\":2}",
		     CTL_ERR_INVALID_REQUEST);
	expect_error("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\","
		     "\"params\":[{\"a\":1,\"b\":{\"size\":1, \"size\" :2}}]}",
		     CTL_ERR_INVALID_REQUEST);
	r = dispatch("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":"
		     "[{\"a\":\"\\\"a\\\":\"},{\"a\":1}, \"x:\"]}");
	CHECK_MSG(r && !error_code(r), "no duplicate key, yet refused: %s",
		  r ? json_object_to_json_string(r) : "no reply");
	json_object_put(r);

	/*
	 * json-c, when not strict, takes a comment that runs to the end of
	 * an unfinished value as the end of the text and returns the value
	 * it was inside of: here the outer "fail" call's params, a batch
	 * that would run "echo".  Comments are no JSON: a parse error.
	 */
	expect_error("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"fail\",\"params\":"
		     "[{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"echo\"}] // ",
		     CTL_ERR_PARSE);
	expect_error("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\"} /* */", CTL_ERR_PARSE);

	/* A NUL inside the line is not JSON, whatever follows. */
	{
		static const char nul[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\0\"method\":\"echo\"}";
		char *reply = ctl_dispatch(methods, &calls, nul, sizeof(nul) - 1);

		CHECK_MSG(reply && strstr(reply, "-32700"), "NUL accepted: %s", reply);
		free(reply);
	}

	/* Nesting far beyond the depth limit must fail cleanly, not recurse away. */
	deep = malloc(20001);
	memset(deep, '[', 10000);
	memset(deep + 10000, ']', 10000);
	deep[20000] = '\0';
	expect_error(deep, CTL_ERR_PARSE);
	free(deep);

	/* Notifications run but get no reply, alone or in a batch. */
	calls = 0;
	r = dispatch("{\"jsonrpc\":\"2.0\",\"method\":\"count\"}");
	CHECK_MSG(!r && calls == 1, "notification answered or not run");
	r = dispatch("[{\"jsonrpc\":\"2.0\",\"method\":\"count\"},"
		     "{\"jsonrpc\":\"2.0\",\"method\":\"count\"}]");
	CHECK_MSG(!r && calls == 3, "all-notification batch answered");

	r = dispatch("[1,{\"jsonrpc\":\"2.0\",\"method\":\"count\"},"
		     "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"echo\"}]");
	CHECK_MSG(r && json_object_is_type(r, json_type_array) && json_object_array_length(r) == 2,
		  "batch: expected two replies");
	if (r && json_object_array_length(r) == 2) {
		CHECK_MSG(error_code(json_object_array_get_idx(r, 0)) == CTL_ERR_INVALID_REQUEST,
			  "batch: bad element accepted");
		CHECK_MSG(!error_code(json_object_array_get_idx(r, 1)), "batch: echo failed");
	}
	json_object_put(r);

	/*
	 * One line of 64 KiB holds some 1500 calls; each a "stats" of every
	 * LUN, their replies took hundreds of MiB at once (and the loop for
	 * seconds).  CTL_MAX_BATCH calls run; one more and none does.
	 */
	{
		static const char call[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"count\"},";
		size_t len = 2 + (CTL_MAX_BATCH + 1) * (sizeof(call) - 1);
		char *batch = malloc(len + 1);

		CHECK(batch);
		for (unsigned int n = CTL_MAX_BATCH; n <= CTL_MAX_BATCH + 1; n++) {
			char *p = batch;

			*p++ = '[';
			for (unsigned int i = 0; i < n; i++, p += sizeof(call) - 1)
				memcpy(p, call, sizeof(call) - 1);
			p[-1] = ']';
			*p = '\0';
			calls = 0;
			r = dispatch(batch);
			if (n == CTL_MAX_BATCH)
				CHECK_MSG(r && json_object_is_type(r, json_type_array) &&
						  json_object_array_length(r) == n &&
						  calls == (int)n,
					  "a batch of %u: %d calls", n, calls);
			else
				CHECK_MSG(r && error_code(r) == CTL_ERR_INVALID_REQUEST && !calls,
					  "a batch of %u: %d calls, %s", n, calls,
					  r ? json_object_to_json_string(r) : "no reply");
			json_object_put(r);
		}
		free(batch);
	}
}

/* --- the socket server --- */

struct server {
	struct evloop *loop;
	struct ctl_server *ctl;
	pthread_t thread;
	char path[108];
};

static void *loop_main(void *arg)
{
	evloop_run(arg);
	return NULL;
}

static int server_start(struct server *s, const char *dir)
{
	char err[256];

	snprintf(s->path, sizeof(s->path), "%s/ctl.sock", dir);
	s->loop = evloop_new();
	s->ctl = ctl_server_new(s->path, s->loop, methods, &calls, err, sizeof(err));
	CHECK_MSG(s->ctl, "ctl_server_new: %s", err);
	if (!s->ctl)
		return -1;
	return pthread_create(&s->thread, NULL, loop_main, s->loop);
}

static void server_stop(struct server *s)
{
	evloop_stop(s->loop);
	pthread_join(s->thread, NULL);
	ctl_server_free(s->ctl);
	evloop_free(s->loop);
}

static int client_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		CHECK_MSG(0, "connect %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Read one line within 5 s; "" on EOF; NULL on timeout or error. */
static char *read_line(int fd, char *buf, size_t len)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	size_t got = 0;
	ssize_t n;

	while (got + 1 < len) {
		if (poll(&pfd, 1, 5000) != 1)
			return NULL;
		n = recv(fd, buf + got, 1, 0);
		if (n <= 0)
			break;
		if (buf[got] == '\n')
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	return buf;
}

static char *call(int fd, const char *req, char *buf, size_t len)
{
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req))
		return NULL;
	return read_line(fd, buf, len);
}

/* Wait for EOF (or a reset) within 5 s, skipping what is still queued. */
static bool closed_by_peer(int fd)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};
	char buf[4096];
	ssize_t n;

	for (;;) {
		if (poll(&pfd, 1, 5000) != 1)
			return false;
		n = recv(fd, buf, sizeof(buf), 0);
		if (n <= 0)
			return true;
	}
}

static void test_garbage_then_valid(struct server *s)
{
	char buf[4096];
	int fd = client_connect(s->path);

	if (fd < 0)
		return;
	CHECK_MSG(call(fd, "\x01\x02 not json {{{\n", buf, sizeof(buf)) && strstr(buf, "-32700"),
		  "garbage: %s", buf);
	CHECK_MSG(call(fd,
		       "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":{\"a\":1}}\n",
		       buf, sizeof(buf)) &&
			  strstr(buf, "\"result\":{\"a\":1}"),
		  "valid request after garbage: %s", buf);
	/* Blank lines and CRLF are tolerated. */
	CHECK_MSG(call(fd, "\n\r\n{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"echo\"}\r\n", buf,
		       sizeof(buf)) &&
			  strstr(buf, "\"id\":2"),
		  "CRLF: %s", buf);
	close(fd);
}

static void *flood(void *arg)
{
	int fd = *(int *)arg;
	static char junk[1 << 16];

	memset(junk, 'x', sizeof(junk));
	/* 4 MiB without a newline; the server hangs up long before. */
	for (int i = 0; i < 64; i++) {
		if (send(fd, junk, sizeof(junk), MSG_NOSIGNAL) < 0)
			break;
	}
	shutdown(fd, SHUT_WR);
	return NULL;
}

static void test_endless_line(struct server *s)
{
	char buf[4096];
	pthread_t t;
	int fd = client_connect(s->path);

	if (fd < 0)
		return;
	pthread_create(&t, NULL, flood, &fd);
	CHECK_MSG(read_line(fd, buf, sizeof(buf)) && strstr(buf, "too long"), "endless line: %s",
		  buf);
	CHECK_MSG(closed_by_peer(fd), "endless line: connection not closed");
	pthread_join(t, NULL);
	close(fd);
}

static void test_eof_without_newline(struct server *s)
{
	const char req[] = "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"echo\"}";
	char buf[4096];
	int fd = client_connect(s->path);

	if (fd < 0)
		return;
	send(fd, req, strlen(req), MSG_NOSIGNAL);
	shutdown(fd, SHUT_WR);
	CHECK_MSG(read_line(fd, buf, sizeof(buf)) && strstr(buf, "\"id\":9"),
		  "last request lost: %s", buf);
	CHECK_MSG(closed_by_peer(fd), "not closed after EOF");
	close(fd);
}

/* A client that sends and never reads must not stop the server for others. */
static void test_never_reads(struct server *s)
{
	const char req[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"echo\",\"params\":[0]}\n";
	char buf[4096];
	int hog = client_connect(s->path), fd;
	size_t sent = 0;

	if (hog < 0)
		return;
	fcntl(hog, F_SETFL, O_NONBLOCK);
	while (sent < (64u << 20) && send(hog, req, sizeof(req) - 1, MSG_NOSIGNAL) > 0)
		sent += sizeof(req) - 1;
	CHECK_MSG(sent < (64u << 20), "the server read 64 MiB it could not answer");
	fd = client_connect(s->path);
	CHECK_MSG(fd >= 0 &&
			  call(fd, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"echo\"}\n", buf,
			       sizeof(buf)) &&
			  strstr(buf, "\"id\":3"),
		  "server stuck behind a client that does not read");
	if (fd >= 0)
		close(fd);
	close(hog);
}

static void test_too_many(struct server *s)
{
	int fds[CTL_MAX_CLIENTS + 4];
	char buf[4096];
	int fd;

	for (int i = 0; i < CTL_MAX_CLIENTS + 4; i++)
		fds[i] = client_connect(s->path);
	/* Connections beyond the limit are closed at once. */
	CHECK_MSG(closed_by_peer(fds[CTL_MAX_CLIENTS + 3]), "connection over the limit kept");
	for (int i = 0; i < CTL_MAX_CLIENTS + 4; i++)
		close(fds[i]);
	/* Once they are gone, new ones are served again. */
	usleep(100000);
	fd = client_connect(s->path);
	CHECK_MSG(fd >= 0 &&
			  call(fd, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"echo\"}\n", buf,
			       sizeof(buf)) &&
			  strstr(buf, "\"id\":4"),
		  "not served after the crowd left");
	if (fd >= 0)
		close(fd);
}

/*
 * Sixteen connections that never finish a request (leaked by some script,
 * or a slowloris trickling bytes) must not lock everyone else out: once
 * the oldest has gone CTL_IDLE_EVICT_MS (here shortened) without a
 * complete line, a new client takes its place.
 */
static void test_idle_crowd(struct server *s)
{
	int fds[CTL_MAX_CLIENTS];
	char buf[4096];
	int fd, closed = 0;

	ctl_server_set_idle_evict_ms(s->ctl, 400);
	for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
		fds[i] = client_connect(s->path);
		if (fds[i] >= 0)
			send(fds[i], "{", 1, MSG_NOSIGNAL);
	}
	usleep(600000);
	/* A trickle that never ends a line is not activity. */
	for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
		if (fds[i] >= 0)
			send(fds[i], " ", 1, MSG_NOSIGNAL);
	}
	fd = client_connect(s->path);
	CHECK_MSG(fd >= 0 &&
			  call(fd, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"echo\"}\n", buf,
			       sizeof(buf)) &&
			  strstr(buf, "\"id\":5"),
		  "locked out by %d connections that never finish a request", CTL_MAX_CLIENTS);
	if (fd >= 0)
		close(fd);
	/* Exactly one of the crowd made room. */
	for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
		struct pollfd pfd = {.fd = fds[i], .events = POLLIN};

		if (fds[i] >= 0 && poll(&pfd, 1, 0) == 1 && recv(fds[i], buf, sizeof(buf), 0) == 0)
			closed++;
	}
	CHECK_EQ(closed, 1);
	for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
	}
	usleep(100000);
	ctl_server_set_idle_evict_ms(s->ctl, CTL_IDLE_EVICT_MS);
}

static void test_socket_files(const char *dir)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct evloop *loop = evloop_new();
	struct ctl_server *srv, *srv2;
	char err[256];
	struct stat st;
	int fd;

	/* A stale socket (nobody listening) is replaced. */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/stale.sock", dir);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	srv = ctl_server_new(sa.sun_path, loop, methods, NULL, err, sizeof(err));
	CHECK_MSG(srv, "stale socket not replaced: %s", err);
	CHECK_MSG(!stat(sa.sun_path, &st) && (st.st_mode & 0777) == 0600, "socket mode %o",
		  st.st_mode & 0777);

	/* A live one is left alone. */
	srv2 = ctl_server_new(sa.sun_path, loop, methods, NULL, err, sizeof(err));
	CHECK_MSG(!srv2 && strstr(err, "in use"), "live socket taken over: %s", err);
	ctl_server_free(srv2);
	ctl_server_free(srv);
	CHECK_MSG(stat(sa.sun_path, &st) && errno == ENOENT, "socket left behind");

	/* A regular file is never removed. */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/file", dir);
	close(open(sa.sun_path, O_CREAT | O_WRONLY, 0600));
	srv = ctl_server_new(sa.sun_path, loop, methods, NULL, err, sizeof(err));
	CHECK_MSG(!srv && strstr(err, "not a socket"), "regular file: %s", err);
	CHECK_MSG(!stat(sa.sun_path, &st), "regular file removed");
	unlink(sa.sun_path);
	evloop_free(loop);
}

int main(void)
{
	char dir[] = "/tmp/vhostd-test-control.XXXXXX";
	struct server s;
	struct stat st;

	log_set_level(LOG_LVL_ERROR);
	test_envelope();
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	if (!server_start(&s, dir)) {
		test_garbage_then_valid(&s);
		test_endless_line(&s);
		test_eof_without_newline(&s);
		test_never_reads(&s);
		test_too_many(&s);
		test_idle_crowd(&s);
		test_garbage_then_valid(&s);
		server_stop(&s);
		CHECK_MSG(stat(s.path, &st) && errno == ENOENT, "control socket left behind");
	}
	test_socket_files(dir);
	rmdir(dir);
	printf("control: all checks passed\n");
	return 0;
}
