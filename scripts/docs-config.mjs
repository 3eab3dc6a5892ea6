// Rewrites the config reference in README.md and config/culex.yaml from the schema (run after `npm run build`).
import { readFileSync, writeFileSync } from 'node:fs'
import { renderMarkdownReference, renderYamlReference } from '../dist/config/reference.js'

const start = '<!-- config-reference:start -->'
const end = '<!-- config-reference:end -->'
const readme = readFileSync('README.md', 'utf8')
const [before, rest] = readme.split(start)
const after = rest.split(end)[1]
writeFileSync('README.md', `${before}${start}\n${renderMarkdownReference()}\n${end}${after}`)
writeFileSync('config/culex.yaml', renderYamlReference())
