/*
 * admin: the commands mcring answers itself (version, verbosity, quit,
 * stats, stats backends, stats settings, stats reset).
 */
#ifndef MCRING_ADMIN_H
#define MCRING_ADMIN_H

#include <stdbool.h>

struct evbuffer;
struct proto_req;
struct proxy;
struct topology;

/*
 * Appends to out the answer to pr, a command no backend sees, given the
 * worker's topology t. Returns true when the connection closes after it
 * (quit, which has no answer).
 */
bool admin_answer(struct proxy *p, const struct topology *t,
                  const struct proto_req *pr, struct evbuffer *out);

#endif
