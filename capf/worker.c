/*
 * A worker: one thread, one libuv loop, one listening socket on the phone
 * port. Everything a connection does happens on its worker's loop; the
 * only things crossing threads are store completions (through the
 * worker's bridge) and the stop request (through stop_async).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capf/capfd.h"
#include "capf/conn_internal.h"
#include "capf/log.h"
#include "capf/signer.h"
#include "store/store.h"

static void on_connection(uv_stream_t *listener, int status)
{
	struct worker *w = listener->data;

	if (status < 0) {
		log_warn("worker %u: accept failed: %s", w->id, uv_strerror(status));
		return;
	}
	conn_accept(w, CONN_NATIVE);
}

static void on_cisco_connection(uv_stream_t *listener, int status)
{
	struct worker *w = listener->data;

	if (status < 0) {
		log_warn("worker %u: accept failed: %s", w->id, uv_strerror(status));
		return;
	}
	conn_accept(w, CONN_CISCO);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	int ret;

	uv_run(&w->loop, UV_RUN_DEFAULT);
	conn_fibers_release();
	ret = uv_loop_close(&w->loop);
	if (ret != 0)
		log_warn("worker %u: loop closed with handles left: %s", w->id, uv_strerror(ret));
	return NULL;
}

static void handle_noop_close(uv_handle_t *h)
{
	(void)h;
}

static void on_quiet_timeout(uv_timer_t *t)
{
	struct worker *w = t->data;

	store_wake(w->srv->store);
}

void worker_audit_quiet(struct worker *w)
{
	if (!uv_is_active((uv_handle_t *)&w->quiet_timer) &&
	    !uv_is_closing((uv_handle_t *)&w->quiet_timer))
		uv_timer_start(&w->quiet_timer, on_quiet_timeout, CAPFD_QUIET_AUDIT_MS, 0);
}

/* Once stopping and empty, the worker closes its remaining handles so that
 * uv_run() returns. */
void worker_maybe_finish(struct worker *w)
{
	if (!w->stopping || w->nconns > 0)
		return;
	if (uv_is_closing((uv_handle_t *)&w->stop_async))
		return;
	uv_timer_stop(&w->drain_timer);
	uv_close((uv_handle_t *)&w->drain_timer, handle_noop_close);
	/* Every connection woke the writer for its quiet events as it closed. */
	uv_timer_stop(&w->quiet_timer);
	uv_close((uv_handle_t *)&w->quiet_timer, handle_noop_close);
	uv_close((uv_handle_t *)&w->stop_async, handle_noop_close);
	bridge_close(&w->bridge);
	signer_chan_close(w->signer);
	w->signer = NULL;
}

static void on_drain_timeout(uv_timer_t *t)
{
	struct worker *w = t->data;
	struct conn *c = w->conns;

	log_warn("worker %u: shutdown timeout: cutting %u connections", w->id, w->nconns);
	while (c != NULL) {
		struct conn *next = conn_next(c);
		conn_shutdown(c, true);
		c = next;
	}
}

static void on_stop(uv_async_t *a)
{
	struct worker *w = a->data;

	if (w->stopping)
		return;
	w->stopping = true;
	uv_close((uv_handle_t *)&w->listener, handle_noop_close);
	if (w->cisco_on)
		uv_close((uv_handle_t *)&w->cisco_listener, handle_noop_close);

	struct conn *c = w->conns;
	while (c != NULL) {
		struct conn *next = conn_next(c);
		conn_shutdown(c, false);
		c = next;
	}
	if (CFG_LIVE(w->srv->cfg->shutdown_timeout_ms) > 0)
		uv_timer_start(&w->drain_timer, on_drain_timeout, CFG_LIVE(w->srv->cfg->shutdown_timeout_ms), 0);
	else
		on_drain_timeout(&w->drain_timer);
	worker_maybe_finish(w);
}

int worker_start(struct worker *w, struct server *srv, unsigned id, int listen_fd,
		 int cisco_fd)
{
	int ret;

	memset(w, 0, sizeof(*w));
	w->srv = srv;
	w->id = id;
	w->listen_fd = listen_fd;

	ret = uv_loop_init(&w->loop);
	if (ret < 0)
		return ret;
	uv_tcp_init(&w->loop, &w->listener);
	w->listener.data = w;
	ret = uv_tcp_open(&w->listener, listen_fd);
	if (ret < 0)
		goto fail;
	ret = uv_listen((uv_stream_t *)&w->listener, 1024, on_connection);
	if (ret < 0)
		goto fail;
	if (cisco_fd >= 0) {
		uv_tcp_init(&w->loop, &w->cisco_listener);
		w->cisco_listener.data = w;
		w->cisco_on = true;
		ret = uv_tcp_open(&w->cisco_listener, cisco_fd);
		if (ret < 0)
			goto fail;
		ret = uv_listen((uv_stream_t *)&w->cisco_listener, 1024, on_cisco_connection);
		if (ret < 0)
			goto fail;
	}
	uv_async_init(&w->loop, &w->stop_async, on_stop);
	w->stop_async.data = w;
	uv_timer_init(&w->loop, &w->drain_timer);
	w->drain_timer.data = w;
	uv_timer_init(&w->loop, &w->quiet_timer);
	w->quiet_timer.data = w;
	ret = bridge_init(&w->bridge, &w->loop);
	if (ret < 0)
		goto fail;
	ret = signer_chan_new(&w->loop, srv->cfg->signer_socket, srv->cfg->signer_queue,
			      srv->cfg->signer_timeout_ms, &w->signer);
	if (ret < 0)
		goto fail;

	ret = pthread_create(&w->thread, NULL, worker_main, w);
	if (ret != 0) {
		ret = -ret;
		goto fail;
	}
	return 0;
fail:
	/* Nothing ran on this loop yet: closing its handles here is safe. */
	uv_close((uv_handle_t *)&w->listener, NULL);
	if (w->cisco_on)
		uv_close((uv_handle_t *)&w->cisco_listener, NULL);
	if (uv_is_active((uv_handle_t *)&w->stop_async) || w->stop_async.loop != NULL)
		uv_close((uv_handle_t *)&w->stop_async, NULL);
	if (w->drain_timer.loop != NULL)
		uv_close((uv_handle_t *)&w->drain_timer, NULL);
	if (w->quiet_timer.loop != NULL)
		uv_close((uv_handle_t *)&w->quiet_timer, NULL);
	if (w->bridge.async.loop != NULL)
		uv_close((uv_handle_t *)&w->bridge.async, NULL);
	signer_chan_close(w->signer);
	w->signer = NULL;
	uv_run(&w->loop, UV_RUN_DEFAULT);
	uv_loop_close(&w->loop);
	return ret;
}

void worker_stop(struct worker *w)
{
	uv_async_send(&w->stop_async);
}

void worker_join(struct worker *w)
{
	pthread_join(w->thread, NULL);
}
