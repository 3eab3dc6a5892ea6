#!/usr/bin/env -S node --max-semi-space-size=32
import { runCli } from './cli/run.js'

runCli(process.argv.slice(2)).then(code => process.exit(code), () => process.exit(1))
