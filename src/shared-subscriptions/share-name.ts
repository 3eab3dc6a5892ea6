/**
 * `$share/<group>/<filter>` names (MQTT 5 section 4.8.2, accepted from MQTT 3.1.1 clients as Mosquitto, EMQX and
 * AWS IoT do). Pure functions.
 */
export const SHARE_PREFIX = '$share/'

export interface ShareName {
  /** The share name (group), never empty, without "/", "+" or "#". */
  group: string
  /** The topic filter the group's members share. */
  filter: string
  /** `<group>/<filter>`: one shared subscription. `$share/g/a` and `$share/g/b` are two, with their own members. */
  key: string
}

export function isShareFilter (topic: string): boolean {
  return topic.startsWith(SHARE_PREFIX)
}

/**
 * Splits a `$share/` filter, or says why it is refused. aedes has validated the whole string as a filter already
 * ("+" and "#" whole levels, "#" last), so what is left is the share name and an empty filter.
 */
export function parseShare (topic: string): ShareName | { problem: string } {
  if (!isShareFilter(topic)) return { problem: 'not a $share/ filter' }
  const rest = topic.slice(SHARE_PREFIX.length)
  const slash = rest.indexOf('/')
  if (slash < 0) return { problem: 'no topic filter after the share name' }
  const group = rest.slice(0, slash)
  const filter = rest.slice(slash + 1)
  if (group === '') return { problem: 'empty share name' }
  if (group.includes('+') || group.includes('#')) return { problem: 'wildcard in the share name' }
  if (filter === '') return { problem: 'empty topic filter' }
  return { group, filter, key: rest }
}

export function isShareName (parsed: ShareName | { problem: string }): parsed is ShareName {
  return !('problem' in parsed)
}

/** The `$share/` filter string of a share key. */
export function shareTopic (key: string): string {
  return SHARE_PREFIX + key
}
