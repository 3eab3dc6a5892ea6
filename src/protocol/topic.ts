/** MQTT 3.1.1 topic rules (section 4.7), pure functions. */

const DOLLAR = 36
const PLUS = 43
const HASH = 35

export function isReservedTopic (topic: string): boolean {
  return topic.charCodeAt(0) === DOLLAR
}

export function startsWithWildcard (filter: string): boolean {
  const c = filter.charCodeAt(0)
  return c === PLUS || c === HASH
}

/**
 * Whether a topic filter matches a topic name. A filter that starts with a wildcard never matches a topic
 * that starts with "$" [MQTT-4.7.2-1]; "sport/#" also matches "sport" [MQTT-4.7.1-2].
 */
export function topicMatches (filter: string, topic: string): boolean {
  if (filter === topic) return true
  if (isReservedTopic(topic) && startsWithWildcard(filter)) return false
  let f = 0
  let t = 0
  while (f < filter.length) {
    const fc = filter.charCodeAt(f)
    if (fc === HASH) return true
    if (fc === PLUS) {
      while (t < topic.length && topic[t] !== '/') t++
      f++
    } else {
      const fEnd = nextSlash(filter, f)
      const tEnd = nextSlash(topic, t)
      if (t > topic.length || fEnd - f !== tEnd - t || !sameChars(filter, f, topic, t, fEnd - f)) return false
      f = fEnd
      t = tEnd
    }
    if (f === filter.length) return t === topic.length
    // Both sides are at a "/" now, or the topic ended.
    if (t >= topic.length) {
      // "a/#" matches "a": the rest of the filter must be exactly "/#".
      return filter.slice(f) === '/#'
    }
    f++
    t++
  }
  return t === topic.length && f === filter.length
}

/**
 * Whether `a` from `i` and `b` from `j` hold the same `length` characters. Compared in place: the delivery router
 * matches every copy against its client's filters, and a slice of each level was two strings per level per copy.
 */
function sameChars (a: string, i: number, b: string, j: number, length: number): boolean {
  for (let k = 0; k < length; k++) {
    if (a.charCodeAt(i + k) !== b.charCodeAt(j + k)) return false
  }
  return true
}

function nextSlash (s: string, from: number): number {
  const i = s.indexOf('/', from)
  return i === -1 ? s.length : i
}

/** Why a topic filter is not valid MQTT 3.1.1 (section 4.7), or undefined when it is. */
export function filterProblem (filter: string): string | undefined {
  if (filter === '') return 'must not be empty'
  if (filter.includes('\u0000')) return 'must not contain U+0000'
  const levels = filter.split('/')
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return '"#" must be a whole level and the last one'
    if (level.includes('+') && level !== '+') return '"+" must be a whole level'
  }
  if (Buffer.byteLength(filter) > 65535) return 'is longer than 65535 bytes'
  return undefined
}
