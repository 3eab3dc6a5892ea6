import { readFileSync } from 'node:fs'

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string, dependencies: Record<string, string> }

/** Culex's own version, from package.json (one level above both src/ and dist/). */
export const version: string = pkg.version

/** The exact versions package.json pins a dependency to (aedes, mqtt-packet: Culex reads their internals). */
export function pinnedVersion (name: string): string {
  return pkg.dependencies[name]
}
