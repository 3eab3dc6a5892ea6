import { escapeGlob } from './keys.js'

/**
 * Whether an MQTT filter matches a topic: `+` one level (an empty one too, as mqemitter), `#` the rest; a filter
 * starting with a wildcard never matches a `$` topic ([MQTT-4.7.2-1]).
 */
export function topicMatches (filter: string, topic: string): boolean {
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false
  const f = filter.split('/')
  const t = topic.split('/')
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true
    if (i >= t.length) return false
    if (f[i] !== '+' && f[i] !== t[i]) return false
  }
  return f.length === t.length
}

/**
 * The HSCAN glob of a wildcard filter: its literal levels before the first wildcard, then anything (without the
 * separator, so `a/#` also finds `a` itself; what else it finds is filtered by topicMatches). undefined for an exact filter.
 */
export function wildcardPrefix (filter: string): string | undefined {
  const levels = filter.split('/')
  const first = levels.findIndex(level => level === '+' || level === '#')
  if (first < 0) return undefined
  const literal = levels.slice(0, first).join('/')
  return `${escapeGlob(literal)}*`
}
