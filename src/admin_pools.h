/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * admin_pools: the pools and routes of the admin API as edits of a config
 * (GET, POST /pools, PATCH and DELETE /pools/NAME, GET and PUT /routes).
 *
 * Pure: JSON in, a config edited in place (a copy the caller then applies
 * like any other change) or a JSON document out; the HTTP side is
 * admin_http's. Every value goes through the same checks as the file's
 * (config_pool_set(), config_add_backend_str(), config_add_route(),
 * config_check_pools()).
 */
#ifndef MCRING_ADMIN_POOLS_H
#define MCRING_ADMIN_POOLS_H

#include <stddef.h>

#include <jansson.h>

struct config;

/* GET /pools: [{name, backends, replicas, ...}] (a new reference). */
json_t *admin_pools_json(const struct config *cfg);
/* GET /routes: {"PREFIX": "POOL", ..., "*": "POOL"} (a new reference). */
json_t *admin_routes_json(const struct config *cfg);

/*
 * POST /pools (name NULL, body the pool), PATCH /pools/NAME (body the
 * settings to change), DELETE /pools/NAME (body NULL), PUT /routes (name
 * NULL, routes set: body the whole table) applied to cfg. Returns 0, or an
 * HTTP status (400, 404, 409) with a message in err; cfg is then in an
 * unspecified state (the caller drops it).
 */
int admin_pools_post(struct config *cfg, json_t *body, char *err,
                     size_t errlen);
int admin_pools_patch(struct config *cfg, const char *name, json_t *body,
                      char *err, size_t errlen);
int admin_pools_delete(struct config *cfg, const char *name, char *err,
                       size_t errlen);
int admin_routes_put(struct config *cfg, json_t *body, char *err,
                     size_t errlen);

#endif
