/* Typed reads of json-c objects whose content is not trusted (state and metadata files,
 * config.json): a member that is missing or of another type gives the caller's default. */
#ifndef KUASAR_JSON_H
#define KUASAR_JSON_H

#include <json-c/json.h>
#include <stdint.h>

const char *jget_str(json_object *o, const char *key, const char *dflt);
int64_t jget_int(json_object *o, const char *key, int64_t dflt);

#endif
