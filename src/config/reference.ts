import { stringify } from 'yaml'
import { isField, type Section } from './fields.js'
import { schema } from './schema.js'
import { schemaEntries } from './load.js'

/**
 * Renders the config reference from the schema, so the README table and config/culex.yaml cannot drift from the
 * code: `npm run docs:config` rewrites both, and a test fails when either is stale.
 */
export function renderMarkdownReference (): string {
  const rows = schemaEntries().map(e =>
    `| \`${e.key}\` | \`${JSON.stringify(e.field.default)}\` | \`${e.env}\` | ${e.field.doc.replaceAll('|', '\\|')} |`)
  return ['| key | default | environment variable | meaning |', '| --- | --- | --- | --- |', ...rows].join('\n')
}

export function renderYamlReference (): string {
  const header = [
    '# Culex configuration: every key, commented out at its default.',
    '# Uncomment what you change. Precedence: command-line flag > CULEX_* environment variable > this file > default.',
    '# Validate with: culex check-config --config config/culex.yaml',
    ''
  ]
  return [...header, ...yamlLines(schema, 0), ''].join('\n')
}

function yamlLines (section: Section, depth: number): string[] {
  const pad = '  '.repeat(depth)
  const lines: string[] = []
  for (const [name, node] of Object.entries(section)) {
    if (isField(node)) {
      lines.push(`${pad}# ${node.doc} (${node.type})`)
      lines.push(`${pad}# ${name}: ${stringify(node.default).trim()}`)
    } else {
      if (depth === 0) lines.push('')
      lines.push(`${pad}${name}:`)
      lines.push(...yamlLines(node, depth + 1))
    }
  }
  return lines
}
