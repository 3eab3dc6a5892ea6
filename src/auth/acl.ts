import { isReservedTopic, startsWithWildcard, topicMatches } from '../protocol/topic.js'

/**
 * The access control list, evaluated as Mosquitto's acl_file is: the rules of the client's user (or the anonymous
 * rules when it has none) plus every pattern rule with %c (client id) and %u (user name) substituted. A deny rule
 * that applies wins over any allow rule; with no allow rule that applies, access is denied.
 */

export interface AclRule {
  readonly effect: 'allow' | 'deny'
  readonly read: boolean
  readonly write: boolean
  /** A topic filter; in a pattern rule it may contain %c and %u. */
  readonly filter: string
}

export interface Acl {
  readonly anonymous: readonly AclRule[]
  readonly users: ReadonlyMap<string, readonly AclRule[]>
  readonly patterns: readonly AclRule[]
}

/** Who a client is for the ACL: its user name (from the password file or its certificate) or none, and its id. */
export interface AclIdentity {
  readonly username: string | undefined
  readonly clientId: string
}

/** The rules that apply to one client, patterns substituted. Computed once per client and ACL version. */
export function rulesFor (acl: Acl, who: AclIdentity): AclRule[] {
  const own = who.username === undefined ? acl.anonymous : acl.users.get(who.username) ?? []
  const out = [...own]
  for (const rule of acl.patterns) {
    const filter = substitute(rule, who)
    if (filter !== undefined) out.push({ ...rule, filter })
  }
  return out
}

/**
 * A pattern's filter for this client, or undefined when it does not apply. A user name or client id that contains
 * "+", "#" or "/" would widen an allow pattern ("devices/%c/#" with client id "+" is every device), so such an
 * allow pattern does not apply to that client (Mosquitto refuses "+" and "#" the same way). A widened deny
 * pattern only denies more, so it is kept.
 */
function substitute (rule: AclRule, who: AclIdentity): string | undefined {
  const usesUser = rule.filter.includes('%u')
  if (usesUser && who.username === undefined) return undefined
  const values = [rule.filter.includes('%c') ? who.clientId : '', usesUser ? who.username ?? '' : '']
  if (rule.effect === 'allow' && values.some(v => /[+#/]/.test(v))) return undefined
  return rule.filter.replaceAll('%c', who.clientId).replaceAll('%u', who.username ?? '')
}

/** Whether the rules let the client publish to `topic`. */
export function mayWrite (rules: readonly AclRule[], topic: string): boolean {
  return decide(rules, 'write', r => topicMatches(r.filter, topic))
}

/** Whether the rules let the client receive a message on `topic` (checked at every delivery). */
export function mayRead (rules: readonly AclRule[], topic: string): boolean {
  return decide(rules, 'read', r => topicMatches(r.filter, topic))
}

/**
 * Whether the rules let the client subscribe to `filter`: some read rule must cover every topic the filter
 * matches, and no deny rule may cover the whole filter. A filter that only overlaps a deny rule ("a/#" with
 * "deny a/secret") is granted; the denied topics are then withheld at delivery by mayRead.
 */
export function maySubscribe (rules: readonly AclRule[], filter: string): boolean {
  return decide(rules, 'read', r => filterCovers(r.filter, filter))
}

function decide (rules: readonly AclRule[], access: 'read' | 'write', applies: (r: AclRule) => boolean): boolean {
  let allowed = false
  for (const r of rules) {
    if (!r[access] || !applies(r)) continue
    if (r.effect === 'deny') return false
    allowed = true
  }
  return allowed
}

/** Whether every topic that `inner` matches is also matched by `outer` (both topic filters). */
export function filterCovers (outer: string, inner: string): boolean {
  if (outer === inner) return true
  // A filter starting with a wildcard never matches a "$" topic [MQTT-4.7.2-1], so "#" does not cover "$SYS/#".
  if (isReservedTopic(inner) && startsWithWildcard(outer)) return false
  const o = outer.split('/')
  const i = inner.split('/')
  for (let k = 0; k < o.length; k++) {
    const ol = o[k]
    // "a/#" matches "a" as well, so it also covers an inner filter that ends one level earlier.
    if (ol === '#') return true
    if (k >= i.length) return false
    const il = i[k]
    if (il === '#') return false
    if (ol === '+') continue
    if (il === '+' || ol !== il) return false
  }
  return o.length === i.length
}
