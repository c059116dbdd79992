/*
 * admin: the commands mcring answers itself (version, verbosity, quit,
 * stats, stats backends, stats settings, stats reset).
 */
#ifndef MCRING_ADMIN_H
#define MCRING_ADMIN_H

struct request;
struct proto_req;

/* Answers pr, a command no backend sees, into req (completing it). */
void admin_dispatch(struct request *req, const struct proto_req *pr);

#endif
