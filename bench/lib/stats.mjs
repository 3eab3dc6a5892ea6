// The median, shared by the generator (per-probe and per-connect timings) and the report (across repetitions), so
// both sides agree on how non-finite values are skipped.

/** Median of the finite numbers in xs (null, undefined, NaN and ±Infinity are skipped); null when there are none. */
export function median (xs) {
  const v = xs.filter(x => x !== null && x !== undefined && Number.isFinite(x)).sort((a, b) => a - b)
  if (v.length === 0) return null
  return v.length % 2 ? v[(v.length - 1) >> 1] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2
}
