import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/**
 * Conveyor's package folder (the one holding its package.json), found from `moduleUrl`
 * (a module's `import.meta.url`): the checkout when running the sources, and
 * `node_modules/<package>/` when the built JavaScript (`dist/`) runs from an install.
 * Files shipped beside the code (`schemas/`) are found from here in both.
 */
export function packageRoot(moduleUrl: string): string {
  let folder = dirname(fileURLToPath(moduleUrl))
  while (!existsSync(join(folder, 'package.json'))) {
    const parent = dirname(folder)
    if (parent === folder) throw new Error(`no package.json above ${fileURLToPath(moduleUrl)}`)
    folder = parent
  }
  return folder
}
