import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../../../', import.meta.url))
const apps = join(root, 'apps')

function* sources(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) yield* sources(path)
    else if (/\.(?:ts|mts|js|mjs)$/.test(entry.name)) yield path
  }
}

/** Every module specifier of a file: static imports and re-exports, side-effect imports, `import()`. */
function specifiers(text: string): string[] {
  const found: string[] = []
  const patterns = [
    /\b(?:import|export)\s[^'"`;]*?\sfrom\s*['"]([^'"]+)['"]/g,
    /\bimport\s*['"]([^'"]+)['"]/g,
    /\bimport\s*\(\s*['"`]([^'"`]+)['"`]\s*\)/g
  ]
  for (const pattern of patterns) for (const match of text.matchAll(pattern)) found.push(match[1]!)
  return found
}

test('the library (src/) imports nothing from the applications (apps/): the layers only run downwards', () => {
  const offending: string[] = []
  let files = 0
  for (const file of sources(join(root, 'src'))) {
    files += 1
    for (const specifier of specifiers(readFileSync(file, 'utf8'))) {
      const target = specifier.startsWith('.')
        ? resolve(dirname(file), specifier)
        : specifier.startsWith('file:')
          ? fileURLToPath(specifier)
          : specifier.startsWith('/')
            ? specifier
            : undefined
      const reachesApps =
        (target !== undefined && (target === apps || target.startsWith(`${apps}/`))) ||
        /(?:^|\/)apps\//.test(specifier)
      if (reachesApps) offending.push(`${relative(root, file)} imports ${specifier}`)
    }
  }
  assert.ok(files > 50, `read the library's sources (${files} files)`)
  assert.deepEqual(offending, [])
})

test('the check sees every form of import', () => {
  const text = [
    "import { a } from '../../apps/x/cli.ts'",
    "import type { B } from '../apps/b.ts'",
    "export { c } from './apps/c.ts'",
    "import '../apps/side-effect.ts'",
    "const d = await import('../apps/d.ts')",
    'import {\n  e,\n  f\n} from "../apps/e.ts"'
  ].join('\n')
  assert.deepEqual(specifiers(text).sort(), [
    '../../apps/x/cli.ts',
    '../apps/b.ts',
    '../apps/d.ts',
    '../apps/e.ts',
    '../apps/side-effect.ts',
    './apps/c.ts'
  ])
})
