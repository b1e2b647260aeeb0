// SPDX-License-Identifier: MIT
/*
 * control.c - JSON-RPC 2.0 on a unix socket, one request per line.
 *
 * Security model: any local process that can open the socket (mode 0600,
 * so the daemon's user) is a client, and a client may send anything.  Input
 * is kept in a fixed per-connection buffer of CTL_MAX_LINE bytes; a longer
 * line gets an error and the connection is closed.  Replies wait in an
 * output buffer, and while more than CTL_MAX_PENDING_OUT bytes are queued
 * the connection is not read, so a client that never reads throttles only
 * itself.  When all CTL_MAX_CLIENTS places are taken, a new connection
 * replaces the one that has gone longest without a complete request line
 * (if that is CTL_IDLE_EVICT_MS or more), so clients that leak their
 * connections or trickle bytes without ever finishing a line cannot lock
 * vhostctl out.  Parsing is bounded in depth (json-c recurses per level).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "common/evloop.h"
#include "common/log.h"
#include "control.h"

/* json-c recurses once per nesting level; refuse deep input early. */
#define CTL_MAX_DEPTH 32

struct ctl_client {
	struct ctl_server *srv;
	struct ctl_client *next;
	int fd;
	uint32_t watched;   /* epoll events currently asked for */
	bool eof;	    /* the peer shut down its sending side */
	bool closing;	    /* close as soon as the output is flushed */
	uint64_t active_ms; /* accepted, or its last complete request line */
	size_t in_len;
	char *in; /* CTL_MAX_LINE bytes */
	char *out;
	size_t out_len, out_off, out_cap;
};

struct ctl_server {
	struct evloop *loop;
	const struct ctl_method *methods;
	void *opaque;
	int fd;
	dev_t sock_dev; /* the socket file we made, so we unlink only it */
	ino_t sock_ino;
	unsigned int nclients;
	unsigned int idle_evict_ms;
	struct ctl_client *clients;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/* --- JSON-RPC envelope --- */

static struct json_object *reply_new(struct json_object *id)
{
	struct json_object *reply = json_object_new_object();

	json_object_object_add(reply, "jsonrpc", json_object_new_string("2.0"));
	/* json_object_get(NULL) is NULL, which json-c writes as null. */
	json_object_object_add(reply, "id", json_object_get(id));
	return reply;
}

static struct json_object *reply_error(int code, const char *msg, struct json_object *id)
{
	struct json_object *reply = reply_new(id);
	struct json_object *error = json_object_new_object();

	json_object_object_add(error, "code", json_object_new_int(code));
	json_object_object_add(error, "message", json_object_new_string(msg));
	json_object_object_add(reply, "error", error);
	return reply;
}

static struct json_object *reply_result(struct json_object *result, struct json_object *id)
{
	struct json_object *reply = reply_new(id);

	json_object_object_add(reply, "result", result);
	return reply;
}

/* Section 4: "id" is a String, a Number or Null. */
static bool id_valid(struct json_object *id)
{
	return !id || json_object_is_type(id, json_type_string) ||
	       json_object_is_type(id, json_type_int) || json_object_is_type(id, json_type_double);
}

static bool member_is_string(struct json_object *obj, const char *key, const char **val)
{
	struct json_object *m;

	if (!json_object_object_get_ex(obj, key, &m) || !json_object_is_type(m, json_type_string))
		return false;
	*val = json_object_get_string(m);
	return true;
}

static const struct ctl_method *method_find(const struct ctl_method *methods, const char *name)
{
	for (; methods->name; methods++) {
		if (!strcmp(methods->name, name))
			return methods;
	}
	return NULL;
}

static struct json_object *request_call(const struct ctl_method *m, void *opaque,
					struct json_object *params, struct json_object *id)
{
	struct json_object *result = NULL;
	char err[256] = "";
	int code;

	code = m->call(opaque, params, &result, err, sizeof(err));
	if (!code)
		return reply_result(result, id);
	json_object_put(result);
	return reply_error(code, err[0] ? err : "method failed", id);
}

/* One request object (section 4); returns its reply, or NULL for a notification. */
static struct json_object *request_handle(const struct ctl_method *methods, void *opaque,
					  struct json_object *req)
{
	struct json_object *id = NULL, *params = NULL, *reply;
	const struct ctl_method *m;
	const char *ver, *name;
	char msg[128];
	bool has_id;

	if (!json_object_is_type(req, json_type_object))
		return reply_error(CTL_ERR_INVALID_REQUEST, "a request must be an object", NULL);
	has_id = json_object_object_get_ex(req, "id", &id);
	if (!id_valid(id))
		return reply_error(CTL_ERR_INVALID_REQUEST,
				   "\"id\" must be a string, number or null", NULL);
	if (!member_is_string(req, "jsonrpc", &ver) || strcmp(ver, "2.0"))
		return reply_error(CTL_ERR_INVALID_REQUEST, "\"jsonrpc\" must be \"2.0\"", id);
	if (!member_is_string(req, "method", &name))
		return reply_error(CTL_ERR_INVALID_REQUEST, "\"method\" must be a string", id);
	if (json_object_object_get_ex(req, "params", &params) &&
	    !json_object_is_type(params, json_type_object) &&
	    !json_object_is_type(params, json_type_array))
		return reply_error(CTL_ERR_INVALID_REQUEST, "\"params\" must be an object or array",
				   id);

	m = method_find(methods, name);
	if (m) {
		reply = request_call(m, opaque, params, id);
	} else {
		snprintf(msg, sizeof(msg), "method not found: %.64s", name);
		reply = reply_error(CTL_ERR_METHOD_NOT_FOUND, msg, id);
	}
	/* A notification runs but is never answered (section 4.1). */
	if (!has_id) {
		json_object_put(reply);
		return NULL;
	}
	return reply;
}

/* Section 6: an array of requests; NULL when all were notifications. */
static struct json_object *batch_handle(const struct ctl_method *methods, void *opaque,
					struct json_object *batch)
{
	size_t i, n = json_object_array_length(batch);
	struct json_object *replies, *r;

	if (!n)
		return reply_error(CTL_ERR_INVALID_REQUEST, "empty batch", NULL);
	/* Their replies come at once, unthrottled: bounded here (control.h). */
	if (n > CTL_MAX_BATCH) {
		char msg[64];

		snprintf(msg, sizeof(msg), "a batch of more than %d calls", CTL_MAX_BATCH);
		return reply_error(CTL_ERR_INVALID_REQUEST, msg, NULL);
	}
	replies = json_object_new_array();
	for (i = 0; i < n; i++) {
		r = request_handle(methods, opaque, json_object_array_get_idx(batch, i));
		if (r)
			json_object_array_add(replies, r);
	}
	if (!json_object_array_length(replies)) {
		json_object_put(replies);
		return NULL;
	}
	return replies;
}

static bool only_space(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
			return false;
	}
	return true;
}

/*
 * Parse exactly one JSON value from @line.  The copy gets a NUL so that a
 * bare number at the end of the line is complete for the tokener.  Returns
 * false on any syntax error or trailing garbage; *@val may be NULL for a
 * literal null.
 */
static bool parse_value(const char *line, size_t len, struct json_object **val)
{
	struct json_tokener *tok;
	bool ok = false;
	size_t end;
	char *copy;

	*val = NULL;
	if (len > CTL_MAX_LINE || memchr(line, '\0', len))
		return false;
	copy = malloc(len + 1);
	tok = json_tokener_new_ex(CTL_MAX_DEPTH);
	if (!copy || !tok)
		goto out;
	memcpy(copy, line, len);
	copy[len] = '\0';
	/*
	 * Strict: no comments.  Not strict, json-c ends the text at a
	 * comment that runs to the end of an unfinished value and returns
	 * the value it was inside of, as if that were the request.
	 */
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	*val = json_tokener_parse_ex(tok, copy, (int)len + 1);
	end = json_tokener_get_parse_end(tok);
	if (json_tokener_get_error(tok) == json_tokener_success && end <= len + 1)
		ok = end >= len || only_space(copy + end, len - end);
	if (!ok) {
		json_object_put(*val);
		*val = NULL;
	}
out:
	json_tokener_free(tok);
	free(copy);
	return ok;
}

/*
 * How many keys @t spells: strings (json-c also takes 'single quotes')
 * followed by ':', outside comments.  @t parsed already, so each of them
 * is a key.
 */
static size_t text_keys(const char *t, size_t len)
{
	size_t n = 0;
	bool key = false;

	for (size_t i = 0; i < len; i++) {
		char c = t[i];

		if (c == '"' || c == '\'') {
			for (i++; i < len && t[i] != c; i++)
				i += t[i] == '\\';
			key = true;
			continue;
		}
		if (c == '/' && i + 1 < len && (t[i + 1] == '/' || t[i + 1] == '*')) {
			const char *end = t[i + 1] == '/' ? "\n" : "*/";
			const char *e = memmem(t + i + 2, len - i - 2, end, strlen(end));

			i = e ? (size_t)(e - t) + strlen(end) - 1 : len;
			continue;
		}
		if (c == ':' && key)
			n++;
		if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
			key = false;
	}
	return n;
}

/* The keys of @v's objects, at every depth (bounded by the tokener's). */
static size_t value_keys(struct json_object *v)
{
	size_t n = 0;

	if (json_object_is_type(v, json_type_object)) {
		json_object_object_foreach(v, key, m)
		{
			(void)key;
			n += 1 + value_keys(m);
		}
	} else if (json_object_is_type(v, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(v); i++)
			n += value_keys(json_object_array_get_idx(v, i));
	}
	return n;
}

bool ctl_json_dup_keys(const char *text, size_t len, struct json_object *v)
{
	/* json-c keeps the last of a key given twice: fewer keys than spelt. */
	return text_keys(text, len) != value_keys(v);
}

/* Serialize and drop @reply (may be NULL: no reply). */
static char *reply_string(struct json_object *reply)
{
	char *out;

	if (!reply)
		return NULL;
	out = strdup(json_object_to_json_string_ext(reply, JSON_C_TO_STRING_PLAIN |
								   JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(reply);
	return out;
}

char *ctl_dispatch(const struct ctl_method *methods, void *opaque, const char *line, size_t len)
{
	struct json_object *req, *reply;

	if (!parse_value(line, len, &req))
		reply = reply_error(CTL_ERR_PARSE, "parse error: not one valid JSON value", NULL);
	else if (ctl_json_dup_keys(line, len, req))
		/* Which value would the caller have meant?  Ask, do not guess. */
		reply = reply_error(CTL_ERR_INVALID_REQUEST, "a key appears twice in one object",
				    NULL);
	else if (json_object_is_type(req, json_type_array))
		reply = batch_handle(methods, opaque, req);
	else
		reply = request_handle(methods, opaque, req);
	json_object_put(req);
	return reply_string(reply);
}

/* --- connections --- */

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void client_free(struct ctl_client *c)
{
	struct ctl_server *srv = c->srv;
	struct ctl_client **pp;

	for (pp = &srv->clients; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	srv->nclients--;
	evloop_del(srv->loop, c->fd);
	close(c->fd);
	free(c->in);
	free(c->out);
	free(c);
}

static size_t client_pending(const struct ctl_client *c)
{
	return c->out_len - c->out_off;
}

static void client_queue(struct ctl_client *c, const char *s, size_t len)
{
	size_t need = c->out_len + len + 1;
	char *p;

	if (need > c->out_cap) {
		p = realloc(c->out, need * 2);
		if (!p) {
			log_error("control: out of memory, dropping a connection");
			c->closing = true;
			return;
		}
		c->out = p;
		c->out_cap = need * 2;
	}
	memcpy(c->out + c->out_len, s, len);
	c->out[c->out_len + len] = '\n';
	c->out_len += len + 1;
}

/* Send what is queued; false if the connection is dead. */
static bool client_flush(struct ctl_client *c)
{
	ssize_t n;

	while (client_pending(c)) {
		n = send(c->fd, c->out + c->out_off, client_pending(c), MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK;
		}
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
	return true;
}

/* Read once (the loop is level-triggered); false if the connection is dead. */
static bool client_read(struct ctl_client *c)
{
	ssize_t n;

	if (c->eof || c->closing || c->in_len == CTL_MAX_LINE ||
	    client_pending(c) >= CTL_MAX_PENDING_OUT)
		return true;
	n = recv(c->fd, c->in + c->in_len, CTL_MAX_LINE - c->in_len, 0);
	if (n > 0)
		c->in_len += (size_t)n;
	else if (n == 0)
		c->eof = true;
	else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		return false;
	return true;
}

static void client_line(struct ctl_client *c, const char *line, size_t len)
{
	char *reply;

	/* Blank lines are no request: they do not keep a place (evict_idle). */
	if (only_space(line, len))
		return;
	c->active_ms = mono_ms();
	reply = ctl_dispatch(c->srv->methods, c->srv->opaque, line, len);
	if (reply) {
		client_queue(c, reply, strlen(reply));
		free(reply);
	}
}

static bool client_has_line(const struct ctl_client *c)
{
	return memchr(c->in, '\n', c->in_len) != NULL;
}

/* Answer the complete lines, as long as the client keeps up with the replies. */
static void client_process(struct ctl_client *c)
{
	size_t used = 0, len;
	char *nl;

	while (!c->closing && client_pending(c) < CTL_MAX_PENDING_OUT) {
		nl = memchr(c->in + used, '\n', c->in_len - used);
		if (!nl)
			break;
		len = (size_t)(nl - (c->in + used));
		client_line(c, c->in + used, len);
		used += len + 1;
	}
	memmove(c->in, c->in + used, c->in_len - used);
	c->in_len -= used;

	if (c->closing || client_has_line(c))
		return;
	if (c->in_len == CTL_MAX_LINE) {
		/* No resync point inside an over-long line: answer and hang up. */
		char *msg = reply_string(
			reply_error(CTL_ERR_INVALID_REQUEST, "request line too long", NULL));

		if (msg)
			client_queue(c, msg, strlen(msg));
		free(msg);
		c->closing = true;
	} else if (c->eof) {
		/* A last request without a newline, as `printf ... | nc -U` sends. */
		client_line(c, c->in, c->in_len);
		c->in_len = 0;
		c->closing = true;
	}
}

static void client_watch(struct ctl_client *c)
{
	uint32_t ev = 0;

	if (client_pending(c))
		ev |= EPOLLOUT;
	if (!c->eof && !c->closing && c->in_len < CTL_MAX_LINE &&
	    client_pending(c) < CTL_MAX_PENDING_OUT)
		ev |= EPOLLIN;
	if (!ev) {
		client_free(c);
		return;
	}
	if (ev != c->watched && !evloop_mod(c->srv->loop, c->fd, ev))
		c->watched = ev;
}

static void client_cb(void *arg, uint32_t events)
{
	struct ctl_client *c = arg;

	if (!client_flush(c) || !client_read(c)) {
		client_free(c);
		return;
	}
	for (;;) {
		client_process(c);
		if (!client_flush(c)) {
			client_free(c);
			return;
		}
		if (client_pending(c) || c->closing || !client_has_line(c))
			break;
	}
	client_watch(c);
}

static void client_new(struct ctl_server *srv, int fd)
{
	struct ctl_client *c = calloc(1, sizeof(*c));

	if (c)
		c->in = malloc(CTL_MAX_LINE);
	if (!c || !c->in) {
		log_error("control: out of memory, refusing a connection");
		goto fail;
	}
	c->srv = srv;
	c->fd = fd;
	c->watched = EPOLLIN;
	c->active_ms = mono_ms();
	if (evloop_add(srv->loop, fd, EPOLLIN, client_cb, c)) {
		log_error("control: cannot watch a connection");
		goto fail;
	}
	c->next = srv->clients;
	srv->clients = c;
	srv->nclients++;
	return;
fail:
	if (c)
		free(c->in);
	free(c);
	close(fd);
}

/*
 * All places taken: close the connection that has gone longest without a
 * complete request, if that is long enough.  Bytes that never end a line
 * do not count as activity, so a trickle cannot keep a place forever.
 * (evloop_del() makes this safe even if its events are pending.)
 */
static bool evict_idle(struct ctl_server *srv)
{
	struct ctl_client *c, *oldest = NULL;
	uint64_t now = mono_ms();

	for (c = srv->clients; c; c = c->next) {
		if (!oldest || c->active_ms < oldest->active_ms)
			oldest = c;
	}
	if (!oldest || now - oldest->active_ms < srv->idle_evict_ms)
		return false;
	log_warn("control: %d connections, closing one idle for %" PRIu64 " ms", CTL_MAX_CLIENTS,
		 now - oldest->active_ms);
	client_free(oldest);
	return true;
}

static void ctl_accept(void *arg, uint32_t events)
{
	struct ctl_server *srv = arg;
	int fd;

	fd = accept4(srv->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
		    errno != ECONNABORTED)
			log_warn("control: accept: %s", strerror(errno));
		return;
	}
	if (srv->nclients >= CTL_MAX_CLIENTS && !evict_idle(srv)) {
		log_warn("control: more than %d connections, refusing one", CTL_MAX_CLIENTS);
		close(fd);
		return;
	}
	client_new(srv, fd);
}

/* --- the listening socket --- */

/* Is someone listening on @path?  A dead daemon's socket refuses. */
static bool socket_alive(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool alive;

	if (fd < 0)
		return true; /* cannot tell: do not remove it */
	alive = !connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) || errno != ECONNREFUSED;
	close(fd);
	return alive;
}

/* The folder a socket goes in must exist and take new entries. */
static int socket_dir_check(const char *path, char *err, size_t err_len)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;

	strcpy(dir, path);
	slash = strrchr(dir, '/');
	if (!slash)
		strcpy(dir, ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	if (access(dir, W_OK | X_OK)) {
		snprintf(err, err_len, "socket %s: cannot create it in %s: %s", path, dir,
			 strerror(errno));
		return -1;
	}
	return 0;
}

int ctl_socket_path_check(const char *path, bool *stale, char *err, size_t err_len)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;

	*stale = false;
	if (!path[0] || strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, err_len, "socket path empty or longer than %zu bytes: %s",
			 sizeof(sa.sun_path) - 1, path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	if (socket_dir_check(path, err, err_len))
		return -1;
	if (lstat(path, &st)) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, err_len, "socket %s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, err_len, "socket %s: exists and is not a socket", path);
		return -1;
	}
	if (socket_alive(&sa)) {
		snprintf(err, err_len, "socket %s: in use by another process", path);
		return -1;
	}
	*stale = true;
	return 0;
}

static int ctl_listen(struct ctl_server *srv, const char *path, char *err, size_t err_len)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	bool stale;
	mode_t old;
	int ret;

	if (ctl_socket_path_check(path, &stale, err, err_len))
		return -1;
	if (stale)
		unlink(path);
	strcpy(sa.sun_path, path);
	srv->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (srv->fd < 0)
		goto fail;
	/*
	 * The socket file gets its mode from the umask at bind time; there is
	 * no race-free chmod after it.  The daemon binds before it starts any
	 * thread, so changing the process-wide umask here is safe.
	 */
	old = umask(0177);
	ret = bind(srv->fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (ret)
		goto fail;
	strcpy(srv->path, path);
	if (!lstat(path, &st)) {
		srv->sock_dev = st.st_dev;
		srv->sock_ino = st.st_ino;
	}
	if (listen(srv->fd, CTL_MAX_CLIENTS))
		goto fail;
	return 0;
fail:
	snprintf(err, err_len, "socket %s: %s", path, strerror(errno));
	return -1;
}

/* Remove the socket file, unless someone replaced it since we bound it. */
static void ctl_unlink(struct ctl_server *srv)
{
	struct stat st;

	if (srv->path[0] && !lstat(srv->path, &st) && st.st_dev == srv->sock_dev &&
	    st.st_ino == srv->sock_ino)
		unlink(srv->path);
}

struct ctl_server *ctl_server_new(const char *path, struct evloop *loop,
				  const struct ctl_method *methods, void *opaque, char *err,
				  size_t err_len)
{
	struct ctl_server *srv = calloc(1, sizeof(*srv));
	int ret;

	if (!srv) {
		snprintf(err, err_len, "out of memory");
		return NULL;
	}
	srv->loop = loop;
	srv->methods = methods;
	srv->opaque = opaque;
	srv->fd = -1;
	srv->idle_evict_ms = CTL_IDLE_EVICT_MS;
	if (ctl_listen(srv, path, err, err_len))
		goto fail;
	ret = evloop_add(loop, srv->fd, EPOLLIN, ctl_accept, srv);
	if (ret) {
		snprintf(err, err_len, "socket %s: %s", path, strerror(-ret));
		goto fail;
	}
	return srv;
fail:
	if (srv->fd >= 0)
		close(srv->fd);
	ctl_unlink(srv);
	free(srv);
	return NULL;
}

void ctl_server_set_idle_evict_ms(struct ctl_server *srv, unsigned int ms)
{
	srv->idle_evict_ms = ms;
}

void ctl_server_free(struct ctl_server *srv)
{
	if (!srv)
		return;
	while (srv->clients)
		client_free(srv->clients);
	evloop_del(srv->loop, srv->fd);
	close(srv->fd);
	ctl_unlink(srv);
	free(srv);
}
