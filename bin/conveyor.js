#!/usr/bin/env node
// Conveyor's command line. Node 24 runs the TypeScript sources directly (type stripping).
const [major] = process.versions.node.split('.').map(Number)
if (major < 24) {
  process.stderr.write(
    `conveyor needs Node.js 24 or newer (this is ${process.version}); run it through npm (npx conveyor) to use the project's pinned Node\n`
  )
  process.exit(1)
}
await import('./conveyor.ts')
