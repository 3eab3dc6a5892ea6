/**
 * Unknown CULEX_* environment variables: a typo or a name from an older release must not stop a broker that
 * would otherwise start, so each one is a warning that names the nearest known variable when there is one.
 */
export interface UnknownEnv {
  /** The variable as it was set. */
  name: string
  /** The known variable it is most likely a typo of. */
  closest?: string
}

export function unknownEnv (name: string, known: Iterable<string>): UnknownEnv {
  const candidates = [...known]
  return { name, ...closestBy(name, candidates, wordsApart) ?? closestBy(name, candidates, typoDistance) }
}

/**
 * How many words one name lacks of the other when one holds every word of the other (CULEX_ADMIN_TOKEN →
 * CULEX_ADMIN_AUTH_TOKEN: 1); undefined when neither does.
 */
function wordsApart (a: string, b: string): number | undefined {
  const wa = new Set(a.split('_'))
  const wb = new Set(b.split('_'))
  const [small, large] = wa.size <= wb.size ? [wa, wb] : [wb, wa]
  for (const w of small) if (!large.has(w)) return undefined
  return large.size - small.size
}

/** Edit distance in characters, up to a third of the name (CULEX_LOG_LEVLE → CULEX_LOG_LEVEL); undefined past that. */
function typoDistance (a: string, b: string): number | undefined {
  const d = distance(a, b)
  return d <= Math.max(2, Math.floor(a.length / 3)) ? d : undefined
}

function closestBy (name: string, candidates: string[], measure: (a: string, b: string) => number | undefined): { closest: string } | undefined {
  let best: string | undefined
  let bestScore = Infinity
  for (const c of candidates) {
    const score = measure(name, c)
    if (score !== undefined && score < bestScore) {
      best = c
      bestScore = score
    }
  }
  return best === undefined ? undefined : { closest: best }
}

export function describeUnknownEnv (u: UnknownEnv): string {
  return `${u.name}: unknown setting, ignored${u.closest === undefined ? '' : ` (did you mean ${u.closest}?)`}`
}

/** Levenshtein distance. */
function distance (a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const row = [i]
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    prev = row
  }
  return prev[b.length]
}
