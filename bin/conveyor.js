#!/usr/bin/env node
// Conveyor's command line. Installed, it runs the built JavaScript (dist/); in a checkout,
// where the TypeScript sources are, it runs them (Node strips the types).
import { existsSync } from 'node:fs'

const [major, minor] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 12)) {
  process.stderr.write(`conveyor needs Node.js 22.12 or newer (this is ${process.version})\n`)
  process.exit(1)
}
const source = new URL('./conveyor.ts', import.meta.url)
await import(existsSync(source) ? source.href : new URL('../dist/bin/conveyor.js', import.meta.url).href)
