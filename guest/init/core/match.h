/* A small regular expression matcher for readiness patterns (`--ready log:REGEX`): no groups
 * or alternation, run as a state set over the pattern's atoms, so time is linear in the text
 * whatever the pattern, and nothing is allocated.
 *
 *   c     the character c          .      any character
 *   \c    c literally               [abc] [a-z] [^0-9]   a class (] first is literal)
 *   x*    zero or more of atom x    x+     one or more      x?   zero or one
 *   ^     first: anchors the start  $      last: anchors the end
 *
 * Anything else is literal. Unanchored, a match may start anywhere in the text. */
#ifndef KUASAR_MATCH_H
#define KUASAR_MATCH_H

#define RE_MAX_ATOMS 63

/* 1 if re matches text, 0 if not, -1 if re has more than RE_MAX_ATOMS atoms. */
int re_match(const char *re, const char *text);

#endif
