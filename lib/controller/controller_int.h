/* lib/controller: the JSON helpers for the objects the controller stores and compares
 * (objects.c); pure functions of their arguments, shared by the informers and reconcile. */
#ifndef MM_CONTROLLER_INT_H
#define MM_CONTROLLER_INT_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/common.h"

/* metadata.<field> of o as a string, or NULL */
const char *ctrl_meta_str(struct json_object *o, const char *field);
/* Deletes the members of object o whose keys are not among keys[0..n). */
void ctrl_keep_only(struct json_object *o, const char *const *keys, size_t n);
/* Informer transforms: what the policy informer keeps (ctrl_slim) and what the ConfigMap and
 * NetworkPolicy informers keep (ctrl_owned_slim: digests in place of the rendered content). */
mm_err ctrl_slim(void *ud, struct json_object *o);
mm_err ctrl_owned_slim(void *ud, struct json_object *o);
/* o.a, or o.a.b when b is not NULL; NULL when missing */
struct json_object *ctrl_field(struct json_object *o, const char *a, const char *b);
/* Does a stored object (digests, from ctrl_owned_slim) hold what desired renders at a(.b)? */
bool ctrl_same(struct json_object *actual, struct json_object *desired, const char *a, const char *b);
bool ctrl_owners_same(struct json_object *actual, struct json_object *desired);
bool ctrl_label_same(struct json_object *actual, struct json_object *desired);

#endif
