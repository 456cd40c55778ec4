import { parseArgs } from 'node:util'
import { ConveyorError, ErrorCodes } from '../../core/errors.ts'
import { checkCatalog, loadCatalog } from '../../schema/catalog.ts'
import { type CompatibilityLevel, CompatibilityLevels } from '../../schema/compatibility.ts'
import type { Command } from '../command.ts'

const usage = `Usage: conveyor schemas check [--dir schemas] [--level BACKWARD] [--json]

Checks the schema catalog: files <message_type>_v<version>.avsc below --dir (for example
schemas/commands/ and schemas/events/). Versions of a type must run 1, 2, 3 … and each must
be compatible with the earlier ones at --level (NONE, BACKWARD, BACKWARD_TRANSITIVE,
FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE). Exits 1 and prints every problem
when one is found, for CI. Reads files only: no broker, no registry.

Exit codes: 0 every schema is compatible; 1 a problem was found (each printed), or the
check failed (one line on stderr says why); 2 usage error.`

export const schemasCommand: Command = {
  name: 'schemas',
  summary: 'check the schema catalog for breaking changes',
  async run(argv, io) {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        dir: { type: 'string', default: 'schemas' },
        level: { type: 'string', default: 'BACKWARD' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' }
      }
    })
    if (values.help || positionals[0] !== 'check') {
      io.out(usage)
      return values.help ? 0 : 2
    }
    const level = values.level.toUpperCase() as CompatibilityLevel
    if (!CompatibilityLevels.includes(level)) {
      throw new ConveyorError(
        ErrorCodes.INVALID_OPTION,
        `--level must be one of ${CompatibilityLevels.join(', ')}`,
        { path: '--level' }
      )
    }
    const catalog = loadCatalog(values.dir)
    const problems = checkCatalog(catalog, level)
    const schemas = [...catalog.values()].reduce((n, entries) => n + entries.length, 0)
    if (values.json) io.out(JSON.stringify({ level, types: catalog.size, schemas, problems }, null, 2))
    else if (problems.length === 0)
      io.out(`${schemas} schemas of ${catalog.size} message types are compatible at ${level}`)
    else for (const p of problems) io.out(`${p.file}: ${p.message}`)
    return problems.length === 0 ? 0 : 1
  }
}
