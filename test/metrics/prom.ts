/** Reads the Prometheus text of a test broker's /metrics into `name{labels}` → value. */
export type Scrape = Map<string, number>

export async function scrape (adminUrl: string, token?: string): Promise<Scrape> {
  const res = await fetch(`${adminUrl}/metrics`, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } })
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`)
  const out: Scrape = new Map()
  for (const line of (await res.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const space = line.lastIndexOf(' ')
    out.set(line.slice(0, space), Number(line.slice(space + 1)))
  }
  return out
}

/** The value of one series; fails loudly when the series is missing. */
export function value (s: Scrape, series: string): number {
  const v = s.get(series)
  if (v === undefined) throw new Error(`no series ${series} in /metrics`)
  return v
}

/** How much each series moved between two scrapes. */
export function delta (before: Scrape, after: Scrape, series: string): number {
  return value(after, series) - (before.get(series) ?? 0)
}
