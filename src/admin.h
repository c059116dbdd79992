/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * admin: the commands mcring answers itself (version, verbosity, quit,
 * stats, stats backends, stats settings, stats reset).
 */
#ifndef MCRING_ADMIN_H
#define MCRING_ADMIN_H

#include <stdbool.h>

struct evbuffer;
struct proto_req;
struct worker_group;
struct topology;

/*
 * Appends to out the answer to pr, a command no backend sees, given the
 * worker's topology t. Returns true when the connection closes after it
 * (quit, which has no answer).
 */
bool admin_answer(struct worker_group *g, const struct topology *t,
                  const struct proto_req *pr, struct evbuffer *out);

/* The lines of `stats` (backends false) or `stats backends`, and END. */
void admin_stats_lines(struct worker_group *g, const struct topology *t,
                       bool backends, struct evbuffer *out);

struct frag;
struct proto_str;

/* stats, stats backends, stats settings, stats reset: mcring's own; any
 * other stats ARGS goes to the backends. */
bool admin_owns_stats(const struct proto_str *args);

/* slabs, lru, lru_crawler, extstore: true for the lru_crawler dumps, which mcring
 * refuses as memcached does where dumps are not allowed; the rest goes to
 * the backends. */
bool admin_owns_tuning(const struct proto_req *pr);

/*
 * Appends to out the answer to a tuning command from the backends'
 * answers in frags[0..n) (each frag's buf: its lines, none for a
 * noreply): the first that is not OK (an error, or a failure's
 * SERVER_ERROR), else the first; none up: SERVER_ERROR no backend
 * available.
 */
void admin_merge_answers(const struct frag *frags, uint32_t n,
                         struct evbuffer *out);

/*
 * Appends to out the merge of the backends' answers to one stats ARGS, in
 * frags[0..n) (each frag's buf: its STAT and other lines, without END):
 * a STAT whose value is a number is summed over the backends, another
 * keeps its first value; other lines are concatenated; one END. When no
 * backend answered with lines, the first one-line answer that is not OK
 * (an error), else OK (stats detail on); none up: SERVER_ERROR no backend
 * available.
 */
void admin_merge_stats(const struct frag *frags, uint32_t n,
                       struct evbuffer *out);

#endif
