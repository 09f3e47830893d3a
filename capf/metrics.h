/*
 * capf/metrics.h - the Prometheus metrics of capfd (capf/metrics.c): the
 * text that capfctl stats --prometheus prints and the optional HTTP
 * listener of [metrics] listen serves.
 */
#ifndef CAPF_METRICS_H
#define CAPF_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct server;

/* metrics_start() - set up the metrics of srv and, with [metrics] listen,
 * start the HTTP listener. Returns 0 or CAPF_ECONFIG (said in the log). */
int metrics_start(struct server *srv);

/* metrics_stop() - stop the listener and free the metrics; accepts a
 * server without them. On the main loop, before it closes. */
void metrics_stop(struct server *srv);

/* metrics_port() - the port the listener is bound to, 0 if none. */
unsigned metrics_port(const struct server *srv);

/* metrics_check_listen() - 0 if spec is PORT, ADDRESS:PORT or
 * [ADDRESS]:PORT, else CAPF_EINVAL. */
int metrics_check_listen(const char *spec);

/* metrics_render() - every metric in the Prometheus text format, into a
 * malloc'd *out of *len bytes (the caller frees it). On the main loop.
 * Returns 0 or CAPF_ENOMEM. */
int metrics_render(struct server *srv, char **out, size_t *len);

/* metrics_status() - what capfctl status adds: the devices (removed ones
 * left out), the operations scheduled, the LSCs issued and not
 * acknowledged (a census taken now) and the current CA's expiry (0:
 * none). Returns 0. */
int metrics_status(struct server *srv, uint64_t *devices, uint64_t *pending,
		   uint64_t *unacknowledged, int64_t *ca_not_after);

#endif /* CAPF_METRICS_H */
